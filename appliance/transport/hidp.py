"""Bluetooth HID protocol (HIDP), pure: the control-channel handler, LED reports, the SDP record.

No sockets here: :class:`ControlChannel` takes the bytes the host sent and says what to answer and
what happened, so the transport (``appliance.transport.bluetooth``) only moves bytes. Facts from the
Bluetooth HID Profile 1.1 (HIDP message headers: type in the high nibble, parameter in the low one)
and ../shared/BLUETOOTH.md (checked against the kernel's HIDP host and BlueZ 5.66).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from appliance.hid.report import (BLUETOOTH_KEYBOARD_DESCRIPTOR, BLUETOOTH_REPORT_ID, RELEASE_ALL,
                                  REPORT_LENGTH, bluetooth_report)

#: L2CAP PSMs of the HID profile.
PSM_CONTROL = 0x11
PSM_INTERRUPT = 0x13
#: The HID service class UUID (BlueZ ``RegisterProfile``).
HID_UUID = "00001124-0000-1000-8000-00805f9b34fb"

# Message types (high nibble).
HANDSHAKE = 0x0
HID_CONTROL = 0x1
GET_REPORT = 0x4
SET_REPORT = 0x5
GET_PROTOCOL = 0x6
SET_PROTOCOL = 0x7
DATA = 0xA

# HANDSHAKE result codes.
SUCCESSFUL = 0x00
ERR_INVALID_REPORT_ID = 0x02
ERR_UNSUPPORTED_REQUEST = 0x03
ERR_INVALID_PARAMETER = 0x04

# HID_CONTROL parameters.
CONTROL_SUSPEND = 0x3
CONTROL_EXIT_SUSPEND = 0x4
CONTROL_VIRTUAL_CABLE_UNPLUG = 0x5

# Report types (low two bits of GET/SET_REPORT and DATA).
REPORT_INPUT = 0x1
REPORT_OUTPUT = 0x2

PROTOCOL_BOOT = 0
PROTOCOL_REPORT = 1


@dataclass(frozen=True)
class ControlResult:
    """What one control-channel message asks of the transport."""

    reply: bytes | None
    """Bytes to send back on the control channel (None: no answer is due, e.g. HID_CONTROL)."""
    leds: int | None = None
    """The host's new LED bits when the message was an LED output report."""
    unplug: bool = False
    """Virtual cable unplug: the host forgets us; we forget it (remove the bond, close the channels)."""


def parse_led_report(message: bytes) -> int | None:
    """The LED bits of an output report (``a2 01 xx`` or ``a2 xx``: some Apple hosts send it
    without the report id, as btkbdd notes), or None when ``message`` is not one."""
    if len(message) < 2 or message[0] != (DATA << 4 | REPORT_OUTPUT):
        return None
    if len(message) >= 3 and message[1] == BLUETOOTH_REPORT_ID:
        return message[2]
    return message[1] if len(message) == 2 else None


class ControlChannel:
    """The device side of one host session's HID control channel.

    Keeps the protocol mode and the last input report (for GET_REPORT). Boot and report protocol
    carry the same bytes on the interrupt channel (``A1 01`` + the 8-byte boot report) because the
    Bluetooth descriptor has Report ID 1, so the mode only changes what GET_PROTOCOL answers.
    """

    def __init__(self) -> None:
        self.protocol = PROTOCOL_REPORT
        self.report = RELEASE_ALL
        self.leds = 0

    def sent(self, report: bytes) -> None:
        """Note the input report just sent on the interrupt channel (GET_REPORT answers it)."""
        if len(report) != REPORT_LENGTH:
            raise ValueError(f"a boot keyboard report is {REPORT_LENGTH} bytes, got {len(report)}")
        self.report = bytes(report)

    def handle(self, message: bytes) -> ControlResult:
        """Answer one message the host sent on the control channel."""
        if not message:
            return ControlResult(reply=None)
        kind, param = message[0] >> 4, message[0] & 0x0F
        if kind == HID_CONTROL:
            if param == CONTROL_VIRTUAL_CABLE_UNPLUG:
                return ControlResult(reply=None, unplug=True)
            # Suspend / exit suspend: nothing to do for a keyboard that sends only on demand.
            return ControlResult(reply=None)
        if kind == SET_PROTOCOL:
            self.protocol = param & 0x1
            return ControlResult(reply=bytes([SUCCESSFUL]))
        if kind == GET_PROTOCOL:
            return ControlResult(reply=bytes([DATA << 4, self.protocol]))
        if kind == GET_REPORT:
            rtype = param & 0x3
            if len(message) >= 2 and message[1] != BLUETOOTH_REPORT_ID and self.protocol == PROTOCOL_REPORT:
                return ControlResult(reply=bytes([ERR_INVALID_REPORT_ID]))
            if rtype == REPORT_INPUT:
                return ControlResult(reply=bluetooth_report(self.report))
            if rtype == REPORT_OUTPUT:
                return ControlResult(reply=bytes([DATA << 4 | REPORT_OUTPUT, BLUETOOTH_REPORT_ID, self.leds]))
            return ControlResult(reply=bytes([ERR_INVALID_PARAMETER]))
        if kind in (SET_REPORT, DATA):
            if param & 0x3 != REPORT_OUTPUT:
                return ControlResult(reply=bytes([ERR_INVALID_PARAMETER]))
            payload = message[1:]
            if len(payload) >= 2 and payload[0] == BLUETOOTH_REPORT_ID:
                self.leds = payload[1]
            elif len(payload) == 1:
                self.leds = payload[0]
            else:
                return ControlResult(reply=bytes([ERR_INVALID_PARAMETER]))
            return ControlResult(reply=bytes([SUCCESSFUL]) if kind == SET_REPORT else None, leds=self.leds)
        return ControlResult(reply=bytes([ERR_UNSUPPORTED_REQUEST]))

    def interrupt(self, message: bytes) -> int | None:
        """A message the host sent on the interrupt channel: the new LED bits, or None."""
        leds = parse_led_report(message)
        if leds is not None:
            self.leds = leds
        return leds


