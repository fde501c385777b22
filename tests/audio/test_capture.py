"""SoundDeviceSource against the fake sounddevice: resampling, pre/post-roll, max length, unplug."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest

from appliance.audio.capture import SoundDeviceSource
from appliance.audio.fakes import FakeAudioBackend, FakeDevice
from appliance.audio.format import FRAME_SAMPLES, SAMPLE_RATE
from appliance.audio.source import AudioSource, CaptureOptions
from appliance.errors import AudioError, ConfigError
from tests.audio.signals import dominant_freq, tone

NATIVE = 48_000
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


def make(pre: int = 300, post: int = 300, max_s: float = 30.0, *, devices=None, device="USB",
         stop_timeout_s: float = 5.0) -> tuple[SoundDeviceSource, FakeAudioBackend]:
    backend = FakeAudioBackend(devices or [FakeDevice("USB PnP Sound Device", samplerate=NATIVE, channels=2)])
    opts = CaptureOptions(pre_roll_ms=pre, post_roll_ms=post, max_utterance_s=max_s, stop_timeout_s=stop_timeout_s)
    return SoundDeviceSource(device, opts, backend=backend, stall_timeout_s=None), backend


def seconds(x: np.ndarray) -> float:
    return len(x) / SAMPLE_RATE


def test_is_an_audio_source():
    src, _ = make()
    assert isinstance(src, AudioSource)


def test_opens_at_native_rate_and_resamples_48k_stereo_sine_to_16k_mono():
    src, backend = make(pre=0, post=0)
    src.start()
    stream = backend.stream
    assert (stream.samplerate, stream.channels) == (NATIVE, 2)
    stream.feed(tone(1000, 1.0, rate=NATIVE, channels=2))
    audio = src.stop()
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(seconds(audio) - 1.0) < 0.05
    middle = audio[2000:-2000]
    assert abs(dominant_freq(middle) - 1000) < 3
    assert abs(np.sqrt(2) * np.sqrt(np.mean(middle ** 2)) - 0.5) < 0.02  # amplitude kept


def test_channels_are_averaged_to_mono():
    src, backend = make(pre=0, post=0)
    src.start()
    left = tone(700, 0.5, rate=NATIVE)
    right = tone(1900, 0.5, rate=NATIVE)
    backend.stream.feed(np.stack([left, right], axis=1))
    audio = src.stop()[1000:-1000]
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    peak = {f: spec[np.argmin(abs(freqs - f))] for f in (700, 1900)}
    assert peak[700] == pytest.approx(peak[1900], rel=0.1)  # both channels present, equal weight
    assert np.max(np.abs(audio)) < 0.55  # averaged, not summed


def test_native_16k_device_is_passed_through_unchanged():
    src, backend = make(pre=0, post=0, devices=[FakeDevice("Mono mic", samplerate=16000, channels=1)], device=None)
    src.start()
    signal = tone(440, 0.6)
    backend.stream.feed(signal)
    audio = src.stop()
    n = (len(signal) // FRAME_SAMPLES) * FRAME_SAMPLES
    np.testing.assert_array_equal(audio, signal[:n])


def test_pre_roll_keeps_audio_from_before_start_and_post_roll_after_stop():
    src, backend = make(pre=300, post=300)
    src.open()
    stream = backend.stream
    stream.feed(tone(440, 1.0, rate=NATIVE, channels=2))   # before the button
    src.start()
    stream.feed(tone(880, 1.0, rate=NATIVE, channels=2))   # while held
    src.request_stop()
    stream.feed(tone(1300, 1.0, rate=NATIVE, channels=2))  # after release
    audio = src.collect()
    assert abs(seconds(audio) - 1.6) <= 2 * FRAME_S
    head, body, tail = audio[:3200], audio[5600:15200], audio[-3200:]
    assert abs(dominant_freq(head) - 440) < 15
    assert abs(dominant_freq(body) - 880) < 5
    assert abs(dominant_freq(tail) - 1300) < 15
    assert not src.recording


def test_pre_roll_length_is_configurable_and_can_be_off():
    for pre_ms in (0, 150, 600):
        src, backend = make(pre=pre_ms, post=0)
        src.open()
        backend.stream.feed(tone(440, 1.0, rate=NATIVE, channels=2))
        src.start()
        backend.stream.feed(tone(880, 0.3, rate=NATIVE, channels=2))
        audio = src.stop()
        assert abs(seconds(audio) - (pre_ms / 1000 + 0.3)) <= 2 * FRAME_S, pre_ms


def test_stop_blocks_until_the_post_roll_arrived(caplog):
    src, backend = make(pre=0, post=300, stop_timeout_s=30.0)
    src.start()
    backend.stream.feed(tone(880, 0.5, rate=NATIVE, channels=2))
    result: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: result.append(src.stop()))
    with caplog.at_level(logging.WARNING):
        worker.start()
        block = tone(1300, FRAME_S, rate=NATIVE, channels=2)
        fed = 0
        while worker.is_alive() and fed < 1000:  # the microphone keeps delivering 30 ms blocks
            backend.stream.feed(block)
            fed += 1
            worker.join(0.005)
        worker.join(10)
    assert result, "stop() never returned"
    assert "stopped arriving" not in caplog.text  # ended by the post-roll, not by the timeout
    audio = result[0]
    assert seconds(audio) >= 0.5 + 0.3 - 2 * FRAME_S
    assert abs(dominant_freq(audio[-4000:]) - 1300) < 15


def test_stop_returns_what_it_has_when_audio_stops_arriving(caplog):
    src, backend = make(pre=0, post=300, stop_timeout_s=0.05)
    src.start()
    backend.stream.feed(tone(880, 0.5, rate=NATIVE, channels=2))
    with caplog.at_level(logging.WARNING):
        audio = src.stop()
    assert abs(seconds(audio) - 0.5) <= 2 * FRAME_S
    assert "stopped arriving" in caplog.text


def test_max_length_stops_recording_and_keeps_what_was_said():
    src, backend = make(pre=0, post=300, max_s=1.0)
    src.start()
    backend.stream.feed(tone(880, 3.0, rate=NATIVE, channels=2))
    assert src.max_length_reached
    audio = src.stop()  # no post-roll needed: the utterance is already complete
    assert abs(seconds(audio) - 1.0) <= FRAME_S
    assert abs(dominant_freq(audio[1000:]) - 880) < 5
    # the next utterance starts fresh
    src.start()
    assert not src.max_length_reached
    backend.stream.feed(tone(880, 0.3, rate=NATIVE, channels=2))
    src.request_stop()
    backend.stream.feed(tone(880, 0.3, rate=NATIVE, channels=2))
    assert seconds(src.collect()) < 1.0


def test_missing_device_error_names_device_and_fix():
    src, _ = make(device="Blue Yeti")
    with pytest.raises(AudioError) as err:
        src.start()
    text = str(err.value)
    assert "Blue Yeti" in text
    assert err.value.fix and "plug in" in err.value.fix and "USB PnP Sound Device" in err.value.fix


def test_unplug_mid_utterance_returns_audio_so_far_then_recovers_when_plugged_back():
    src, backend = make(pre=0, post=300, stop_timeout_s=30.0)
    src.start()
    backend.stream.feed(tone(880, 0.6, rate=NATIVE, channels=2))
    backend.unplug("USB PnP")
    assert src.failed
    audio = src.stop()  # does not wait for a post-roll that can never come
    assert abs(seconds(audio) - 0.6) <= 2 * FRAME_S

    with pytest.raises(AudioError) as err:
        src.start()  # still unplugged
    assert "USB" in str(err.value) and "plug in" in (err.value.fix or "")

    backend.plug("USB PnP")
    src.start()  # re-scans and re-opens
    assert backend.rescans >= 1 and len(backend.streams) == 2 and backend.stream.active
    backend.stream.feed(tone(440, 0.5, rate=NATIVE, channels=2))
    src.request_stop()
    backend.stream.feed(tone(440, 0.5, rate=NATIVE, channels=2))
    again = src.collect()
    assert abs(seconds(again) - 0.8) <= 2 * FRAME_S
    assert abs(dominant_freq(again[1000:]) - 440) < 5
    assert not backend.streams[0].active


def test_stalled_stream_is_reopened_on_start():
    now = [0.0]
    backend = FakeAudioBackend([FakeDevice("USB mic")])
    src = SoundDeviceSource(None, CaptureOptions(pre_roll_ms=0, post_roll_ms=0), backend=backend,
                            stall_timeout_s=2.0, clock=lambda: now[0])
    src.open()
    backend.stream.feed(tone(440, 0.3, rate=NATIVE, channels=2))
    now[0] = 1.0
    assert not src.failed
    now[0] = 10.0  # nothing delivered for 9 s: the device is silently gone
    assert src.failed
    src.start()
    assert len(backend.streams) == 2 and src.reopened == 1


def test_device_by_index_and_default():
    devices = [FakeDevice("Internal", 44100, 2), FakeDevice("USB mic", 48000, 1)]
    src = SoundDeviceSource(1, backend=FakeAudioBackend(devices), stall_timeout_s=None)
    src.open()
    assert src.info is not None and src.info.name == "USB mic" and src.channels == 1
    src.close()
    dflt = SoundDeviceSource(None, backend=FakeAudioBackend(devices), stall_timeout_s=None)
    dflt.open()
    assert dflt.info is not None and dflt.info.name == "Internal" and dflt.native_rate == 44100


def test_live_frames_are_30ms_at_16k_whether_recording_or_not():
    src, backend = make()
    src.open()
    with src.frames() as sub:
        backend.stream.feed(tone(440, 0.3, rate=NATIVE, channels=2))
        got = []
        while (frame := sub.get(timeout=0)) is not None:
            got.append(frame)
    assert len(got) in (9, 10)  # the resampler's delay may hold back part of a frame
    assert all(f.shape == (FRAME_SAMPLES,) and f.dtype == np.float32 for f in got)


def test_frames_iteration_ends_when_the_source_closes():
    src, backend = make()
    src.open()
    sub = src.frames()
    backend.stream.feed(tone(440, 0.15, rate=NATIVE, channels=2))
    src.close()
    assert 3 <= len(list(sub)) <= 5


def test_frames_async_iteration():
    src, backend = make()
    src.open()

    def feed_and_close() -> None:  # the audio thread
        backend.stream.feed(tone(440, 0.6, rate=NATIVE, channels=2))
        src.close()

    async def consume() -> list[np.ndarray]:
        return [frame async for frame in src.frames()]

    async def runner() -> list[np.ndarray]:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # the iterator binds to this loop
        await asyncio.get_running_loop().run_in_executor(None, feed_and_close)
        return await task

    frames = asyncio.run(runner())
    assert 18 <= len(frames) <= 20
    assert all(f.shape == (FRAME_SAMPLES,) for f in frames)


def test_bad_options_are_rejected_with_the_field_name():
    with pytest.raises(ConfigError, match="pre_roll_ms"):
        CaptureOptions(pre_roll_ms=-1)
    with pytest.raises(ConfigError, match="max_utterance_s"):
        CaptureOptions(max_utterance_s=0)


def test_module_imports_without_sounddevice():
    import subprocess
    import sys

    code = ("import sys; sys.modules['sounddevice'] = None; import appliance.audio as a; "
            "print('sounddevice' in sys.modules and sys.modules['sounddevice'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_sounddevice_gives_an_audio_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import sounddevice -> ImportError
    src = SoundDeviceSource()
    with pytest.raises(AudioError) as err:
        src.open()
    assert "sounddevice" in str(err.value)


def test_check_reports_a_missing_device_until_it_is_back():
    src, backend = make()
    src.open()
    src.check()  # healthy: nothing happens
    assert len(backend.streams) == 1
    backend.unplug("USB")
    for _ in range(2):  # the controller polls while idle
        with pytest.raises(AudioError):
            src.check()
    backend.plug("USB")
    src.check()
    assert backend.stream.active and len(backend.streams) == 2
    src.start()
    backend.stream.feed(tone(440, 0.4, rate=NATIVE, channels=2))
    src.request_stop()
    backend.stream.feed(tone(440, 0.5, rate=NATIVE, channels=2))
    assert len(src.collect()) > 0


def test_cancel_drops_the_utterance_without_waiting():
    src, backend = make(pre=0, post=300, stop_timeout_s=30.0)
    src.start()
    backend.stream.feed(tone(440, 0.5, rate=NATIVE, channels=2))
    src.cancel()
    assert not src.recording
    assert src.stop().size == 0  # nothing open any more: returns at once
    src.start()
    backend.stream.feed(tone(880, 0.3, rate=NATIVE, channels=2))
    src.request_stop()
    backend.stream.feed(tone(880, 0.5, rate=NATIVE, channels=2))
    audio = src.collect()
    assert abs(dominant_freq(audio[500:]) - 880) < 5


def test_frame_sink_gets_live_frames_on_the_audio_thread_and_survives_errors():
    src, backend = make()
    src.open()
    got: list[np.ndarray] = []

    def sink(frame: np.ndarray) -> None:
        got.append(frame)
        if len(got) == 2:
            raise RuntimeError("reader bug")

    src.set_frame_sink(sink)
    backend.stream.feed(tone(440, 0.3, rate=NATIVE, channels=2))
    src.live_frames(None)  # the alias the controller uses
    backend.stream.feed(tone(440, 0.3, rate=NATIVE, channels=2))
    assert len(got) in (9, 10) and all(f.shape == (FRAME_SAMPLES,) for f in got)


def test_stop_without_post_roll_returns_at_once_with_what_was_recorded():
    """At a release after the speech had ended (the controller asks the VAD), the recording ends
    there: no wait for post-roll audio that could only hold silence."""
    src, backend = make(pre=0, post=2000, stop_timeout_s=30.0)
    src.start()
    backend.stream.feed(tone(880, 0.6, rate=NATIVE, channels=2))
    audio = src.stop(post_roll=False)  # no more audio is fed: with a post-roll this would wait 30 s
    assert abs(seconds(audio) - 0.6) <= 2 * FRAME_S
    src.start()  # the next recording starts clean
    backend.stream.feed(tone(440, 0.3, rate=NATIVE, channels=2))
    assert abs(seconds(src.stop(post_roll=False)) - 0.3) <= 2 * FRAME_S
