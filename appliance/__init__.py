"""VoiceKey: a voice keyboard appliance (button -> speech -> text -> USB/Bluetooth keystrokes)."""

__version__ = "0.1.0"
