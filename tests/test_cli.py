import subprocess
import sys

import pytest

from appliance.cli import COMMANDS, build_parser, main


def test_every_command_is_registered_by_its_module():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_single_command_parser(name):
    parser = build_parser(only=name)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert name in sub.choices


def test_type_does_not_import_the_speech_stack():
    code = ("import sys; from appliance.cli import build_parser; build_parser(only='release'); "
            "print(any(m == 'numpy' or m.startswith('ctranslate2') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_errors_are_reported_with_their_fix(tmp_path, capsys):
    assert main(["type", "--device", str(tmp_path / "missing"), "hi"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "voicekey gadget up" in err


def test_unknown_layout_is_an_error_not_a_trace(tmp_path, capsys):
    (tmp_path / "hidg0").write_bytes(b"")
    assert main(["type", "--layout", "klingon", "--device", str(tmp_path / "hidg0"), "hi"]) == 2
    assert "klingon" in capsys.readouterr().err


def test_type_writes_the_encoders_reports_framed_by_release_all(tmp_path):
    from appliance.hid.encoder import encode
    from appliance.hid.report import RELEASE_ALL

    dev = tmp_path / "hidg0"
    dev.write_bytes(b"")
    assert main(["type", "--layout", "de", "--device", str(dev), "--rate", "0",
                 "--configfs-root", str(tmp_path), "Grüße, Zoë!"]) == 0
    expected = RELEASE_ALL + b"".join(encode("Grüße, Zoë!", "de").reports) + RELEASE_ALL
    assert dev.read_bytes() == expected


@pytest.mark.parametrize("option, value", [("--rate", "-1"), ("--settle", "soon"), ("--give-up", "inf")])
def test_type_rejects_bad_timing_options_naming_them(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        main(["type", option, value, "--device", str(tmp_path / "hidg0"), "hi"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and value in err
