"""Bluetooth HID pure parts: the descriptor with Report ID 1, the control channel, the SDP record."""

import xml.etree.ElementTree as ET

import pytest

from appliance.hid.report import (BLUETOOTH_KEYBOARD_DESCRIPTOR, BOOT_KEYBOARD_DESCRIPTOR, MOD_LSHIFT,
                                  keyboard_report)
from appliance.transport.hidp import ControlChannel, parse_led_report, sdp_record


def test_bluetooth_descriptor_is_the_boot_one_with_report_id_1():
    assert BLUETOOTH_KEYBOARD_DESCRIPTOR == bytes([0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x85, 0x01]) \
        + BOOT_KEYBOARD_DESCRIPTOR[6:]
    assert len(BLUETOOTH_KEYBOARD_DESCRIPTOR) == 65
    assert BOOT_KEYBOARD_DESCRIPTOR.count(bytes([0x85])) == 0  # USB keeps its id-less descriptor


def test_set_and_get_protocol():
    ch = ControlChannel()
    assert ch.handle(bytes([0x60])).reply == bytes([0xA0, 0x01])  # report protocol by default
    assert ch.handle(bytes([0x70])).reply == bytes([0x00])
    assert ch.protocol == 0
    assert ch.handle(bytes([0x60])).reply == bytes([0xA0, 0x00])
    assert ch.handle(bytes([0x71])).reply == bytes([0x00])
    assert ch.handle(bytes([0x60])).reply == bytes([0xA0, 0x01])


def test_get_report_answers_the_current_report():
    ch = ControlChannel()
    assert ch.handle(bytes([0x49, 0x01, 0x09, 0x00])).reply == bytes([0xA1, 0x01]) + bytes(8)
    ch.sent(keyboard_report(MOD_LSHIFT, [0x04]))
    assert ch.handle(bytes([0x41, 0x01])).reply == bytes([0xA1, 0x01, 0x02, 0, 0x04, 0, 0, 0, 0, 0])
    assert ch.handle(bytes([0x41, 0x07])).reply == bytes([0x02])  # no report 7
    assert ch.handle(bytes([0x43, 0x01])).reply == bytes([0x04])  # no feature report
    ch.handle(bytes([0x52, 0x01, 0x02]))
    assert ch.handle(bytes([0x42, 0x01])).reply == bytes([0xA2, 0x01, 0x02])


@pytest.mark.parametrize("message,leds", [
    (bytes([0x52, 0x01, 0x02]), 0x02),  # SET_REPORT output, report id 1
    (bytes([0x52, 0x03]), 0x03),        # without the report id
])
def test_set_report_sets_leds(message, leds):
    ch = ControlChannel()
    result = ch.handle(message)
    assert result.reply == bytes([0x00]) and result.leds == leds and ch.leds == leds


def test_virtual_cable_unplug_and_suspend():
    ch = ControlChannel()
    unplug = ch.handle(bytes([0x15]))
    assert unplug.unplug and unplug.reply is None
    suspend = ch.handle(bytes([0x13]))
    assert not suspend.unplug and suspend.reply is None


@pytest.mark.parametrize("message", [bytes([0x90]), bytes([0x30]), bytes([0x20]), bytes([0xC0, 1])])
def test_anything_else_is_unsupported(message):
    assert ControlChannel().handle(message).reply == bytes([0x03])


def test_set_report_of_wrong_type_is_invalid():
    assert ControlChannel().handle(bytes([0x51, 0x01, 0x00])).reply == bytes([0x04])
    assert ControlChannel().handle(bytes([0x52])).reply == bytes([0x04])


def test_led_reports_on_the_interrupt_channel():
    assert parse_led_report(bytes([0xA2, 0x01, 0x02])) == 0x02
    assert parse_led_report(bytes([0xA2, 0x03])) == 0x03
    assert parse_led_report(bytes([0xA1, 0x01, 0x02])) is None
    assert parse_led_report(b"") is None
    ch = ControlChannel()
    assert ch.interrupt(bytes([0xA2, 0x01, 0x02])) == 0x02 and ch.leds == 0x02


def test_sent_rejects_a_wrong_length():
    with pytest.raises(ValueError, match="8 bytes"):
        ControlChannel().sent(b"\0" * 9)


def _attrs(xml: str) -> dict[int, ET.Element]:
    root = ET.fromstring(xml.split("\n", 1)[1])
    assert root.tag == "record"
    return {int(a.get("id"), 16): a[0] for a in root}


def test_sdp_record():
    attrs = _attrs(sdp_record("VoiceKey <1>"))
    assert attrs[0x0001][0].get("value") == "0x1124"
    psms = [attrs[0x0004][0][1].get("value"), attrs[0x000D][0][0][1].get("value")]
    assert psms == ["0x0011", "0x0013"]
    assert attrs[0x0100].get("value") == "VoiceKey <1>"  # escaped in the XML, intact after parsing
    assert attrs[0x0202].get("value") == "0x40"
    for flag in (0x0204, 0x0205, 0x020E):  # virtual cable, reconnect initiate, boot device
        assert attrs[flag].tag == "boolean" and attrs[flag].get("value") == "true"
    descriptor = attrs[0x0206][0]
    assert descriptor[0].get("value") == "0x22"
    assert descriptor[1].get("encoding") == "hex"
    assert bytes.fromhex(descriptor[1].get("value")) == BLUETOOTH_KEYBOARD_DESCRIPTOR
