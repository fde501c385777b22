"""The audio format every stage exchanges: float32 mono at :data:`SAMPLE_RATE`, in 30 ms frames.

This is the one definition of the sample rate; capture, VAD and speech-to-text import it from here.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000
"""Samples per second of all audio between stages: what Whisper and webrtcvad both expect."""

FRAME_MS = 30
"""Length of one live frame (webrtcvad accepts 10, 20 or 30 ms)."""

FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""Samples in one live frame (480)."""
