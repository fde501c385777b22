"""Whisper's token vocabulary, read from the CTranslate2 model directory, for decoding token ids.

The transcriber only needs to turn generated ids back into text and to look up a few special
tokens; CTranslate2 does all tokenisation-related work on the model side. Loading the Hugging Face
``tokenizers`` object for that costs ~20 MB of resident memory (measured: 42 -> 62 MB for tiny.en's
``tokenizer.json``), a tenth of the device's budget, so the vocabulary file the model already ships
(``vocabulary.txt`` or ``vocabulary.json``) is used instead. Whisper's tokens are GPT-2 style
byte-level BPE: each token string spells bytes through the fixed GPT-2 byte<->character table.
Tests check that the decoded text equals ``tokenizers``' on real transcripts.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from appliance.errors import ModelError


@lru_cache(maxsize=1)
def _char_to_byte() -> dict[str, int]:
    """GPT-2's byte-level table, inverted: printable bytes stand for themselves, the other bytes
    are shifted to code points from 256 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table.values():
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


class Vocabulary:
    """Token id <-> string for a Whisper model directory."""

    def __init__(self, model_dir: Path) -> None:
        """Read ``vocabulary.txt`` (one token a line) or ``vocabulary.json`` (a list)."""
        model_dir = Path(model_dir)
        txt, js = model_dir / "vocabulary.txt", model_dir / "vocabulary.json"
        try:
            if txt.is_file():
                tokens = txt.read_text(encoding="utf-8").split("\n")
                if tokens and tokens[-1] == "":
                    tokens.pop()
            elif js.is_file():
                tokens = json.loads(js.read_text(encoding="utf-8"))
            else:
                raise ModelError(f"{model_dir} has no vocabulary.txt or vocabulary.json",
                                 fix="use a complete CTranslate2 Whisper model directory")
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the vocabulary of {model_dir}: {exc}",
                             fix="reinstall the model pack") from exc
        self.tokens: list[str] = tokens
        self.ids: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.eot = self.id("<|endoftext|>")

    def id(self, token: str) -> int:
        """Id of a token string such as ``<|notimestamps|>``; ModelError if missing."""
        try:
            return self.ids[token]
        except KeyError:
            raise ModelError(f"the model vocabulary has no {token} token",
                             fix="use a Whisper model converted by CTranslate2") from None

    def optional_id(self, *tokens: str) -> int | None:
        """Id of the first of ``tokens`` the vocabulary has, or None."""
        return next((self.ids[t] for t in tokens if t in self.ids), None)

    def decode(self, ids: list[int]) -> str:
        """Text of text-token ids (special tokens, i.e. ids from ``<|endoftext|>`` up, are skipped)."""
        table = _char_to_byte()
        data = bytearray()
        for i in ids:
            if 0 <= i < self.eot:
                data.extend(table[ch] for ch in self.tokens[i])
        return data.decode("utf-8", errors="replace")
