"""Pure classification of button edges into gestures.

Recording starts on every press (nothing said right after pressing is lost); what the press *was*
is decided as it goes:

- ``PRESS``           every press (the controller starts listening if idle)
- ``HOLD_END``        released after at least ``hold_s``: push-to-talk finished
- ``TAP``             released before ``hold_s`` and no second press within ``double_press_s``:
                      hands-free toggle (start, or end when already hands-free)
- ``DOUBLE``          a second press within ``double_press_s`` of a tap's release:
                      cancel the current dictation, or undo the last one when idle
- ``LONG_HOLD``       still held after ``pairing_hold_s``: Bluetooth pairing mode (the controller
                      ignores it while the user is talking); its release is still a ``HOLD_END``

TAP is only known once the double-press window has passed, so the classifier has a ``tick(now)``
that the controller calls (``deadline()`` says when).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Gesture(enum.Enum):
    PRESS = "press"
    HOLD_END = "hold_end"
    TAP = "tap"
    DOUBLE = "double"
    LONG_HOLD = "long_hold"


@dataclass(frozen=True)
class GestureTiming:
    """Thresholds in seconds (from config ``button.*``)."""

    hold_s: float = 0.4
    double_press_s: float = 0.35
    pairing_hold_s: float = 8.0


class GestureClassifier:
    """Feed ``pressed(t)``/``released(t)`` edges and ``tick(t)``; each returns the gestures recognised."""

    def __init__(self, timing: GestureTiming = GestureTiming()) -> None:
        self.timing = timing
        self._down_at: float | None = None
        self._tap_released_at: float | None = None
        self._long_fired = False
        self._second_press = False

    def pressed(self, t: float) -> list[Gesture]:
        if self._down_at is not None:  # bounce or a lost release: ignore
            return []
        out: list[Gesture] = []
        self._down_at = t
        self._long_fired = False
        if self._tap_released_at is not None and t - self._tap_released_at <= self.timing.double_press_s:
            self._tap_released_at = None
            self._second_press = True
            return [Gesture.DOUBLE]
        out.extend(self.tick(t))
        self._second_press = False
        out.append(Gesture.PRESS)
        return out

    def released(self, t: float) -> list[Gesture]:
        if self._down_at is None:
            return []
        held = t - self._down_at
        self._down_at = None
        if self._second_press:  # the release of a double press's second press
            self._second_press = False
            return []
        if held >= self.timing.hold_s:  # also after LONG_HOLD: a long dictation ends here
            return [Gesture.HOLD_END]
        self._tap_released_at = t
        return []

    def tick(self, t: float) -> list[Gesture]:
        if self._down_at is not None and not self._long_fired and not self._second_press \
                and t - self._down_at >= self.timing.pairing_hold_s:
            self._long_fired = True
            return [Gesture.LONG_HOLD]
        if self._tap_released_at is not None and t - self._tap_released_at > self.timing.double_press_s:
            self._tap_released_at = None
            return [Gesture.TAP]
        return []

    def deadline(self) -> float | None:
        """When ``tick`` may next produce a gesture (None: only an edge can)."""
        times = []
        if self._tap_released_at is not None:
            times.append(self._tap_released_at + self.timing.double_press_s + 1e-3)
        if self._down_at is not None and not self._long_fired and not self._second_press:
            times.append(self._down_at + self.timing.pairing_hold_s)
        return min(times) if times else None
