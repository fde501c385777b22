"""Fixtures for the real-kernel guest tests: one QEMU guest per pytest session.

If QEMU (or anything else the guest needs) is missing the guest tests FAIL with the reason;
set ``VOICEKEY_SKIP_VM=1`` to skip them instead. ``VOICEKEY_VM_ACCEL=kvm`` boots with KVM
where /dev/kvm is usable (default: TCG, which works everywhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.vm.build_guest import BuildError
from tests.vm.guest import Guest, GuestError
from tests.vm.keyboard import gadget_up


def booted_guest() -> Iterator[Guest]:
    """Boot a guest, yield it, power it off (for a fixture; skipped with VOICEKEY_SKIP_VM=1)."""
    if os.environ.get("VOICEKEY_SKIP_VM") == "1":
        pytest.skip("VOICEKEY_SKIP_VM=1: guest tests skipped")
    vm = Guest()
    try:
        vm.boot()
    except (GuestError, BuildError) as exc:
        pytest.fail(f"cannot boot the QEMU test guest: {exc}\n"
                    "(set VOICEKEY_SKIP_VM=1 to skip the guest tests)", pytrace=False)
    try:
        yield vm
    finally:
        vm.close()


@pytest.fixture(scope="session")
def guest() -> Iterator[Guest]:
    """The booted guest (shared by all tests of the session)."""
    yield from booted_guest()


@pytest.fixture
def keyboard(guest: Guest) -> Guest:
    """The guest with the VoiceKey gadget up and enumerated as a keyboard on its host side."""
    gadget_up(guest)
    return guest
