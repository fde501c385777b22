# VoiceKey developer entry points. `make demo` and `make test` bootstrap everything they need
# (Debian packages, a virtualenv in .venv) on a fresh Debian machine.
SHELL := /bin/bash
# Debian's /usr/bin/python3 when there is one: it has socket.AF_BLUETOOTH (the Bluetooth keyboard;
# a pyenv build may not) and it is the Python the SD image runs.
PYTHON ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv records the interpreter it was built from ("path version"); another one rebuilds it.
PY_ID := $(shell $(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])' 2>/dev/null)
# dbus (dbus-daemon, dbus-send) and the libraries of BlueZ's bluetoothd/btvirt (unpacked into the VM
# cache by tests/vm/build_guest.py, not installed): the Bluetooth guest tests.
SYSTEM_PACKAGES := python3-venv python3-dev gcc linux-libc-dev qemu-system-x86 busybox-static cpio xz-utils zstd \
	libxkbcommon-dev xkb-data libportaudio2 shellcheck \
	dbus libglib2.0-0 libdw1 libreadline8 libudev1 libasound2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all system venv demo test test-fast test-vm bench bench-typing lint clean help image image-system

help:
	@echo "make demo          run the whole pipeline on the bundled tiny.en model"
	@echo "make test          all tests, including the real-kernel QEMU guest tests"
	@echo "make test-fast     unit tests only (no guest)"
	@echo "make image         the SD card image -> build/voicekey-VERSION-arm64.img.zst (needs root; see README)"
	@echo "make image-rpios BASE=...img.xz  the Raspberry Pi 5 image from Raspberry Pi OS Lite (64-bit, bookworm) -> build/voicekey-VERSION-rpios-arm64.img.zst"
	@echo "make test-image    build the image and boot it in QEMU (aarch64, TCG): the whole product as shipped"
	@echo "make bench         speech benchmark (python -m bench; BENCH_ARGS=--quick for a smoke run) -> BENCHMARKS.md"
	@echo "make bench-typing  typing-throughput benchmark through the guest -> BENCHMARKS.md"
	@echo "make bench-bluetooth  Bluetooth typing beside USB in the guest (real kernel and BlueZ) -> BENCHMARKS.md"
	@echo "make bench-live    live dictation vs transcribing after the release, audio fed in real time (~5 min) -> BENCHMARKS.md"

system:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

ifneq ($(PY_ID),$(shell cat $(VENV)/.python 2>/dev/null))
.PHONY: $(VENV)/.installed
endif

$(VENV)/.installed: pyproject.toml
	@if [ -d $(VENV) ] && [ "$$(cat $(VENV)/.python 2>/dev/null)" != "$(PY_ID)" ]; then \
	  echo "rebuilding $(VENV) for $(PY_ID)"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[speech,base-model,demo,test,bench]'
	echo '$(PY_ID)' > $(VENV)/.python
	touch $@

venv: system $(VENV)/.installed

demo: venv
	$(VENV)/bin/voicekey demo

# `make test` builds the SD image first (skipped when no input changed; ~15 min cold) and boots it
# (tests/imageboot/test_image_boot.py: the whole device, Bluetooth's drop-ins, a broken voicekey.yaml).
# tests/rpios runs image/build-rpios.sh (the Pi 5 flavour) on a stand-in Raspberry Pi OS Lite made
# from that image (cached in ~/.cache/voicekey-image/rpios-standin).
test: venv image
	$(PY) -m pytest -q tests

test-fast: venv
	$(PY) -m pytest -q tests -m 'not vm'

test-vm: venv
	$(PY) -m pytest -q tests/vm

bench: venv
	$(PY) -m bench $(BENCH_ARGS)

bench-typing: venv
	$(PY) -m tests.vm.bench_typing

.PHONY: bench-bluetooth
bench-bluetooth: venv
	$(PY) -m tests.vm.bench_bluetooth

.PHONY: bench-live
bench-live: venv
	$(PY) -m bench.live $(BENCH_ARGS)

# The SD card image (image/build.sh): Debian packages it needs on this machine, then the build.
IMAGE_HOST_PACKAGES = $(shell sed -e 's/\#.*//' image/packages-host.txt)

image-system:
	@missing=$$(for p in $(IMAGE_HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the image: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

image: venv image-system
	$(SUDO) image/build.sh

# The Raspberry Pi 5 image: a Raspberry Pi OS Lite (64-bit, bookworm) image customised, e.g.
# make image-rpios BASE=~/Downloads/2024-11-19-raspios-bookworm-arm64-lite.img.xz
.PHONY: image-rpios
image-rpios: venv image-system
	$(SUDO) image/build-rpios.sh --base "$(BASE)"

# The built image booted in qemu-system-aarch64 (one boot, ~10-14 min under TCG once it is built).
.PHONY: test-image
test-image: image
	$(PY) -m pytest -q tests/imageboot

lint: venv
	shellcheck gadget/*.sh image/*.sh tests/vm/*.sh .ci/run

clean:
	rm -rf $(VENV) .cache
