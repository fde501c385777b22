"""Independent test oracles: decode what a host would see from our reports.

Nothing in here may use VoiceKey's own layout tables; the oracles answer from libxkbcommon, the
xkb-data symbols files and the system Compose table, exactly as a Linux desktop would.
"""
