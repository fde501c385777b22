"""Text shaping: Whisper's words -> the edits (backspaces + text) to type on the host. Pure, no I/O.

One :class:`Shaper` lives for a typing session and remembers what it typed, so that consecutive
dictations join up naturally and "scratch that" can remove the previous one::

    shaper = Shaper(ShapingOptions())
    shaper.begin()
    for fragment in transcriber_words:        # " Hello", " world."
        type_edit(shaper.feed(fragment))       # typed as soon as it is safe
    type_edit(shaper.finish())

How it works
------------
Every call re-renders the current dictation from all the words received so far (minus words held
back because they may start a spoken command, e.g. "new" in "new line") and returns the difference
against what is already on the screen as an :class:`Edit`. Rendering is a pure function of the
words and the earlier dictations, so feeding a transcript word by word or all at once always ends in
the same text; the price is an occasional backspace when a later word changes an earlier one
(e.g. "comma" replacing the period Whisper put on the previous word).

Rules
-----
* Spacing: a new dictation starts with a space unless it is the first text of the session, follows a
  newline, or starts with a punctuation command.
* Casing (the continuation rule): Whisper capitalises the first word of every transcript and often
  ends it with a period, because it cannot know that the speaker only paused. The *first word of a
  dictation* therefore follows what was typed before it:

  - capitalised at the start of the session, after a newline, or after ``.`` ``?`` ``!`` (closing
    quotes/brackets after them are skipped);
  - otherwise lower-cased, so "I went to the," + "Store." gives "I went to the, store." -- except
    words that keep their capitals anyway: "I" and its contractions (I'm, I'll...), all-caps
    acronyms (USB), words with inner capitals (iPhone, McDonald), vocabulary words and the first
    word of a replacement's output. Proper nouns Whisper capitalised at the start of a continuation
    ("Paris") are lower-cased; add them to ``vocabulary`` to keep them.

  Words after a sentence end inside a dictation keep Whisper's casing, except that the first letter
  after a spoken "period"/"question mark"/"exclamation mark" or "new line"/"new paragraph" is
  capitalised.
* Spoken commands are matched on words lower-cased and stripped of punctuation, so Whisper's
  "New line." or "Comma," still count. Whisper's punctuation on a command word is dropped. A
  punctuation command replaces any punctuation Whisper put at the end of the word before it
  ("Hello. comma" -> "Hello,"), also across the dictation boundary.
* A command word is always a command ("the Victorian period" types "the Victorian."); say
  "literal period" for the word.
* "scratch that" deletes what the current dictation typed before it; said first in a dictation it
  deletes the whole previous dictation (repeat it to go further back, up to ``history_limit``).
* "literal <word>" types the next word as a word ("literal comma" -> "comma") when
  ``literal_word`` is set.
* Replacements (from config) run on each run of ordinary words, before casing and vocabulary; then
  vocabulary words get their configured spelling (whole word, case-insensitive). An empty
  replacement deletes the word together with a comma after it ("So, um, I think" -> "So, I think").
* Typographic characters (’ “ — …) pass through unchanged; the keystroke encoder decides how to
  type them.

Transcripts are user data: they are logged only at DEBUG.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from appliance.errors import ConfigError

log = logging.getLogger(__name__)

_TERMINALS = ".?!…"
_CLOSERS = "\"'”’)]}»"
_TRAILING_PUNCT = ".,;:!?…"


@dataclass(frozen=True, slots=True)
class Edit:
    """What to type: first ``delete`` backspaces, then ``insert``."""

    delete: int = 0
    """Number of backspaces to type first (characters of earlier VoiceKey output to remove)."""

    insert: str = ""
    """Text to type after the backspaces."""

    def __bool__(self) -> bool:
        return bool(self.delete or self.insert)

    def apply_to(self, text: str) -> str:
        """Return ``text`` as it looks after typing this edit at its end (for tests and simulators)."""
        if self.delete > len(text):
            raise ValueError(f"edit deletes {self.delete} characters but only {len(text)} exist")
        return (text[: len(text) - self.delete] if self.delete else text) + self.insert


@dataclass(frozen=True, slots=True)
class Replacement:
    """One entry of the replacement table."""

    pattern: str
    """Whole word/phrase to find (case-insensitive), or a regular expression when ``regex`` is set."""

    replacement: str
    """Text to put instead. For ``regex`` entries, ``\\1`` / ``\\g<name>`` refer to groups."""

    regex: bool = False
    """Treat ``pattern`` as a Python regular expression (matched case-insensitively)."""

    def compile(self) -> re.Pattern[str]:
        """The compiled, case-insensitive pattern; ConfigError when it is invalid."""
        if not self.pattern.strip():
            raise ConfigError("replacement with an empty pattern", fix="give each replacement a non-empty 'pattern'")
        if self.regex:
            source = self.pattern
        else:
            source = r"(?<!\w)" + re.escape(self.pattern.strip()) + r"(?!\w)"
            if not self.replacement:
                # deleting a word (a filler such as "um") takes Whisper's comma after it along
                source += r"[,;:]?"
        try:
            return re.compile(source, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"replacement pattern {self.pattern!r} is not a valid regular expression: {exc}",
                              fix="fix the regex, or set regex: false to match the text literally") from exc


#: Spoken commands (normalised words) -> action. ("punct", mark), ("newline", text), ("scratch", "").
DEFAULT_COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("new", "line"): ("newline", "\n"),
    ("newline",): ("newline", "\n"),
    ("new", "paragraph"): ("newline", "\n\n"),
    ("period",): ("punct", "."),
    ("full", "stop"): ("punct", "."),
    ("comma",): ("punct", ","),
    ("question", "mark"): ("punct", "?"),
    ("exclamation", "mark"): ("punct", "!"),
    ("exclamation", "point"): ("punct", "!"),
    ("colon",): ("punct", ":"),
    ("semicolon",): ("punct", ";"),
    ("semi", "colon"): ("punct", ";"),
    ("scratch", "that"): ("scratch", ""),
}


@dataclass(frozen=True, slots=True)
class ShapingOptions:
    """Settings of :class:`Shaper` (normally from the ``text:`` section of the config file)."""

    commands: bool = True
    """Recognise spoken commands ("new line", "comma", "scratch that", ...)."""

    literal_word: str | None = "literal"
    """Word that makes the following word plain text ("literal comma" -> "comma"); None disables it."""

    vocabulary: tuple[str, ...] = ()
    """Custom words/names. Passed to the transcriber as hints, and typed with exactly this spelling."""

    replacements: tuple[Replacement, ...] = ()
    """Replacement table, applied in order to each run of ordinary words."""

    capitalize: bool = True
    """Apply the sentence-case continuation rule (see the module docstring); False types Whisper's casing."""

    space_between_dictations: bool = True
    """Put a space before a dictation that continues a line."""

    drop_final_period: bool = False
    """Drop the '.' (or '...') Whisper puts at the very end of a dictation, so a paused sentence can
    continue (say "period" to end a sentence explicitly)."""

    history_limit: int = 50
    """How many past dictations "scratch that" can reach back through."""

    def __post_init__(self) -> None:
        if self.history_limit < 1:
            raise ConfigError(f"text history_limit {self.history_limit!r} must be at least 1", fix="use 1 or more")
        if self.literal_word is not None and not _norm(self.literal_word):
            raise ConfigError(f"text literal_word {self.literal_word!r} has no letters",
                              fix="use a single word such as 'literal', or null to disable")
        for r in self.replacements:
            r.compile()


