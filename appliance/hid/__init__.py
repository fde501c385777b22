"""Text -> keystrokes: HID usage codes, layouts (data), the pure encoder and report building."""
