"""Word error rate with Whisper's English text normaliser (as in the Whisper paper)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=1)
def _normaliser():  # noqa: ANN202 - third-party type
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalise(text: str) -> str:
    """Whisper's English normalisation (case, punctuation, numbers, spellings)."""
    return " ".join(_normaliser()(text).split())


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of one or more hypotheses against references."""

    errors: int               #: substitutions + deletions + insertions
    ref_words: int            #: reference words

    @property
    def wer(self) -> float:
        """Errors per reference word (0.0 when there are no reference words)."""
        return self.errors / self.ref_words if self.ref_words else 0.0

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(self.errors + other.errors, self.ref_words + other.ref_words)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Errors of one hypothesis after normalising both sides."""
    import jiwer

    ref = normalise(reference)
    hyp = normalise(hypothesis)
    ref_words = len(ref.split())
    if not ref_words:
        return WordErrors(len(hyp.split()), 0)
    if not hyp:
        return WordErrors(ref_words, ref_words)
    out = jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions + out.deletions + out.insertions, ref_words)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """Aggregate errors over a corpus (total errors / total reference words)."""
    total = WordErrors(0, 0)
    for ref, hyp in zip(references, hypotheses, strict=True):
        total = total + word_errors(ref, hyp)
    return total
