"""Getting reports to the host: the HID device edge (USB hidg, later Bluetooth), and the typist that
paces strokes, survives the host going away, and compensates for the host's Caps Lock."""
