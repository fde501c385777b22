"""Speech clips for the whole-device guest test: a real recording from ../shared/speech and Piper speech.

Both end up as 16 kHz mono 16-bit WAV files in the guest's read-write job share, where the guest sees
them at the same path (the recording is copied there: the speech set itself may sit where the guest
cannot see it).
"""

from __future__ import annotations

import json
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench import clips


#: A short, clearly spoken real recording (3.1 s, CC0 1.0, "Voice Dataset (Kathleen), Rhasspy").
RECORDING_ID = "kathleen_arctic_a0175"
#: What Piper speaks (about 3 s with the bundled en_US joe voice).
PIPER_SENTENCE = "Please send the quarterly report to the whole team before lunch."


@dataclass(frozen=True)
class Clip:
    """A WAV file and the sentence spoken in it."""

    wav: Path
    text: str
    source: str

    @property
    def seconds(self) -> float:
        """Length of the WAV file in seconds."""
        with wave.open(str(self.wav), "rb") as w:
            return w.getnframes() / w.getframerate()


def recording(path: Path, clip_id: str = RECORDING_ID, speech_dir: Path | None = None) -> Clip:
    """The clip ``clip_id`` of the shared speech set, copied to ``path``. The copy lives where the
    guest sees it (the job share): the speech set itself may not be visible there (a symlink, or a
    directory under the guest's own /tmp).

    Skips the test when the speech set is not on this machine (as the other real-speech tests do);
    a clip missing from a set that is there is a FileNotFoundError naming it.
    """
    speech_dir = speech_dir or clips.speech_dir()
    manifest = speech_dir / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"speech set not found at {manifest} (set VOICEKEY_SPEECH_DIR)")
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if item["id"] == clip_id:
            wav = speech_dir / item["audio"]
            if not wav.is_file():
                raise FileNotFoundError(f"{wav} (listed in {manifest}) is missing")
            shutil.copyfile(wav, path)
            return Clip(path, item["text"], f"{clip_id} ({item.get('license', 'licence not stated')})")
    raise FileNotFoundError(f"no clip {clip_id!r} in {manifest}")


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write float32 mono samples in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path


def piper(path: Path, text: str = PIPER_SENTENCE) -> Clip:
    """Piper (bundled en_US joe voice, deterministic) speaking ``text``, written to ``path``."""
    from appliance.audio.piper_source import synthesize

    write_wav(path, synthesize(text, deterministic=True))
    return Clip(path, text, "Piper en_US-joe-medium")