def _norm(word: str) -> str:
    """Lower-case and keep only letters/digits: how command words are compared."""
    return "".join(ch for ch in word.casefold() if ch.isalnum())


@dataclass(slots=True)
class _Token:
    kind: str  # "word", "punct", "newline", "scratch"
    text: str


@dataclass(slots=True)
class _Render:
    history: list[str]
    current: str


@dataclass
class Shaper:
    """Stateful shaping across the dictations of one typing session (see the module docstring)."""

    options: ShapingOptions = field(default_factory=ShapingOptions)

    def __post_init__(self) -> None:
        opts = self.options
        self._commands: dict[tuple[str, ...], tuple[str, str]] = dict(DEFAULT_COMMANDS) if opts.commands else {}
        self._literal = _norm(opts.literal_word) if (opts.commands and opts.literal_word) else None
        self._replacements = [(r.compile(), r) for r in opts.replacements]
        self._vocab = [(re.compile(r"(?<!\w)" + re.escape(v.strip()) + r"(?!\w)", re.IGNORECASE), v.strip())
                       for v in opts.vocabulary if v.strip()]
        self._protected = {v.strip() for v in opts.vocabulary if v.strip()}
        for _, r in self._replacements:
            first = r.replacement.split()
            if first:
                self._protected.add(first[0])
        # Word sequences whose proper prefixes are held back while streaming.
        seqs: list[tuple[str, ...]] = list(self._commands)
        for _, r in self._replacements:
            if not r.regex:
                words = tuple(_norm(w) for w in r.pattern.split())
                if len(words) > 1 and all(words):
                    seqs.append(words)
        self._prefixes = {seq[:i] for seq in seqs for i in range(1, len(seq))}
        self._max_cmd = max((len(k) for k in self._commands), default=1)
        self.reset()

    # -- public API -----------------------------------------------------------------------------
    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The custom vocabulary, for the transcriber's hotwords / initial prompt."""
        return self.options.vocabulary

    def vocabulary_prompt(self) -> str | None:
        """An initial prompt listing the vocabulary (``None`` when there is none)."""
        words = [v.strip() for v in self.options.vocabulary if v.strip()]
        return ", ".join(words) + "." if words else None

    @property
    def text(self) -> str:
        """Everything this session has typed that is still on screen (within ``history_limit``)."""
        return self._frozen + "".join(self._typed_history) + self._typed

    def reset(self) -> None:
        """Forget the session: the next dictation is treated as the start of a text."""
        self._frozen = ""  # older output, beyond history_limit: context only, never edited
        self._history: list[str] = []
        self._raw = ""
        self._typed = ""  # what the current dictation has typed so far
        self._typed_history: list[str] = []  # history as currently on screen
        self._active = False

    def undo_last(self) -> str:
        """Forget the last finished dictation and return its text (the caller deletes it on the
        host). "" when there is none. Independent of spoken commands (the double press uses it)."""
        if self._active or not self._history:
            return ""
        last = self._history.pop()
        self._typed_history = list(self._history)
        return last

    def begin(self) -> None:
        """Start a dictation (implicitly finishes an unfinished one first)."""
        if self._active:
            log.debug("begin() while a dictation is open: finishing it")
            self.finish()
        self._active = True
        self._raw = ""
        self._typed = ""
        self._typed_history = list(self._history)

    def feed(self, fragment: str) -> Edit:
        """Add transcribed text (usually one word with its leading space) and return what to type now.

        A fragment that does not start with whitespace continues the previous word.
        """
        if not self._active:
            self.begin()
        self._raw += fragment
        words = self._raw.split()
        keep = len(words) - self._held_back(words)
        if self._literal and keep > 0 and _norm(words[keep - 1]) == self._literal:
            keep -= 1  # "literal" applies to the held-back word after it
        return self._update(self._render(words[:keep]))

    def finish(self) -> Edit:
        """End the dictation: type held-back words and commit it to the session history."""
        if not self._active:
            return Edit()
        words = self._raw.split()
        result = self._render(words)
        edit = self._update(result)
        self._history = result.history + ([result.current] if result.current else [])
        overflow = len(self._history) - self.options.history_limit
        if overflow > 0:
            self._frozen = (self._frozen + "".join(self._history[:overflow]))[-64:]
            self._history = self._history[overflow:]
        self._active = False
        self._raw = ""
        self._typed = ""
        self._typed_history = list(self._history)
        log.debug("dictation done: %r", result.current)
        return edit

    def shape(self, transcript: str) -> Edit:
        """One whole dictation in one call: ``begin(); feed(transcript); finish()`` combined."""
        self.begin()
        first = self.feed(transcript)
        return _combine(first, self.finish())

    # -- internals ------------------------------------------------------------------------------
    def _held_back(self, words: Sequence[str]) -> int:
        """How many trailing words may be the start of a command or multi-word replacement."""
        norm = [_norm(w) for w in words]
        limit = min(len(norm), max(self._max_cmd, 1) + 1)
        for n in range(limit, 0, -1):
            tail = tuple(norm[len(norm) - n:])
            if tail in self._prefixes:
                return n
            if self._literal and n == 1 and tail[0] == self._literal:
                return 1
        return 0

    def _update(self, result: _Render) -> Edit:
        old = "".join(self._typed_history) + self._typed
        new = "".join(result.history) + result.current
        common = 0
        limit = min(len(old), len(new))
        while common < limit and old[common] == new[common]:
            common += 1
        edit = Edit(len(old) - common, new[common:])
        self._typed_history = list(result.history)
        self._typed = result.current
        if edit:
            log.debug("edit: delete %d insert %r", edit.delete, edit.insert)
        return edit

    def _tokens(self, words: Sequence[str]) -> list[_Token]:
        tokens: list[_Token] = []
        norm = [_norm(w) for w in words]
        i = 0
        while i < len(words):
            if self._literal and norm[i] == self._literal and i + 1 < len(words):
                tokens.append(_Token("word", words[i + 1]))
                i += 2
                continue
            for n in range(min(self._max_cmd, len(words) - i), 0, -1):
                action = self._commands.get(tuple(norm[i:i + n]))
                if action is not None:
                    tokens.append(_Token(action[0], action[1]))
                    i += n
                    break
            else:
                tokens.append(_Token("word", words[i]))
                i += 1
        return tokens

    def _render(self, words: Sequence[str]) -> _Render:
        opts = self.options
        history = list(self._history)
        base = list(history)  # history as it was before this dictation typed anything
        out = ""
        ends_with_command = False
        first_word_done = False

        for run in _runs(self._tokens(words)):
            if run[0].kind == "word":
                text = self._replace(" ".join(tok.text for tok in run))
                if not text:
                    continue
                before = self._frozen + "".join(history) + out
                if before and not before[-1].isspace() and (out or opts.space_between_dictations):
                    text = " " + text
                if opts.capitalize:
                    if _sentence_start(before):
                        text = _upper_first(text)
                    elif not first_word_done and not out:
                        text = self._lower_first(text)
                first_word_done = True
                out += text
                ends_with_command = False
                continue
            for tok in run:
                ends_with_command = True
                if tok.kind == "punct":
                    if out:
                        out = out.rstrip(_TRAILING_PUNCT) or out
                    elif history and history[-1] and history[-1][-1] in _TRAILING_PUNCT:
                        history[-1] = history[-1].rstrip(_TRAILING_PUNCT)
                        if not history[-1]:
                            history.pop()
                    out += tok.text
                elif tok.kind == "newline":
                    out += tok.text
                elif tok.kind == "scratch":
                    if out:
                        history = list(base)
                        out = ""
                        first_word_done = False
                    elif history:
                        history.pop()
                        base = list(history)
                        log.debug("scratch that: removed the previous dictation")
                    else:
                        log.debug("scratch that: nothing to remove")
        if opts.drop_final_period and not ends_with_command:
            for tail in ("...", "…", "."):
                if out.endswith(tail):
                    out = out[: -len(tail)]
                    break
        return _Render(history, out)

    def _replace(self, text: str) -> str:
        deleted = False
        for pattern, rep in self._replacements:
            if rep.regex:
                text = pattern.sub(rep.replacement, text)
            else:
                text = pattern.sub(_constant(rep.replacement), text)
            deleted = deleted or not rep.replacement
        for pattern, spelling in self._vocab:
            text = pattern.sub(_constant(spelling), text)
        if deleted:  # tidy the gaps a deletion leaves: "so  um." -> "so."
            text = re.sub(r" {2,}", " ", text)
            text = re.sub(r" +([,.;:!?])", r"\1", text)
            if not any(ch.isalnum() for ch in text):
                text = ""  # only Whisper's punctuation around the deleted words is left
        return text.strip()

    def _lower_first(self, text: str) -> str:
        """Lower-case the first word unless it is one that keeps its capitals (see module doc)."""
        lead = len(text) - len(text.lstrip())
        body = text[lead:]
        word = body.split(" ", 1)[0]
        core = word.strip("\"'“”‘’([{«»}])" + _TRAILING_PUNCT)
        if not core or core in self._protected:
            return text
        letters = [c for c in core if c.isalpha()]
        if not letters or not letters[0].isupper():
            return text
        if core == "I" or re.fullmatch(r"I['’][a-z]+", core):
            return text
        if len(letters) > 1 and any(c.isupper() for c in letters[1:]):
            return text  # acronym (USB) or inner capital (iPhone, McDonald)
        idx = body.index(letters[0])
        return text[:lead] + body[:idx] + body[idx].lower() + body[idx + 1:]


