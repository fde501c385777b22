"""The in-guest job agent: runs shell commands the host drops into the read-write 9p share.

Started by the guest's /init (tests/vm/init.sh) inside the chroot of the host root. Standard
library only, so any Python 3.11 on the host works.

Protocol, all paths relative to the share (the host writes files to a temporary name and renames
them, so the agent never sees a half-written file):

``jobs/<id>.json``   ``{"cmd": str, "cwd": str, "env": {..}, "stdin": bool}``; if ``stdin`` is true
                     ``jobs/<id>.stdin`` was written before the json.
``out/<id>.pid``     written by the agent once the job runs (pid = process-group id).
``out/<id>.stdout``  ``out/<id>.stderr``: the job's output, written as it runs.
``out/<id>.rc``      the exit status (negative = killed by that signal), written last.
``ctl/<id>.signal``  a signal number; the agent sends it to the job's process group.
``shutdown``         the agent kills what still runs and exits; /init then powers off.
``ready``            written by the agent when it is ready (JSON with the kernel release).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.02


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Agent:
    """Polls the share for jobs and signals, runs them, reports their exit status."""

    def __init__(self, share: Path, cwd: str) -> None:
        self.share = share
        self.cwd = cwd
        self.jobs: dict[str, subprocess.Popen[bytes]] = {}
        for sub in ("jobs", "out", "ctl"):
            (share / sub).mkdir(exist_ok=True)

    def start(self, job_id: str, spec: dict[str, object]) -> None:
        """Start one job in its own session (so signals reach its whole process group)."""
        out = self.share / "out"
        env = dict(os.environ)
        # /init starts us with PATH=/bin (busybox); give jobs the host's usual environment, with
        # the venv we run from first on PATH so `voicekey` resolves as on the host.
        env.update({
            "PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                    "/usr/bin:/sbin:/bin",
            "HOME": "/root", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",  # the host root is read-only in the guest
            "PYTHONUNBUFFERED": "1",
        })
        env.update({str(k): str(v) for k, v in dict(spec.get("env") or {}).items()})
        stdin_path = self.share / "jobs" / f"{job_id}.stdin"
        stdin = stdin_path.open("rb") if spec.get("stdin") else subprocess.DEVNULL
        try:
            with (out / f"{job_id}.stdout").open("wb") as stdout, \
                    (out / f"{job_id}.stderr").open("wb") as stderr:
                try:
                    proc = subprocess.Popen(
                        ["bash", "-c", str(spec["cmd"])], stdin=stdin, stdout=stdout,
                        stderr=stderr, cwd=str(spec.get("cwd") or self.cwd), env=env,
                        start_new_session=True)
                except OSError as exc:
                    stderr.write(f"agent: cannot start job: {exc}\n".encode())
                    _write_atomic(out / f"{job_id}.rc", "127")
                    return
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()  # type: ignore[union-attr]
        self.jobs[job_id] = proc
        _write_atomic(out / f"{job_id}.pid", str(proc.pid))

    def poll_once(self) -> bool:
        """Handle new jobs, signals and finished jobs once; False when asked to shut down."""
        if (self.share / "shutdown").exists():
            return False
        for path in sorted((self.share / "jobs").glob("*.json")):
            job_id = path.stem
            spec = json.loads(path.read_text())
            path.unlink()
            self.start(job_id, spec)
        for path in sorted((self.share / "ctl").glob("*.signal")):
            job_id = path.stem
            signum = int(path.read_text().strip() or signal.SIGTERM)
            path.unlink()
            proc = self.jobs.get(job_id)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signum)
                except ProcessLookupError:
                    pass
        for job_id, proc in list(self.jobs.items()):
            rc = proc.poll()
            if rc is not None:
                del self.jobs[job_id]
                (self.share / "jobs" / f"{job_id}.stdin").unlink(missing_ok=True)
                _write_atomic(self.share / "out" / f"{job_id}.rc", str(rc))
        return True

    def stop_all(self) -> None:
        """Terminate what still runs (SIGTERM, then SIGKILL)."""
        for proc in self.jobs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 3
        for proc in self.jobs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="VoiceKey test-guest job agent (runs in the guest)")
    parser.add_argument("--share", type=Path, required=True, help="the read-write job share")
    parser.add_argument("--cwd", required=True, help="default working directory of jobs")
    args = parser.parse_args(argv)
    agent = Agent(args.share, args.cwd)
    _write_atomic(args.share / "ready", json.dumps({
        "release": os.uname().release, "pid": os.getpid(), "time": time.time()}))
    try:
        while agent.poll_once():
            time.sleep(POLL_SECONDS)
    finally:
        agent.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
