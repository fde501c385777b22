"""The image scripts pass shellcheck (as `make lint` runs it)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    scripts = sorted((REPO / "image").glob("*.sh")) + sorted((REPO / "image" / "files").glob("*.sh"))
    subprocess.run(["shellcheck", *map(str, scripts)], check=True)
