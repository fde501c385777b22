"""Test signals: tones, noises, clicks, breath-like bursts, and where the shared speech set lives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.clips import speech_dir

SR = 16_000


def speech_files() -> list[Path]:
    return sorted((speech_dir() / "audio").glob("*.wav"))


def tone(freq: float, seconds: float, rate: int = SR, amp: float = 0.5, channels: int = 0) -> np.ndarray:
    """A sine; ``channels`` > 0 gives a (frames, channels) block."""
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels else x


def dominant_freq(x: np.ndarray, rate: int = SR) -> float:
    """Frequency of the largest FFT bin (Hann-windowed)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec))])


def db(level_dbfs: float) -> float:
    return 10 ** (level_dbfs / 20)


def white_noise(seconds: float, level_dbfs: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SR)) * db(level_dbfs)).astype(np.float32)


def pink_noise(seconds: float, level_dbfs: float, seed: int = 2) -> np.ndarray:
    """1/f noise made by shaping white noise in the frequency domain, scaled to an RMS level."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / np.std(y) * db(level_dbfs)).astype(np.float32)


def band_noise(n: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, n)
    return y / np.std(y)


def breath(seconds: float, level_dbfs: float, seed: int = 3) -> np.ndarray:
    """Breath-like noise: band-passed (300-3000 Hz) noise in 0.6 s swelling bursts, one per second."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = np.zeros(n)
    burst = int(0.6 * SR)
    for start in range(int(0.2 * SR), n - burst, SR):
        env[start:start + burst] = np.hanning(burst)
    return (band_noise(n, 300, 3000, rng) * env * db(level_dbfs)).astype(np.float32)


def clicks(seconds: float, every_s: float = 0.25, amp: float = 0.8, seed: int = 4) -> np.ndarray:
    """Sharp decaying clicks (button presses, taps on the mic)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    shape = amp * np.exp(-np.arange(24) / 4.0)
    for t in np.arange(0.1, seconds - 0.01, every_s):
        i = int(t * SR)
        x[i:i + 24] = shape * np.sign(rng.standard_normal(24))
    return x


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def hum(seconds: float, level_dbfs: float, mains: float = 50.0) -> np.ndarray:
    """Mains hum: the mains frequency and three harmonics, scaled to an RMS level."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * mains * k * t) / k for k in range(1, 5))
    return (x / np.std(x) * db(level_dbfs)).astype(np.float32)


def rumble(seconds: float, level_dbfs: float, seed: int = 5) -> np.ndarray:
    """Fan/traffic rumble: noise with everything above 300 Hz removed."""
    rng = np.random.default_rng(seed)
    return (band_noise(int(seconds * SR), 0, 300, rng) * db(level_dbfs)).astype(np.float32)
