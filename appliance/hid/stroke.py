"""The unit of typing: the reports that produce one piece of text, ending with all keys released."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.hid.report import RELEASE_ALL


@dataclass(frozen=True, slots=True)
class Stroke:
    """Reports that type ``text`` (one character, a dead-key sequence, or a Unicode-input sequence).

    Every stroke ends with an all-zero report, so a transport can send it, or re-send it after the
    host came back, as one atomic unit without leaving a key held.
    """

    text: str
    reports: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.reports or self.reports[-1] != RELEASE_ALL:
            raise ValueError(f"stroke for {self.text!r} must end with the all-zero report")
