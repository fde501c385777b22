"""Error types. Each error says what was wrong and how to fix it.

Like gpiozero, every error subclasses both our base and the matching builtin, so callers can catch
either ``VoiceKeyError`` or e.g. ``ValueError``.
"""

from __future__ import annotations


class VoiceKeyError(Exception):
    """Base for all VoiceKey errors. ``fix`` tells the user what to do about it."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class ConfigError(VoiceKeyError, ValueError):
    """A configuration value is invalid (names the file, key, bad value and what is allowed)."""


class LayoutError(VoiceKeyError, KeyError):
    """An unknown keyboard layout was asked for."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return VoiceKeyError.__str__(self)


class GadgetError(VoiceKeyError, RuntimeError):
    """USB gadget set-up through configfs failed."""


class HostNotConnected(VoiceKeyError, ConnectionError):
    """The USB/Bluetooth host is not there (cable out, host asleep, not enumerated)."""


class TransportError(VoiceKeyError, OSError):
    """The HID device could not be opened or written."""


class ModelError(VoiceKeyError, FileNotFoundError):
    """A Whisper model could not be found or loaded."""


class AudioError(VoiceKeyError, OSError):
    """Audio capture failed or an audio file is unusable."""


class ButtonError(VoiceKeyError, OSError):
    """A trigger (button, input-device key) could not be opened or has gone away."""
