"""Ship only the product: the wheel holds ``appliance`` and its data, never the benchmark, tools or tests.

The wheel is built offline from a copy of the checkout (so a stale ``build/`` in the checkout cannot
leak into it, and the build leaves nothing behind) by calling the PEP 517 backend directly, which is
what ``pip wheel --no-build-isolation`` does.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Not copied: environments, VCS data, build leftovers and caches.
_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".hypothesis", ".cache", "*.pyc")

_BUILD = """
import sys
from setuptools import build_meta
print(build_meta.build_wheel(sys.argv[1]))
"""


def _backend_missing() -> str | None:
    """Why the build backend cannot build a wheel here, or None when it can."""
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools (the build backend) is not installed: install the test extra"
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return (f"setuptools {setuptools.__version__} needs the 'wheel' package to build wheels: "
                "install the test extra")
    return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from the current checkout."""
    reason = _backend_missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("packaging")
    src, out = root / "src", root / "dist"
    shutil.copytree(REPO, src, ignore=_IGNORE)
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", _BUILD, str(out)], cwd=src, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"wheel build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    wheels = list(out.glob("voicekey-*.whl"))
    assert len(wheels) == 1, proc.stdout[-2000:]
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    """File names inside the wheel."""
    return wheel.namelist()


def _metadata(wheel: zipfile.ZipFile, name: str) -> str:
    return wheel.read(next(n for n in wheel.namelist() if n.endswith(f".dist-info/{name}"))).decode()


def test_wheel_holds_the_product_modules(wheel_names):
    for module in ("appliance/__init__.py", "appliance/__main__.py", "appliance/cli.py",
                   "appliance/controller.py", "appliance/config.py", "appliance/hid/encoder.py",
                   "appliance/hid/layouts/__init__.py", "appliance/commands/run_cmd.py",
                   "appliance/commands/transcribe_cmd.py", "appliance/stt/whisper.py",
                   "appliance/audio/vad.py", "appliance/transport/usb.py"):
        assert module in wheel_names, f"{module} missing from the wheel"
    # every module of the checkout's product package is in the wheel
    product = {p.relative_to(REPO).as_posix() for p in (REPO / "appliance").rglob("*.py")}
    assert not product - set(wheel_names)


def test_wheel_holds_the_data_the_product_reads(wheel_names):
    layouts = {p.name for p in (REPO / "appliance" / "hid" / "layouts").glob("*.json")}
    assert {"us.json", "de.json", "us.intl.json"} <= layouts
    for name in layouts:
        assert f"appliance/hid/layouts/{name}" in wheel_names, f"layout {name} missing from the wheel"
    assert "appliance/py.typed" in wheel_names
    for data in (REPO / "appliance").rglob("*.yaml"):  # config files shipped inside the package
        assert data.relative_to(REPO).as_posix() in wheel_names


def test_wheel_holds_no_benchmark_tools_or_tests(wheel_names):
    code = [n for n in wheel_names if ".dist-info/" not in n]
    assert all(n.startswith("appliance/") for n in code), sorted(n for n in code if not n.startswith("appliance/"))
    for unwanted in ("bench/", "tools/", "tests/", "appliance/bench/", "_generate", "conftest", "/test_"):
        assert not any(unwanted in n for n in code), f"{unwanted!r} is in the wheel"


def test_wheel_metadata_names_only_the_product(wheel):
    assert _metadata(wheel, "top_level.txt").split() == ["appliance"]
    assert "voicekey = appliance.cli:main" in _metadata(wheel, "entry_points.txt")
    requires = [line for line in _metadata(wheel, "METADATA").splitlines() if line.startswith("Requires-Dist:")]
    # the demo's and the tests' packages are extras, never what `pip install voicekey` pulls in
    base = [r for r in requires if "extra ==" not in r]
    for dev in ("pytest", "hypothesis", "piper-tts", "jiwer", "matplotlib", "whisper-normalizer"):
        assert not any(dev in r for r in base), f"{dev} is a base dependency: {base}"
    assert any("piper-tts" in r and 'extra == "demo"' in r for r in requires)
    assert any("jiwer" in r and 'extra == "demo"' in r for r in requires)


def test_product_never_imports_development_code():
    """No module of the installed package imports bench/, tools/ or tests/ (they are not installed)."""
    offenders = []
    for path in (REPO / "appliance").rglob("*.py"):
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from") and \
                    words[1].split(".")[0] in ("bench", "tools", "tests"):
                offenders.append(f"{path.relative_to(REPO)}:{line_no}: {line.strip()}")
            if "appliance.bench" in line:
                offenders.append(f"{path.relative_to(REPO)}:{line_no}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
