"""The real sounddevice/PortAudio path, with ALSA reading a raw file instead of a microphone.

ALSA's ``file`` plugin (``infile``) feeds a 48 kHz stereo 1 kHz tone to PortAudio through a private
``~/.asoundrc``; no sound card or kernel driver is needed. The capture runs in a subprocess so that
PortAudio is initialised with that configuration. The ``null`` slave is not clocked, so audio
arrives faster than real time: only the conversion path is checked here, not timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ASOUNDRC = """
pcm.voicekeyfile {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.!default {{
    type plug
    slave {{ pcm "voicekeyfile" format S16_LE rate 48000 channels 2 }}
}}
"""

SCRIPT = textwrap.dedent("""
    import json, numpy as np
    from appliance.audio.capture import SoundDeviceSource
    from appliance.audio.source import CaptureOptions
    src = SoundDeviceSource("default", CaptureOptions(pre_roll_ms=0, post_roll_ms=0, max_utterance_s=1.0))
    src.start()
    while not src.max_length_reached:
        import time; time.sleep(0.01)
    audio = src.stop()
    src.close()
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    print(json.dumps({"rate": src.native_rate, "channels": src.channels, "n": len(audio),
                      "freq": float(np.argmax(spec) * 16000 / len(audio)),
                      "peak": float(np.abs(audio).max())}))
""")


def test_real_sounddevice_capture_through_alsa_file_plugin(tmp_path):
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"sounddevice/PortAudio unavailable: {exc}")
    t = np.arange(48_000 * 3) / 48_000
    pcm = (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype("<i2")
    raw = tmp_path / "in.raw"
    np.stack([pcm, pcm], axis=1).tofile(raw)
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    env = {**os.environ, "HOME": str(tmp_path)}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=repo, capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("ALSA file capture did not run here")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        if "AudioError" in out.stderr:
            pytest.skip("this ALSA build has no file/null plugin: " + out.stderr.strip().splitlines()[-1])
        raise AssertionError(out.stderr)
    result = json.loads(lines[-1])
    assert (result["rate"], result["channels"]) == (48_000, 2)  # opened at the native rate
    assert 0 < result["n"] <= 16_000  # 16 kHz, cut at max_utterance_s = 1 s
    assert abs(result["freq"] - 1000) < 5
    assert 0.4 < result["peak"] < 0.6