def _runs(tokens: Iterable[_Token]) -> list[list[_Token]]:
    """Group tokens into runs of the same class: words (so replacements can span words) or commands."""
    runs: list[list[_Token]] = []
    for tok in tokens:
        if runs and (runs[-1][0].kind == "word") == (tok.kind == "word"):
            runs[-1].append(tok)
        else:
            runs.append([tok])
    return runs


def _constant(value: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement function that inserts ``value`` literally (no backslash processing)."""
    return lambda _match: value


def _sentence_start(before: str) -> bool:
    """True when the next word starts a sentence: start of text, after a newline or . ? !"""
    stripped = before.rstrip(" \t")
    if not stripped or stripped.endswith("\n"):
        return True
    stripped = stripped.rstrip(_CLOSERS)
    if stripped.endswith(("...", "…")):
        return False  # Whisper's mark for trailing off: the sentence goes on
    return bool(stripped) and stripped[-1] in _TERMINALS


def _upper_first(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1:] if ch.islower() else text
        if ch.isdigit():
            return text
    return text


def _combine(first: Edit, second: Edit) -> Edit:
    """One edit equivalent to typing ``first`` then ``second``."""
    if second.delete <= len(first.insert):
        return Edit(first.delete, first.insert[: len(first.insert) - second.delete] + second.insert)
    return Edit(first.delete + second.delete - len(first.insert), second.insert)


#: The name used in the design notes.
ShapingSession = Shaper
