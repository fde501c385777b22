"""``voicekey bluetooth status|pair|forget`` on fake BlueZ."""

import json

import pytest

from appliance.cli import build_parser
from appliance.commands import bluetooth_cmd
from appliance.errors import ConfigError, TransportError
from appliance.transport.bt_fake import FakeBluez

HOST = "00:BB:02:00:00:01"


def _args(tmp_path, *argv):
    config = tmp_path / "voicekey.yaml"
    config.write_text(f"bluetooth:\n  state_dir: {tmp_path / 'state'}\n")
    return build_parser("bluetooth").parse_args(["bluetooth", *argv, "--config", str(config)])


def test_status_lists_paired_hosts_and_the_last_one(tmp_path, capsys):
    bluez = FakeBluez()
    bluez.bonds = {HOST, "00:BB:02:00:00:02"}
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "last-host-hci0").write_text(HOST + "\n")
    assert bluetooth_cmd.run(_args(tmp_path, "status", "--json"), bluez) == 0
    info = json.loads(capsys.readouterr().out)
    assert [h["address"] for h in info["hosts"]] == [HOST, "00:BB:02:00:00:02"]
    assert info["last_host"] == HOST and info["class"] == "0x000540" and info["pairable"] is False
    assert bluetooth_cmd.run(_args(tmp_path, "status"), bluez) == 0
    assert f"{HOST}  Fake host  not connected (last)" in capsys.readouterr().out


def test_forget_one_clears_the_last_host(tmp_path, capsys):
    bluez = FakeBluez()
    bluez.bonds = {HOST, "00:BB:02:00:00:02"}
    (tmp_path / "state").mkdir()
    last = tmp_path / "state" / "last-host-hci0"
    last.write_text(HOST + "\n")
    assert bluetooth_cmd.run(_args(tmp_path, "forget", HOST.lower()), bluez) == 0
    assert bluez.bonds == {"00:BB:02:00:00:02"} and not last.exists()
    assert bluetooth_cmd.run(_args(tmp_path, "forget", "--all"), bluez) == 0
    assert bluez.bonds == set()


@pytest.mark.parametrize("argv,error,words", [
    (("forget",), ConfigError, "exactly one of"),
    (("forget", HOST, "--all"), ConfigError, "exactly one of"),
    (("forget", "00:BB"), ConfigError, "AA:BB:CC:DD:EE:FF"),
    (("forget", "00:BB:02:00:00:09"), TransportError, "not a paired host"),
    (("pair", "--timeout", "0"), ConfigError, "1 to 3600"),
])
def test_bad_input_says_what_is_wrong(tmp_path, argv, error, words):
    bluez = FakeBluez()
    bluez.bonds = {HOST}
    with pytest.raises(error) as info:
        bluetooth_cmd.run(_args(tmp_path, *argv), bluez)
    assert words in f"{info.value} {info.value.fix}"


def test_pair_opens_the_window_and_returns_when_a_host_paired(tmp_path, capsys):
    bluez = FakeBluez()
    paired = []
    bluez.on_window_open = lambda: paired.append(bluez.pair(HOST))
    assert bluetooth_cmd.run(_args(tmp_path, "pair", "--timeout", "5"), bluez) == 0
    assert paired == [True] and HOST in capsys.readouterr().out
    assert not bluez.window_open  # closed again


def test_pair_recognises_a_host_pairing_again_over_its_old_bond(tmp_path, capsys):
    # The computer forgot VoiceKey and pairs again: the address is already bonded here, so no new
    # bond appears; the agent's confirmation (JustWorksRepairing = confirm) tells it apart.
    bluez = FakeBluez()
    bluez.bonds = {HOST}
    paired = []
    bluez.on_window_open = lambda: paired.append(bluez.pair(HOST))
    assert bluetooth_cmd.run(_args(tmp_path, "pair", "--timeout", "5"), bluez) == 0
    assert paired == [True]
    assert f"paired: {HOST} (again)" in capsys.readouterr().out


def test_pair_gives_up_when_nobody_pairs_and_an_old_bond_is_not_a_new_pairing(tmp_path, capsys):
    bluez = FakeBluez()
    bluez.bonds = {HOST}  # bonded before, and no host asks during the window
    assert bluetooth_cmd.run(_args(tmp_path, "pair", "--timeout", "1"), bluez) == 1
    assert "no host paired before the window closed" in capsys.readouterr().out
    assert not bluez.window_open


def test_a_bluez_call_that_gets_no_answer_fails_with_a_clear_error(monkeypatch):
    import asyncio

    from appliance.transport import bluez as bluez_module

    class SilentBus:
        async def call(self, message):
            await asyncio.sleep(3600)

    monkeypatch.setattr(bluez_module, "CALL_TIMEOUT_S", 0.05)
    real = bluez_module.BluezDbus("hci0")
    real.bus = SilentBus()
    with pytest.raises(TransportError) as info:
        asyncio.run(real.set_pairing(False, 0))
    assert "no answer from bluetoothd" in str(info.value) and "journalctl -u bluetooth" in info.value.fix


def test_a_busy_adapter_is_asked_again_until_it_answers(monkeypatch):
    import asyncio

    from dbus_fast import Message

    from appliance.transport import bluez as bluez_module

    class BusyTwice:
        calls = 0

        async def call(self, message):
            message.serial = BusyTwice.calls + 1  # a real bus numbers the messages it sends
            BusyTwice.calls += 1
            if BusyTwice.calls <= 2:
                return Message.new_error(message, "org.bluez.Error.Busy", "")
            return Message.new_method_return(message)

    monkeypatch.setattr(bluez_module, "BUSY_RETRY_S", 5.0)
    real = bluez_module.BluezDbus("hci0")
    real.bus = BusyTwice()
    asyncio.run(real._set("Discoverable", "b", False))
    assert BusyTwice.calls == 3

    class AlwaysBusy:
        async def call(self, message):
            message.serial = 1
            return Message.new_error(message, "org.bluez.Error.Busy", "")

    monkeypatch.setattr(bluez_module, "BUSY_RETRY_S", 0.6)
    real.bus = AlwaysBusy()
    with pytest.raises(TransportError) as info:
        asyncio.run(real._set("Discoverable", "b", False))
    assert "org.bluez.Error.Busy" in str(info.value)


def test_a_pairable_setting_stuck_busy_does_not_stop_the_window_from_closing(monkeypatch, caplog):
    import asyncio

    from dbus_fast import Message

    from appliance.transport import bluez as bluez_module

    class PairableStuck:
        sets: list = []

        async def call(self, message):
            message.serial = 1
            name = message.body[1]
            if name == "Pairable":
                return Message.new_error(message, "org.bluez.Error.Busy", "")
            PairableStuck.sets.append((name, message.body[2].value))
            return Message.new_method_return(message)

    monkeypatch.setattr(bluez_module, "BUSY_RETRY_S", 0.3)
    real = bluez_module.BluezDbus("hci0")
    real.bus = PairableStuck()
    asyncio.run(real.set_pairing(False, 0))
    assert PairableStuck.sets == [("Discoverable", False)]
    assert "keeps answering Busy for Pairable=False" in caplog.text
