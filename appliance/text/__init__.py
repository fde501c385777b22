"""Text shaping: transcribed words -> edits to type (spacing, casing, spoken commands, vocabulary).

Pure string processing, no I/O; see :mod:`appliance.text.shaping` for the rules.
"""

from appliance.text.shaping import (
    DEFAULT_COMMANDS,
    Edit,
    Replacement,
    Shaper,
    ShapingOptions,
    ShapingSession,
)

__all__ = ["DEFAULT_COMMANDS", "Edit", "Replacement", "Shaper", "ShapingOptions", "ShapingSession"]
