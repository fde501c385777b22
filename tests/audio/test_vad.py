"""VAD on real and Piper speech, and on things that are not speech; the hands-free endpointer."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.vad import (
    Endpointer,
    EndpointKind,
    VadOptions,
    VoiceActivityDetector,
    periodicity,
)
from appliance.errors import ConfigError
from tests.audio.signals import SR, breath, clicks, hum, pink_noise, rumble, silence, tone, white_noise


@pytest.fixture(scope="module")
def vad() -> VoiceActivityDetector:
    return VoiceActivityDetector()


def test_every_real_speech_file_has_speech(vad, real_speech):
    missed = [name for name, audio in real_speech if not vad.has_speech(audio)]
    assert not missed


def test_trim_cuts_added_silence_and_keeps_the_speech(vad, real_speech):
    padding = int(vad.options.padding_ms * SR / 1000)
    hangover = int(0.15 * SR)  # webrtcvad keeps saying "speech" briefly after speech ends
    for name, audio in real_speech[::4]:
        padded = np.concatenate((silence(1.0), audio, silence(1.0)))
        span = vad.speech_span(padded)
        trimmed = vad.trim(padded)
        assert span is not None and trimmed is not None, name
        np.testing.assert_array_equal(trimmed, padded[span[0]:span[1]])
        frame = vad.options.frame_samples
        assert SR - padding - frame <= span[0] and span[1] <= SR + len(audio) + padding + hangover, name
        assert len(trimmed) >= 0.5 * len(audio), name
        # the speech itself is kept: nearly all of the recording's energy is inside the span
        energy = float(np.sum(audio.astype(np.float64) ** 2))
        assert float(np.sum(trimmed.astype(np.float64) ** 2)) >= 0.97 * energy, name


def test_same_input_same_answer(vad, piper_speech):
    audio = np.concatenate((silence(0.7), piper_speech, silence(0.4)))
    assert vad.speech_span(audio) == vad.speech_span(audio) == VoiceActivityDetector().speech_span(audio)


def test_trim_keeps_padding_around_the_speech(real_speech):
    name, audio = real_speech[0]
    padded = np.concatenate((silence(1.0), audio, silence(1.0)))
    short = VoiceActivityDetector(padding_ms=0).speech_span(padded)
    long = VoiceActivityDetector(padding_ms=300).speech_span(padded)
    assert short is not None and long is not None
    assert long[0] == max(0, short[0] - int(0.3 * SR))
    assert long[1] == min(len(padded), short[1] + int(0.3 * SR))


def test_piper_speech_is_found_and_trimmed(vad, piper_speech):
    padded = np.concatenate((silence(1.5), piper_speech, silence(1.5)))
    trimmed = vad.trim(padded)
    assert trimmed is not None
    assert len(piper_speech) * 0.8 <= len(trimmed) <= len(piper_speech) + int(0.6 * SR)
    assert np.sqrt(np.mean(trimmed ** 2)) > np.sqrt(np.mean(padded ** 2))  # the silent edges went


@pytest.mark.parametrize("noise", [
    lambda s: white_noise(s, -45), lambda s: pink_noise(s, -40), lambda s: hum(s, -35), lambda s: rumble(s, -35),
])
def test_speech_over_room_noise_is_still_found(vad, piper_speech, noise):
    clean = np.concatenate((silence(1.0), piper_speech, silence(1.0)))
    noisy = clean + noise(len(clean) / SR)[: len(clean)]
    assert vad.trim(noisy) is not None


@pytest.mark.parametrize("name, make", [
    ("silence", lambda: silence(3.0)),
    ("white noise -50 dBFS", lambda: white_noise(3.0, -50)),
    ("white noise -35 dBFS", lambda: white_noise(3.0, -35)),
    ("pink noise -50 dBFS", lambda: pink_noise(3.0, -50)),
    ("pink noise -35 dBFS", lambda: pink_noise(3.0, -35)),
    ("breath -40 dBFS", lambda: breath(3.0, -40)),
    ("breath -30 dBFS", lambda: breath(3.0, -30)),
    ("breath -20 dBFS", lambda: breath(3.0, -20)),
    ("clicks", lambda: clicks(3.0)),
    ("clicks in room noise", lambda: clicks(3.0) + pink_noise(3.0, -45)),
    ("mains hum 50 Hz -25 dBFS", lambda: hum(3.0, -25)),
    ("mains hum 60 Hz -25 dBFS", lambda: hum(3.0, -25, mains=60.0)),
    ("fan rumble -30 dBFS", lambda: rumble(5.0, -30)),
    ("fan rumble -20 dBFS", lambda: rumble(5.0, -20, seed=6)),
])
def test_non_speech_gives_none(vad, name, make):
    audio = make()
    assert vad.trim(audio) is None, name
    assert not vad.has_speech(audio)


def test_a_very_short_blip_of_speech_is_not_an_utterance(vad, piper_speech):
    # the loudest 60 ms of real speech, in silence
    energy = np.convolve(piper_speech ** 2, np.ones(960), mode="valid")
    i = int(np.argmax(energy))
    blip = np.concatenate((silence(1.0), piper_speech[i:i + 960], silence(1.0)))
    assert vad.trim(blip) is None


def test_min_speech_ms_is_the_threshold(piper_speech):
    audio = np.concatenate((silence(0.5), piper_speech, silence(0.5)))
    assert VoiceActivityDetector(min_speech_ms=120).has_speech(audio)
    assert not VoiceActivityDetector(min_speech_ms=60_000).has_speech(audio)


def test_periodicity_separates_a_vowel_like_tone_from_noise():
    frames = np.stack([tone(150, 0.03) + 0.3 * tone(300, 0.03), white_noise(0.03, -20)])
    voiced, noise = periodicity(frames)
    assert voiced > 0.9 and noise < 0.4


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="aggressiveness"):
        VoiceActivityDetector(aggressiveness=5)
    with pytest.raises(ConfigError, match="frame_ms"):
        VoiceActivityDetector(VadOptions(frame_ms=25))


def test_accepts_int16_input(vad, piper_speech):
    pcm = (piper_speech * 32767).astype(np.int16)
    assert vad.has_speech(pcm)


# -- endpointer -------------------------------------------------------------------------------------
def frames_of(audio: np.ndarray, size: int = 480):
    for i in range(0, len(audio) - size + 1, size):
        yield audio[i:i + size]


def run(endpointer: Endpointer, audio: np.ndarray):
    return [ev for ev in (endpointer.feed(f) for f in frames_of(audio)) if ev is not None]


def test_endpointer_finds_start_and_end_after_trailing_silence(piper_speech):
    ep = Endpointer(end_silence_ms=800)
    audio = np.concatenate((silence(1.0), piper_speech, silence(2.0)))
    events = run(ep, audio)
    assert [e.kind for e in events] == [EndpointKind.SPEECH_STARTED, EndpointKind.UTTERANCE_ENDED]
    start, end = events
    assert 1.0 <= start.frame_index * 0.03 <= 1.0 + len(piper_speech) / SR
    assert end.reason == "silence"
    # ends exactly 800 ms (27 frames) after the last voiced frame
    voiced = np.flatnonzero(ep.detector.classify(audio).voiced)
    assert end.frame_index == voiced[-1] + -(-800 // 30)
    assert not ep.in_speech


@pytest.mark.parametrize("end_ms", [300, 800, 1500])
def test_endpointer_end_silence_is_configurable(piper_speech, end_ms):
    audio = np.concatenate((silence(0.5), piper_speech, silence(3.0)))
    ep = Endpointer(end_silence_ms=end_ms)
    voiced = ep.detector.classify(audio).voiced
    ends = [e for e in run(ep, audio) if e.kind is EndpointKind.UTTERANCE_ENDED]
    assert ends
    n = -(-end_ms // 30)
    for end in ends:  # each end: a voiced frame, then exactly n frames without voice
        i = end.frame_index
        assert voiced[i - n] and not voiced[i - n + 1:i + 1].any()


def test_endpointer_cuts_at_max_length(piper_speech):
    ep = Endpointer(max_utterance_ms=1000)
    events = run(ep, np.concatenate((silence(0.5), piper_speech, piper_speech)))
    assert events[0].kind is EndpointKind.SPEECH_STARTED
    assert events[1].kind is EndpointKind.UTTERANCE_ENDED and events[1].reason == "max_length"


def test_endpointer_handles_two_utterances(piper_speech):
    audio = np.concatenate((silence(0.5), piper_speech, silence(1.5), piper_speech, silence(1.5)))
    kinds = [e.kind for e in run(Endpointer(), audio)]
    assert kinds == [EndpointKind.SPEECH_STARTED, EndpointKind.UTTERANCE_ENDED] * 2


def test_endpointer_ignores_noise_breath_and_clicks():
    noise = np.concatenate((pink_noise(2.0, -40), breath(3.0, -25), clicks(2.0), white_noise(2.0, -35),
                            hum(2.0, -25), rumble(3.0, -25)))
    assert run(Endpointer(), noise) == []


def test_endpointer_rejects_wrong_frame_size():
    with pytest.raises(ValueError, match="480"):
        Endpointer().feed(np.zeros(320, dtype=np.float32))


@pytest.mark.parametrize(("after_s", "limit_ms", "needed"), [
    (0.0, 300, True),     # released while still speaking: the post-roll catches the last syllable
    (0.1, 300, True),     # released right after the last voiced frame: it may be a soft ending
    (0.6, 300, False),    # the speech ended well before the release: nothing left to catch
    (0.6, 0, True),       # 0: always the post-roll
    (5.0, 300, True),     # no speech seen lately at all: when in doubt, the post-roll
])
def test_the_post_roll_is_skipped_only_when_the_speech_had_clearly_ended(vad, piper_speech, after_s, limit_ms,
                                                                          needed):
    from appliance.dictation import DictationPipeline, PipelineOptions

    voiced_end = len(piper_speech) - int(vad.trailing_silence_s(piper_speech) * SR)  # its last voiced frame
    pipeline = DictationPipeline(gate=vad, transcriber=None, shaper=None, encoder=None, typist=None,  # type: ignore[arg-type]
                                 options=PipelineOptions(post_roll_unless_silent_ms=limit_ms),
                                 trailing_silence=vad.trailing_silence_s)
    recorded = np.concatenate([silence(1.0), piper_speech[:voiced_end], silence(after_s)])
    assert pipeline.post_roll_needed(recorded) is needed
