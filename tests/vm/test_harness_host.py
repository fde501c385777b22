"""Host-only tests of the guest harness pieces that do not need QEMU (run in `make test-fast`).

The job protocol is exercised end to end by running tests/vm/agent.py on the host against a
temporary share and driving it through a real :class:`Guest` whose "QEMU" is that agent process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm import bench_typing
from tests.vm.guest import Guest, GuestTimeout
from tests.vm.guest_events import EventsDropped, read_events

AGENT = Path(__file__).with_name("agent.py")


@pytest.fixture
def host_guest(tmp_path: Path) -> Iterator[Guest]:
    guest = Guest(cache=tmp_path)
    guest.share.mkdir(parents=True)
    agent = subprocess.Popen([sys.executable, str(AGENT), "--share", str(guest.share),
                              "--cwd", str(tmp_path)])
    guest._qemu = agent  # the agent process stands in for QEMU
    guest._wait_for((guest.share / "ready").exists, 30, "the agent")
    try:
        yield guest
    finally:
        (guest.share / "shutdown").touch()
        agent.wait(30)


def test_run_returns_rc_stdout_stderr_and_feeds_stdin(host_guest: Guest) -> None:
    result = host_guest.run("pwd; cat; echo err >&2; exit 3", input="héllo\n")
    assert result.rc == 3
    assert result.stdout == f"{host_guest.repo}\nhéllo\n"  # cwd: the repo
    assert result.stderr == "err\n"
    with pytest.raises(AssertionError, match="rc=3"):
        result.check()


def test_background_job_pid_output_and_kill(host_guest: Guest) -> None:
    job = host_guest.start("echo started; exec sleep 60")
    assert job.wait_for_output("started", timeout=30) == "started\n"
    assert job.pid() > 0
    job.kill(signal.SIGKILL)
    assert job.wait(30).rc == -signal.SIGKILL


def test_timeout_kills_the_job(host_guest: Guest) -> None:
    with pytest.raises(GuestTimeout, match="timed out"):
        host_guest.run("echo partial; sleep 60", timeout=1)


def test_read_events_skips_markers_and_flags_drops(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    lines = [{"device": "/dev/input/event1"}, {"code": 30, "value": 1, "time": 1.0},
             {"gone": "/dev/input/event1", "time": 2.0},
             {"code": 30, "value": 0, "time": 2.0, "synthetic": True}, {"stopped": True}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    events = read_events(path)
    assert [(e.code, e.value, e.synthetic) for e in events] == [(30, 1, False), (30, 0, True)]
    path.write_text(path.read_text() + json.dumps({"dropped": "x", "time": 3.0}) + "\n")
    with pytest.raises(EventsDropped):
        read_events(path)
    assert len(read_events(path, allow_dropped=True)) == 2


def test_benchmark_section_replaces_only_its_markers(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Bench\n\n## Speech\nkeep me\n")
    bench_typing.write_section(path, "first")
    bench_typing.write_section(path, "second")
    text = path.read_text()
    assert text.startswith("# Bench\n\n## Speech\nkeep me\n")
    assert text.count(bench_typing.START) == 1 and "second" in text and "first" not in text


def test_benchmark_table_gives_each_setting_against_the_peer() -> None:
    rows = [bench_typing.Row("`--rate 1000`", 300.0, 0, 10000, 34.0),
            bench_typing.Row("`--rate 5`", None, None, 0, 600.0, "timed out"),
            bench_typing.Row(f"{bench_typing.PEER_LABEL} (raw_type.py)", 400.0, 0, 10000, 25.0)]
    table = bench_typing.render(rows, 10000, "us", "- Machine: test").splitlines()
    assert "| `--rate 1000` | 300 | 0.75x | 0 | 10000 | 34.0 |  |" in table
    assert "| `--rate 5` | - | - | - | 0 | 600.0 | timed out |" in table
    assert any(line.startswith(f"| {bench_typing.PEER_LABEL}") and "| 1.00x |" in line for line in table)
