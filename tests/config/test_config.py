"""Configuration loading: layering, every kind of bad value, and the example file."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from pathlib import Path

import pytest
import yaml

from appliance import config as cfgmod
from appliance.config import (DEFAULT_PATHS, SECTIONS, Config, ConfigIssue, as_dict, load_config,
                              section_keys)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "voicekey.example.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def only_issue(loaded) -> ConfigIssue:
    assert len(loaded.issues) == 1, [str(i) for i in loaded.issues]
    return loaded.issues[0]


# ---- defaults and layering ----------------------------------------------------------------------
def test_no_files_gives_working_defaults():
    loaded = load_config([])
    assert loaded.config == Config()
    assert loaded.issues == [] and loaded.files == [] and dict(loaded.sources) == {}
    c = loaded.config
    assert (c.button.pin, c.led.pin, c.stt.model, c.stt.compute_type) == (17, 27, "tiny.en", "int8")
    assert c.transport.device == Path("/dev/hidg0") and c.keyboard.layout == "us"


def test_default_paths_are_etc_then_boot_partition():
    assert DEFAULT_PATHS == (Path("/etc/voicekey/config.yaml"), Path("/boot/firmware/voicekey.yaml"))
    assert inspect.signature(load_config).parameters["paths"].default == DEFAULT_PATHS


def test_missing_files_are_skipped_silently(tmp_path):
    present = write(tmp_path, "b.yaml", "button:\n  pin: 5\n")
    loaded = load_config([tmp_path / "nope.yaml", present, tmp_path / "also-nope.yaml"])
    assert loaded.issues == []
    assert loaded.files == [present]
    assert loaded.config.button.pin == 5


def test_later_files_override_key_by_key(tmp_path):
    etc = write(tmp_path, "etc.yaml", "button:\n  pin: 5\n  hold_s: 0.6\nkeyboard:\n  layout: de\n")
    boot = write(tmp_path, "boot.yaml", "button:\n  pin: 6\nkeyboard:\n  host_os: windows\n")
    loaded = load_config([etc, boot])
    assert loaded.issues == []
    c = loaded.config
    assert c.button.pin == 6            # boot wins
    assert c.button.hold_s == 0.6       # only in etc: kept
    assert c.keyboard.layout == "de"    # same section, other key: kept
    assert c.keyboard.host_os == "windows"
    assert c.button.bounce_s == 0.02    # in neither: default
    assert loaded.sources["button.pin"] == str(boot)
    assert loaded.sources["button.hold_s"] == str(etc)
    assert "button.bounce_s" not in loaded.sources
    # and the other order gives the other answer
    assert load_config([boot, etc]).config.button.pin == 5


def test_config_flag_style_single_path(tmp_path):
    path = write(tmp_path, "mine.yaml", "stt:\n  model: base.en\n")
    assert load_config([path]).config.stt.model == "base.en"
    assert load_config([str(path)]).config.stt.model == "base.en"


def test_exact_issue_wording(tmp_path):
    path = write(tmp_path, "voicekey.yaml", "button:\n  pin: 99\n")
    loaded = load_config([path])
    issue = only_issue(loaded)
    assert str(issue) == f"{path}: button.pin = 99: must be a BCM GPIO number 0-27 (using default 17)"
    assert (issue.file, issue.key, issue.value, issue.line, issue.column) == (str(path), "button.pin", 99, 2, 3)
    assert issue.location == f"{path}:2"
    assert loaded.config.button.pin == 17


def test_bad_value_in_later_file_keeps_earlier_files_value(tmp_path):
    etc = write(tmp_path, "etc.yaml", "button:\n  pin: 5\n")
    boot = write(tmp_path, "boot.yaml", "button:\n  pin: 40\n")
    loaded = load_config([etc, boot])
    assert loaded.config.button.pin == 5
    assert str(only_issue(loaded)).endswith(f"(using 5 from {etc})")
    assert loaded.sources["button.pin"] == str(etc)


# ---- types, ranges, choices ----------------------------------------------------------------------
BAD_VALUES = [
    # (section, key, yaml text of the value, words the problem must contain)
    ("button", "pin", "-1", "0-27"),
    ("button", "pin", "28", "0-27"),
    ("button", "pin", "17.5", "0-27"),
    ("button", "pin", "true", "0-27"),          # bools are not numbers
    ("button", "pin", "GPIO17", "0-27"),
    ("button", "pin", "[17]", "0-27"),
    ("button", "pull_up", '"yes please"', "true or false"),
    ("button", "pull_up", "1", "true or false"),
    ("button", "bounce_s", "0.6", "0 to 0.5 s"),
    ("button", "bounce_s", "-0.01", "0 to 0.5 s"),
    ("button", "hold_s", "0", "0.05 to 5 s"),
    ("button", "hold_s", ".nan", "0.05 to 5 s"),
    ("button", "double_press_s", "3", "0 to 2 s"),
    ("button", "pairing_hold_s", "0.5", "1 to 60 s"),
    ("led", "pin", "28", "or null for no LED"),
    ("led", "pin", '"none"', "or null for no LED"),
    ("led", "active_high", "high", "true or false"),
    ("audio", "device", "-1", "device name"),
    ("audio", "device", "false", "device name"),
    ("audio", "device", '""', "device name"),
    ("audio", "pre_roll_ms", "2001", "0-2000"),
    ("audio", "post_roll_ms", "-5", "0-2000"),
    ("audio", "post_roll_unless_silent_ms", "fast", "0-5000"),
    ("audio", "max_utterance_s", "0.5", "1 to 600 s"),
    ("audio", "max_utterance_s", ".inf", "1 to 600 s"),
    ("audio", "sample_rate", "4000", "8000-192000, or null for the device's default rate"),
    ("audio", "sample_rate", "16000.5", "sample rate in Hz"),
    ("audio", "block_ms", "0", "5-1000"),
    ("audio", "latency_s", "6", "0.001 to 5 s, or null for the driver's default"),
    ("audio", "stall_timeout_s", "0.1", "0.5 to 600 s, or null for never"),
    ("trigger", "device", "event3", "absolute path"),
    ("trigger", "grab", "1", "true or false"),
    ("controller", "pairing_s", "5", "10 to 3600 s"),
    ("controller", "retry_s", "0", "0.1 to 600 s"),
    ("vad", "aggressiveness", "4", "webrtcvad mode 0-3"),
    ("vad", "aggressiveness", "1.5", "0-3"),
    ("vad", "endpoint_silence_ms", "50", "100-10000"),
    ("vad", "min_speech_ms", "5001", "0-5000"),
    ("stt", "model", "large-v3", "tiny.en, base.en, tiny, base"),
    ("stt", "model", "relative/model", "absolute path"),
    ("stt", "model", "7", "tiny.en"),
    ("stt", "model_dir", "models", "absolute path"),
    ("stt", "cache_dir", "3", "absolute path"),
    ("stt", "compute_type", "int4", "int8, int8_float32, float32, int16, float16"),
    ("stt", "threads", "-1", "0-64"),
    ("stt", "threads", "65", "0-64"),
    ("stt", "allow_hub_download", '"no"', "true or false"),
    ("stt", "short_window", "0", "true or false"),
    ("text", "vocabulary", "Kubernetes", "list of words"),
    ("text", "vocabulary", "{a: b}", "list of words"),
    ("text", "replacements", "[a, b]", "mapping"),
    ("text", "spoken_commands", "maybe", "true or false"),
    ("keyboard", "layout", "klingon", "must be one of"),
    ("keyboard", "layout", "5", "must be one of"),
    ("keyboard", "unmapped", "drop", "transliterate, skip, unicode"),
    ("keyboard", "host_os", "beos", "linux, windows, macos"),
    ("keyboard", "allow_newline", "null", "true or false"),
    ("keyboard", "allow_tab", "[]", "true or false"),
    ("transport", "kind", "radio", "must be one of usb, bluetooth, auto"),
    ("bluetooth", "adapter", "bt0", "like hci0"),
    ("bluetooth", "name", "''", "1-64 printable"),
    ("bluetooth", "state_dir", "var/lib", "absolute path"),
    ("bluetooth", "reconnect_timeout_s", "0.5", "1 to 60 s"),
    ("transport", "serial", "has space", "letters, digits"),
    ("stt", "language", "german", "did you mean de?"),
    ("trigger", "key", "F13", "KEY_F13"),
    ("live", "enabled", "sometimes", "true or false"),
    ("live", "after_s", "-1", "0 to 60 s"),
    ("live", "pause_ms", "50", "200-5000"),
    ("live", "pass_s", "0", "0.3 to 10 s"),
    ("trigger", "device", "event3", "absolute path"),
    ("trigger", "grab", "yes please", "true or false"),
    ("controller", "pairing_s", "5", "10 to 3600 s"),
    ("controller", "retry_s", "0", "0.1 to 600 s"),
    ("text", "forget_after_s", "-1", "0 to 86400"),
    ("text", "numbers_min", "-1", "0-1000000"),
    ("text", "enter_after", '"sometimes"', "true or false"),
    ("transport", "device", "hidg0", "absolute path"),
    ("transport", "rate", "-1", "0 to 10000 reports per second"),
    ("transport", "rate", "fast", "0 to 10000"),
    ("transport", "give_up_s", "-3", "0 to 86400 s"),
    ("transport", "settle_s", "31", "0 to 30 s"),
    ("transport", "configfs_root", "null", "absolute path"),
    ("transport", "sysfs_root", "sys", "absolute path"),
    ("controller", "busy_press", "ignore", "cancel, queue"),
    ("logging", "level", "loud", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
]


@pytest.mark.parametrize("section,key,text,words", BAD_VALUES,
                         ids=[f"{s}.{k}={t}" for s, k, t, _ in BAD_VALUES])
def test_bad_value_gives_issue_and_default(tmp_path, section, key, text, words):
    path = write(tmp_path, "c.yaml", f"{section}:\n  {key}: {text}\n")
    loaded = load_config([path])
    issue = only_issue(loaded)
    assert issue.key == f"{section}.{key}"
    assert issue.file == str(path) and issue.line == 2
    assert words in issue.problem
    default = getattr(getattr(Config(), section), key)
    assert getattr(getattr(loaded.config, section), key) == default
    assert "using default" in str(issue)
    value = yaml.safe_load(text)
    if not (isinstance(value, float) and math.isnan(value)):
        assert issue.value == value


def test_every_field_has_a_bad_value_test():
    covered = {(s, k) for s, k, _, _ in BAD_VALUES}
    missing = [f"{s}.{k}" for s in SECTIONS for k in section_keys(s) if (s, k) not in covered]
    assert missing == []


GOOD_VALUES = [
    ("button", "pin", "0", 0),
    ("button", "pin", "26", 26),
    ("button", "pin", '"09"', 9),                     # YAML reads 09 as text
    ("button", "bounce_s", "0", 0.0),
    ("button", "double_press_s", "0", 0.0),
    ("led", "pin", "null", None),
    ("led", "pin", "~", None),
    ("audio", "device", "2", 2),
    ("audio", "device", "USB PnP Sound Device", "USB PnP Sound Device"),
    ("audio", "max_utterance_s", "30", 30.0),
    ("audio", "sample_rate", "16000", 16000),
    ("audio", "stall_timeout_s", "null", None),
    ("vad", "aggressiveness", "0", 0),
    ("vad", "aggressiveness", "3.0", 3),
    ("stt", "model", "base", "base"),
    ("stt", "model", "/opt/models/small-ct2", "/opt/models/small-ct2"),
    ("stt", "model_dir", "/opt/models", Path("/opt/models")),
    ("stt", "compute_type", "INT8_FLOAT32", "int8_float32"),
    ("keyboard", "layout", "DE", "de"),
    ("keyboard", "layout", "us(dvorak)", "us(dvorak)"),
    ("keyboard", "host_os", "MacOS", "macos"),
    ("keyboard", "allow_tab", "yes", True),           # YAML 1.1 boolean
    ("transport", "rate", "0", 0.0),
    ("transport", "rate", "1e3", 1000.0),             # YAML 1.1 reads 1e3 as text
    ("transport", "device", "/dev/hidg1", Path("/dev/hidg1")),
    ("controller", "busy_press", "Queue", "queue"),
    ("logging", "level", "debug", "DEBUG"),
]


@pytest.mark.parametrize("section,key,text,expected", GOOD_VALUES,
                         ids=[f"{s}.{k}={t}" for s, k, t, _ in GOOD_VALUES])
def test_good_values_are_accepted_and_normalised(tmp_path, section, key, text, expected):
    path = write(tmp_path, "c.yaml", f"{section}:\n  {key}: {text}\n")
    loaded = load_config([path])
    assert loaded.issues == []
    got = getattr(getattr(loaded.config, section), key)
    assert got == expected and type(got) is type(expected)


def test_every_registered_layout_is_accepted(tmp_path):
    for name in cfgmod._layouts():
        path = write(tmp_path, "c.yaml", f'keyboard:\n  layout: "{name}"\n')
        loaded = load_config([path])
        assert loaded.issues == [] and loaded.config.keyboard.layout == name


def test_choice_suggests_the_closest(tmp_path):
    path = write(tmp_path, "c.yaml", "keyboard:\n  layout: dvorak\n  host_os: mac\nstt:\n  model: tiny-en\n")
    problems = {i.key: i.problem for i in load_config([path]).issues}
    assert "did you mean us(dvorak)?" in problems["keyboard.layout"]
    assert "did you mean macos?" in problems["keyboard.host_os"]
    assert "did you mean tiny.en?" in problems["stt.model"]


def test_one_bad_key_does_not_affect_its_neighbours(tmp_path):
    path = write(tmp_path, "c.yaml", "button:\n  pin: 99\n  hold_s: 0.7\n  pull_up: false\n")
    loaded = load_config([path])
    assert [i.key for i in loaded.issues] == ["button.pin"]
    assert (loaded.config.button.pin, loaded.config.button.hold_s, loaded.config.button.pull_up) == (17, 0.7, False)


# ---- unknown keys -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,key,hint", [
    ("button:\n  pul_up: false\n", "button.pul_up", "did you mean button.pull_up?"),
    ("button:\n  Pull-Up: false\n", "button.Pull-Up", "did you mean button.pull_up?"),
    ("button:\n  layout: de\n", "button.layout", "did you mean keyboard.layout?"),
    ("button:\n  colour: red\n", "button.colour", "button has pin, pull_up"),
    ("layout: de\n", "layout", "did you mean keyboard.layout?"),
    ("keybord:\n  layout: de\n", "keybord", "did you mean keyboard?"),
    ("Button:\n  pin: 5\n", "Button", "did you mean button?"),
    ("wifi:\n  ssid: x\n", "wifi", "sections are button, led"),
])
def test_unknown_keys_are_ignored_with_a_suggestion(tmp_path, text, key, hint):
    path = write(tmp_path, "c.yaml", text)
    loaded = load_config([path])
    issue = only_issue(loaded)
    assert issue.key == key and hint in issue.problem and issue.outcome == "ignored"
    assert issue.line is not None
    assert loaded.config == Config()


# ---- whole-file problems ------------------------------------------------------------------------
def test_yaml_syntax_error_names_line_and_other_files_still_apply(tmp_path):
    good = write(tmp_path, "etc.yaml", "button:\n  pin: 5\n")
    bad = write(tmp_path, "boot.yaml", "keyboard:\n  layout: de\n  host_os: [windows\nbutton:\n  pin: 6\n")
    loaded = load_config([good, bad])
    issue = only_issue(loaded)
    assert issue.file == str(bad) and issue.key == "" and issue.line is not None
    assert issue.line >= 3
    assert str(issue).startswith(f"{bad}: line {issue.line}, column {issue.column}: YAML syntax error")
    assert str(issue).endswith("(file ignored)")
    # nothing from the broken file, everything from the good one
    assert loaded.config.button.pin == 5 and loaded.config.keyboard.layout == "us"
    assert loaded.files == [good]


def test_tab_indentation_gets_a_hint(tmp_path):
    path = write(tmp_path, "c.yaml", "button:\n\tpin: 5\n")
    issue = only_issue(load_config([path]))
    assert issue.line == 2 and "spaces, not tabs" in issue.problem


@pytest.mark.parametrize("text", ["", "# only comments\n", "---\n", "button:\n", "button: {}\n"])
def test_empty_files_and_sections_are_fine(tmp_path, text):
    loaded = load_config([write(tmp_path, "c.yaml", text)])
    assert loaded.issues == [] and loaded.config == Config()


@pytest.mark.parametrize("text", ["- button\n- led\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    issue = only_issue(load_config([write(tmp_path, "c.yaml", text)]))
    assert "must be a mapping of sections" in issue.problem and issue.outcome == "file ignored"


def test_section_must_be_a_mapping(tmp_path):
    loaded = load_config([write(tmp_path, "c.yaml", "button: 17\nled:\n  pin: 22\n")])
    issue = only_issue(loaded)
    assert issue.key == "button" and "mapping of button settings" in issue.problem
    assert loaded.config.led.pin == 22


def test_multiple_documents_are_a_syntax_error(tmp_path):
    issue = only_issue(load_config([write(tmp_path, "c.yaml", "button: {pin: 5}\n---\nled: {pin: 6}\n")]))
    assert "YAML syntax error" in issue.problem and issue.line == 2


def test_python_tags_are_refused(tmp_path):
    text = "button:\n  pin: !!python/object/apply:os.system ['true']\n"
    issue = only_issue(load_config([write(tmp_path, "c.yaml", text)]))
    assert "YAML syntax error" in issue.problem and issue.outcome == "file ignored"


def test_unreadable_file_is_an_issue(tmp_path):
    directory = tmp_path / "voicekey.yaml"
    directory.mkdir()
    issue = only_issue(load_config([directory]))
    assert issue.file == str(directory) and "cannot read" in issue.problem


def test_windows_encodings(tmp_path):
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfbutton:\r\n  pin: 5\r\n")
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes("led:\r\n  pin: 6\r\n".encode("utf-16"))
    loaded = load_config([bom, utf16])
    assert loaded.issues == []
    assert (loaded.config.button.pin, loaded.config.led.pin) == (5, 6)


def test_non_utf8_file_is_an_issue(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("text:\n  vocabulary: [Müller]\n".encode("latin-1"))
    issue = only_issue(load_config([path]))
    assert "not UTF-8" in issue.problem and issue.outcome == "file ignored"


def test_duplicate_key_is_reported_and_last_wins(tmp_path):
    loaded = load_config([write(tmp_path, "c.yaml", "button:\n  pin: 5\n  pin: 6\n")])
    issue = only_issue(loaded)
    assert issue.key == "button.pin" and "more than once" in issue.problem and issue.line == 3
    assert loaded.config.button.pin == 6


# ---- lists and tables ---------------------------------------------------------------------------
def test_vocabulary_keeps_good_words_and_reports_bad_items(tmp_path):
    text = 'text:\n  vocabulary:\n    - Kubernetes\n    - 2024\n    - true\n    - "  "\n    - Kubernetes\n'
    loaded = load_config([write(tmp_path, "c.yaml", text)])
    assert loaded.config.text.vocabulary == ("Kubernetes", "2024")
    assert [(i.key, i.value, i.line, i.outcome) for i in loaded.issues] == [
        ("text.vocabulary[2]", True, 5, "ignored"), ("text.vocabulary[3]", "  ", 6, "ignored")]


def test_replacements(tmp_path):
    text = 'text:\n  replacements:\n    "voice key": VoiceKey\n    two: 2\n    um: ""\n    x: [1]\n'
    loaded = load_config([write(tmp_path, "c.yaml", text)])
    assert dict(loaded.config.text.replacements) == {"voice key": "VoiceKey", "two": "2", "um": ""}
    issue = only_issue(loaded)
    assert issue.key == 'text.replacements["x"]' and issue.outcome == "ignored"


# ---- cross-field checks -------------------------------------------------------------------------
def test_led_on_the_button_pin_is_disabled(tmp_path):
    path = write(tmp_path, "c.yaml", "led:\n  pin: 17\n")
    loaded = load_config([path])
    issue = only_issue(loaded)
    assert issue.key == "led.pin" and issue.file == str(path) and issue.outcome == "LED disabled"
    assert loaded.config.led.pin is None and loaded.config.button.pin == 17


def test_pairing_hold_must_exceed_hold(tmp_path):
    loaded = load_config([write(tmp_path, "c.yaml", "button:\n  hold_s: 2\n  pairing_hold_s: 1.5\n")])
    issue = only_issue(loaded)
    assert issue.key == "button.pairing_hold_s"
    assert loaded.config.button.pairing_hold_s == 8.0


# ---- the dataclasses themselves -----------------------------------------------------------------
def test_config_is_frozen():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.button.pin = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.button = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.text.replacements["a"] = "b"  # type: ignore[index]


def test_every_field_has_a_docstring():
    """Attribute docstrings (a string right after each field) for every section and Config."""
    tree = ast.parse(Path(cfgmod.__file__).read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    wanted = {"Config": [f.name for f in dataclasses.fields(Config)]}
    for section, cls in SECTIONS.items():
        wanted[cls.__name__] = section_keys(section)
    for cls_name, names in wanted.items():
        body = classes[cls_name].body
        documented = set()
        for stmt, following in zip(body[:-1], body[1:], strict=True):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)
                    and following.value.value.strip()):
                documented.add(stmt.target.id)  # type: ignore[union-attr]
        assert set(names) <= documented, (cls_name, set(names) - documented)


def test_as_dict_round_trips_through_yaml(tmp_path):
    path = write(tmp_path, "c.yaml", "text:\n  vocabulary: [a, b]\n  replacements: {x: y}\nled:\n  pin: null\n")
    first = load_config([path]).config
    dumped = write(tmp_path, "dump.yaml", yaml.safe_dump(as_dict(first)))
    again = load_config([dumped])
    assert again.issues == [] and again.config == first


# ---- the example file ---------------------------------------------------------------------------
def test_example_config_loads_without_issues():
    loaded = load_config([EXAMPLE])
    assert loaded.issues == [], [str(i) for i in loaded.issues]
    assert loaded.files == [EXAMPLE]


def test_example_config_covers_every_field_with_its_default():
    data = yaml.safe_load(EXAMPLE.read_text())
    assert list(data) == list(SECTIONS)
    for section in SECTIONS:
        assert list(data[section]) == section_keys(section), section
    assert load_config([EXAMPLE]).config == Config()


def test_example_config_documents_every_key():
    """Each key line is preceded by a comment that states its default."""
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.lstrip().startswith("#") and ":" in line:
            comments = []
            j = i - 1
            while j >= 0 and lines[j].lstrip().startswith("#"):
                comments.append(lines[j])
                j -= 1
            assert comments, f"no comment above: {line}"
            assert any("Default" in c for c in comments), f"default not stated above: {line}"
