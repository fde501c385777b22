"""ArraySource (the test fake), FileSource and load_audio."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.files import FileSource, load_audio
from appliance.audio.format import FRAME_SAMPLES, SAMPLE_RATE
from appliance.audio.source import ArraySource, AudioSource, CaptureOptions
from appliance.errors import AudioError
from tests.audio.signals import dominant_freq, speech_files, tone

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    """Write a PCM WAV (samples float in [-1, 1], 1-D or (frames, channels))."""
    data = np.asarray(samples, dtype=np.float64)
    channels = 1 if data.ndim == 1 else data.shape[1]
    if width == 2:
        raw = (np.clip(data, -1, 1) * 32767).astype("<i2").tobytes()
    elif width == 3:
        ints = (np.clip(data, -1, 1) * 8388607).astype(np.int32).reshape(-1)
        b = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = b.tobytes()
    else:
        raise ValueError(width)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


# -- ArraySource --------------------------------------------------------------------------------
def test_array_source_plays_queued_utterances_with_silent_post_roll():
    a, b = tone(440, 0.5), tone(880, 0.7)
    src = ArraySource([a, b], options=CaptureOptions(pre_roll_ms=0, post_roll_ms=300))
    assert isinstance(src, AudioSource)
    src.start()
    first = src.stop()
    assert len(a) + 9 * FRAME_SAMPLES <= len(first) <= len(a) + 10 * FRAME_SAMPLES  # + 300 ms post-roll
    np.testing.assert_array_equal(first[: len(a)], a)
    assert not first[len(a):].any()  # the room is silent afterwards
    src.start()
    second = src.stop()
    assert abs(dominant_freq(second[: len(b)]) - 880) < 5


def test_array_source_pre_roll_comes_from_fed_audio():
    src = ArraySource(options=CaptureOptions(pre_roll_ms=300, post_roll_ms=0))
    src.feed(tone(440, 1.0))
    src.start()
    src.feed(tone(880, 0.6))
    audio = src.stop()
    assert len(audio) == 10 * FRAME_SAMPLES + 20 * FRAME_SAMPLES
    assert abs(dominant_freq(audio[:4800]) - 440) < 5
    assert abs(dominant_freq(audio[4800:]) - 880) < 5


def test_array_source_resamples_other_rates():
    src = ArraySource([tone(1000, 1.0, rate=44_100, channels=2)], sample_rate=44_100,
                      options=CaptureOptions(pre_roll_ms=0, post_roll_ms=0))
    src.start()
    audio = src.stop()
    assert abs(len(audio) / SAMPLE_RATE - 1.0) <= FRAME_S
    assert abs(dominant_freq(audio) - 1000) < 3


def test_array_source_fed_post_roll_when_silence_is_off():
    src = ArraySource(options=CaptureOptions(pre_roll_ms=0, post_roll_ms=150), silence_post_roll=False)
    src.start()
    src.feed(tone(440, 0.3))
    src.request_stop()
    src.feed(tone(1500, 0.3))
    audio = src.collect()
    assert len(audio) == 15 * FRAME_SAMPLES  # 0.3 s + 0.15 s
    assert abs(dominant_freq(audio[-2400:]) - 1500) < 10


def test_stop_without_start_returns_empty():
    src = ArraySource()
    assert src.stop().size == 0


# -- load_audio -----------------------------------------------------------------------------------
def test_load_audio_resamples_stereo_44k_wav_to_16k_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    write_wav(path, tone(523, 1.0, rate=44_100, channels=2), 44_100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE) <= 2
    assert abs(dominant_freq(audio) - 523) < 3


def test_load_audio_reads_24_bit_wav(tmp_path):
    path = tmp_path / "s24.wav"
    signal = tone(300, 0.5)
    write_wav(path, signal, SAMPLE_RATE, width=3)
    np.testing.assert_allclose(load_audio(path), signal, atol=1e-4)


def test_load_audio_decodes_flac(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "tone.flac"
    signal = tone(750, 0.8, rate=22_050)
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=22_050, layout="mono")
        pcm = (signal * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 22_050
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = load_audio(path)
    assert abs(len(audio) / SAMPLE_RATE - 0.8) < 0.02
    assert abs(dominant_freq(audio) - 750) < 3


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError) as err:
        load_audio(junk)
    assert "junk.wav" in str(err.value) and err.value.fix


# -- FileSource -----------------------------------------------------------------------------------
def test_file_source_instant_returns_the_whole_file_every_time(tmp_path):
    path = tmp_path / "utt.wav"
    signal = tone(440, 0.95)
    write_wav(path, signal, SAMPLE_RATE)
    src = FileSource(path, options=CaptureOptions(pre_roll_ms=300, post_roll_ms=300))
    for _ in range(2):  # replaying must not leak the previous play into the pre-roll
        src.start()
        audio = src.stop()
        np.testing.assert_allclose(audio, signal, atol=2 / 32767)


def test_file_source_on_real_speech_file():
    files = speech_files()
    if not files:
        pytest.skip("shared speech set not found")
    src = FileSource(files[0])
    src.start()
    assert src.wait_finished(0)
    np.testing.assert_array_equal(src.stop(), load_audio(files[0]))


def test_file_source_respects_max_length(tmp_path):
    path = tmp_path / "long.wav"
    write_wav(path, tone(440, 3.0), SAMPLE_RATE)
    src = FileSource(path, options=CaptureOptions(max_utterance_s=1.0))
    src.start()
    audio = src.stop()
    assert src.max_length_reached and abs(len(audio) / SAMPLE_RATE - 1.0) <= FRAME_S


def test_file_source_realtime_plays_to_the_end_and_feeds_frames(tmp_path):
    path = tmp_path / "short.wav"
    write_wav(path, tone(440, 0.3), SAMPLE_RATE)
    src = FileSource(path, realtime=True, options=CaptureOptions(pre_roll_ms=0, post_roll_ms=300))
    sub = src.frames()
    src.start()
    assert src.wait_finished(30)
    audio = src.stop()  # the file ended: no post-roll wait
    assert len(audio) == len(tone(440, 0.3))
    src.close()
    assert len(list(sub)) == 10


def test_file_source_missing_file_fails_at_open(tmp_path):
    src = FileSource(tmp_path / "missing.flac")
    with pytest.raises(AudioError, match="missing.flac"):
        src.open()