# ---- SDP record ---------------------------------------------------------------------------------
def _el(kind: str, value: str | int | bool) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        width = {"uint8": 2, "uint16": 4, "uint32": 8}[kind]
        text = f"0x{value:0{width}x}"
    else:
        text = value
    return f"<{kind} value={quoteattr(text)}/>"


def _seq(*items: str) -> str:
    return "<sequence>" + "".join(items) + "</sequence>"


def _attr(attr_id: int, body: str) -> str:
    return f'<attribute id="0x{attr_id:04x}">{body}</attribute>'


def sdp_record(name: str, descriptor: bytes = BLUETOOTH_KEYBOARD_DESCRIPTOR) -> str:
    """The HID keyboard's SDP record in BlueZ's XML (``ProfileManager1.RegisterProfile``'s
    ``ServiceRecord``): a keyboard (subclass 0x40) that is a boot device, virtually cabled and
    reconnects itself (the host may reconnect too), on PSM 0x11 (control) and 0x13 (interrupt)."""
    def hidp_stack(psm: int) -> str:
        return _seq(_seq(_el("uuid", "0x0100"), _el("uint16", psm)), _seq(_el("uuid", "0x0011")))

    attrs = [
        _attr(0x0001, _seq(_el("uuid", "0x1124"))),                       # ServiceClassIDList: HID
        _attr(0x0004, hidp_stack(PSM_CONTROL)),                           # ProtocolDescriptorList
        _attr(0x0005, _seq(_el("uuid", "0x1002"))),                       # BrowseGroupList: public
        _attr(0x0006, _seq(_el("uint16", 0x656E), _el("uint16", 0x006A), _el("uint16", 0x0100))),
        _attr(0x0009, _seq(_seq(_el("uuid", "0x1124"), _el("uint16", 0x0101)))),  # HID profile 1.1
        _attr(0x000D, _seq(hidp_stack(PSM_INTERRUPT))),                   # AdditionalProtocolDescriptorLists
        _attr(0x0100, _el("text", name)),                                 # ServiceName
        _attr(0x0101, _el("text", "Keyboard")),                           # ServiceDescription
        _attr(0x0102, _el("text", "VoiceKey")),                           # ProviderName
        _attr(0x0200, _el("uint16", 0x0100)),                             # HIDDeviceReleaseNumber
        _attr(0x0201, _el("uint16", 0x0111)),                             # HIDParserVersion
        _attr(0x0202, _el("uint8", 0x40)),                                # HIDDeviceSubclass: keyboard
        _attr(0x0203, _el("uint8", 0x00)),                                # HIDCountryCode
        _attr(0x0204, _el("boolean", True)),                              # HIDVirtualCable
        _attr(0x0205, _el("boolean", True)),                              # HIDReconnectInitiate
        _attr(0x0206, _seq(_seq(_el("uint8", 0x22),                       # HIDDescriptorList: report
                                f'<text encoding="hex" value="{descriptor.hex()}"/>'))),
        _attr(0x0207, _seq(_seq(_el("uint16", 0x0409), _el("uint16", 0x0100)))),  # HIDLANGIDBaseList
        _attr(0x020B, _el("uint16", 0x0100)),                             # HIDProfileVersion
        _attr(0x020C, _el("uint16", 0x0C80)),                             # HIDSupervisionTimeout
        _attr(0x020D, _el("boolean", True)),                              # HIDNormallyConnectable
        _attr(0x020E, _el("boolean", True)),                              # HIDBootDevice
    ]
    return '<?xml version="1.0" encoding="UTF-8" ?>\n<record>' + "".join(attrs) + "</record>\n"
