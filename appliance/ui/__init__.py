"""The user interface of the appliance: one button (gestures) and one LED (patterns)."""
