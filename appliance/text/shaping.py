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
Every call re-renders the current dictation from all the words received so far and returns the
difference against what is already on the screen as an :class:`Edit`. Rendering is a pure function
of the words and the earlier dictations, so feeding a transcript word by word or all at once always
ends in the same text.

While streaming, :meth:`Shaper.feed` holds back whatever a later word could still change, so that
what it types is never taken back (live dictation types while the user still speaks):

* trailing words that may start a spoken command or a multi-word replacement / vocabulary phrase
  ("new" -> "new line", "open" -> "open quote", "new" -> "new york");
* a trailing command that acts on the word after it: "cap", "all caps", "no caps", "no space",
  "numeral", "literal";
* an unfinished number: trailing number words ("twenty" before "five", "one hundred and", "three
  point"), see :mod:`appliance.text.numbers`;
* punctuation at the very end ("Hello." types "Hello"; the "." follows with the next word), because
  a punctuation command next would replace it.

Only two things delete what a dictation typed: "scratch that", and a punctuation command said
*first* in a dictation, which replaces the mark that ended the previous, finished dictation ("Is
it ready." + "question mark" -> "Is it ready?"). Regex replacements that span several words are not
held back (a regex has no word prefixes to recognise) and may also retract while streaming.

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
  "literal period" for the word. Commands beyond punctuation:

  - "new line", "press enter" / "press return" type a newline, which the encoder types as Enter
    (with ``keyboard.allow_newline`` off it becomes a space); "new paragraph" two. The next word is
    capitalised.
  - "press tab" types a tab (Tab with ``keyboard.allow_tab``, else a space). A plain "tab" is a word
    ("open a new tab"). The next word keeps sentence casing (a tab is not a sentence end).
  - "open quote" / "close quote" type ``"``; "open bracket" / "open parenthesis" type ``(``, "close
    bracket" / "close parenthesis" ``)``. An opening mark gets a space before it and none after; a
    closing mark none before (and Whisper's punctuation before it is kept: ``"stop."``).
  - "cap <word>" upper-cases the first letter of the next word; "all caps <word>" upper-cases the
    whole next word, "no caps <word>" lower-cases the whole next word (also a sentence start, an
    acronym or a vocabulary spelling). "No space" joins the next word or opening mark to the text
    before it without a space. "The next word" is the next word typed in the same dictation, after
    replacements, vocabulary and numbers (so "all caps gonna" with gonna -> going to is "GOING to");
    commands in between are done first ("cap comma word" -> ", Word").
  - "numeral <number>" types the number as digits whatever ``numbers_min`` ("numeral three" -> 3).
  - Commands for the next word ("cap", "all caps", "no caps", "no space", "numeral", "literal") are
    plain words when no word follows them in the same dictation ("I lost my cap"), and "numeral"
    also when no number word follows ("the numeral system").
* "scratch that" deletes what the current dictation typed before it; said first in a dictation it
  deletes the whole previous dictation (repeat it to go further back, up to ``history_limit``).
* "literal <word>" types the next word as a word ("literal comma" -> "comma") when
  ``literal_word`` is set.
* Numbers (``numbers_min`` > 0): spoken numbers become digits before replacements run ("twenty
  five" -> 25, "one hundred and three" -> 103, "three point five" -> 3.5, "twenty first" -> 21st),
  by the rules of :mod:`appliance.text.numbers`: a whole number below ``numbers_min`` stays words
  ("one of them"), decimals and groups of numbers ("five six seven" -> 5 6 7) always convert, a bare
  scale word does not start a number ("a hundred times" stays), digits Whisper wrote stay as they
  are, and a "literal" word is never converted. Replacements therefore see digits ("(\\d+) percent").
* Replacements (from config) run on each run of ordinary words, before casing and vocabulary; then
  vocabulary words get their configured spelling (whole word, case-insensitive). An empty
  replacement deletes the word together with a comma after it ("So, um, I think" -> "So, I think").
* ``enter_after``: a finished dictation that typed something ends with a newline (Enter), unless it
  already ends with one ("... press enter").
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
from appliance.text import numbers

log = logging.getLogger(__name__)

_TERMINALS = ".?!…"
_CLOSERS = "\"'”’)]}»"
_OPENERS = "\"'“‘([{«"
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


#: Spoken commands (normalised words) -> (kind, text). Kinds: "punct" (attaches to the word before,
#: replacing Whisper's mark there), "newline" / "tab" (typed as Enter / Tab), "open" / "close" (a quote
#: or bracket that the next / previous word touches), "case" ("cap", "upper", "lower": the next word),
#: "nospace" (the next word joins without a space), "numeral" (the number after it as digits),
#: "scratch".
DEFAULT_COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("new", "line"): ("newline", "\n"),
    ("newline",): ("newline", "\n"),
    ("new", "paragraph"): ("newline", "\n\n"),
    ("press", "enter"): ("newline", "\n"),
    ("press", "return"): ("newline", "\n"),
    ("press", "tab"): ("tab", "\t"),
    ("period",): ("punct", "."),
    ("full", "stop"): ("punct", "."),
    ("comma",): ("punct", ","),
    ("question", "mark"): ("punct", "?"),
    ("exclamation", "mark"): ("punct", "!"),
    ("exclamation", "point"): ("punct", "!"),
    ("colon",): ("punct", ":"),
    ("semicolon",): ("punct", ";"),
    ("semi", "colon"): ("punct", ";"),
    ("open", "quote"): ("open", '"'),
    ("close", "quote"): ("close", '"'),
    ("open", "bracket"): ("open", "("),
    ("close", "bracket"): ("close", ")"),
    ("open", "parenthesis"): ("open", "("),
    ("close", "parenthesis"): ("close", ")"),
    ("cap",): ("case", "cap"),
    ("all", "caps"): ("case", "upper"),
    ("no", "caps"): ("case", "lower"),
    ("no", "space"): ("nospace", ""),
    ("numeral",): ("numeral", ""),
    ("scratch", "that"): ("scratch", ""),
}

#: Command kinds that act on the word after them: without one in the same dictation they are words.
_NEEDS_NEXT = frozenset(("case", "nospace", "numeral"))


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

    numbers_min: int = 10
    """Spoken numbers of at least this value are typed as digits ("twenty five" -> 25, "one hundred
    and three" -> 103, "three point five" -> 3.5, "twenty first" -> 21st); smaller ones stay words
    ("one of them"). 0 turns the conversion off. "numeral <number>" always types digits."""

    enter_after: bool = False
    """End every dictation that typed something with a newline (typed as Enter)."""

    def __post_init__(self) -> None:
        if self.history_limit < 1:
            raise ConfigError(f"text history_limit {self.history_limit!r} must be at least 1", fix="use 1 or more")
        if self.numbers_min < 0:
            raise ConfigError(f"text numbers_min {self.numbers_min!r} must not be negative",
                              fix="use 0 (off) or the smallest number to type as digits")
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
    kind: str  # "word" or a command kind (see DEFAULT_COMMANDS)
    text: str
    raw: bool = False  # a word never turned into digits ("literal" words, numbers already converted)


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
        phrases = [r.pattern for _, r in self._replacements if not r.regex] + list(opts.vocabulary)
        for phrase in phrases:
            words = tuple(_norm(w) for w in phrase.split())
            if len(words) > 1 and all(words):
                seqs.append(words)
        self._prefixes = {seq[:i] for seq in seqs for i in range(1, len(seq))}
        self._max_prefix = max((len(p) for p in self._prefixes), default=0)
        self._max_cmd = max((len(k) for k in self._commands), default=1)
        self._numeral = any(kind == "numeral" for kind, _ in self._commands.values())
        self._numbers = opts.numbers_min > 0 or self._numeral
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
        result = self._render(words[: len(words) - self._held_back(words)])
        # Punctuation at the very end waits for the next word, which may be a punctuation command
        # that replaces it ("Hello." + "comma" -> "Hello,"): so nothing typed is taken back.
        result.current = result.current.rstrip(_TRAILING_PUNCT)
        return self._update(result)

    def finish(self) -> Edit:
        """End the dictation: type held-back words and commit it to the session history."""
        if not self._active:
            return Edit()
        words = self._raw.split()
        result = self._render(words, final=True)
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
        """How many trailing words to keep back while streaming, because a later word may still
        change them: the start of a command or of a multi-word replacement / vocabulary phrase, a
        command that acts on the next word (cap, no space, literal...), an unfinished number."""
        keep = len(words)
        norm = [_norm(w) for w in words]
        while keep:
            n = self._hold_tail(words[:keep], norm[:keep])
            if not n:
                break
            keep -= n
        return len(words) - keep

    def _hold_tail(self, words: Sequence[str], norm: Sequence[str]) -> int:
        for n in range(min(len(norm), self._max_prefix), 0, -1):
            if tuple(norm[len(norm) - n:]) in self._prefixes:
                return n
        for n in range(min(len(norm), self._max_cmd), 0, -1):
            action = self._commands.get(tuple(norm[len(norm) - n:]))
            if action is not None and action[0] in _NEEDS_NEXT:
                return n
        if self._literal and norm[-1] == self._literal:
            return 1
        return numbers.open_span(words) if self._numbers else 0

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
                tokens.append(_Token("word", words[i + 1], raw=True))
                i += 2
                continue
            for n in range(min(self._max_cmd, len(words) - i), 0, -1):
                action = self._commands.get(tuple(norm[i:i + n]))
                if action is None:
                    continue
                kind, text = action
                if kind == "numeral":
                    if i + 1 < len(words) and numbers.is_starter(words[i + 1]):
                        end = numbers.span_end(words, i + 1)
                        digits = numbers.to_digits(" ".join(words[i + 1:end]), 0)
                        tokens.append(_Token("word", digits, raw=True))
                        i = end
                        break
                    continue  # "the numeral system": a word
                if kind in _NEEDS_NEXT and i + n >= len(words):
                    continue  # nothing to act on: the words themselves ("a baseball cap")
                tokens.append(_Token(kind, text))
                i += n
                break
            else:
                tokens.append(_Token("word", words[i]))
                i += 1
        return self._digits(tokens) if self.options.numbers_min > 0 else tokens

    def _digits(self, tokens: list[_Token]) -> list[_Token]:
        """Turn number spans in runs of (non-raw) words into digits (see appliance.text.numbers)."""
        out: list[_Token] = []
        i = 0
        while i < len(tokens):
            j = i
            while j < len(tokens) and tokens[j].kind == "word" and not tokens[j].raw:
                j += 1
            if j == i:
                out.append(tokens[i])
                i += 1
                continue
            words = [tok.text for tok in tokens[i:j]]
            k = 0
            for start, end in numbers.spans(words):
                out.extend(_Token("word", w) for w in words[k:start])
                out.append(_Token("word", numbers.to_digits(" ".join(words[start:end]),
                                                            self.options.numbers_min), raw=True))
                k = end
            out.extend(_Token("word", w) for w in words[k:])
            i = j
        return out

    def _render(self, words: Sequence[str], final: bool = False) -> _Render:
        opts = self.options
        history = list(self._history)
        base = list(history)  # history as it was before this dictation typed anything
        out = ""
        ends_with_command = False
        first_word_done = False
        case: str | None = None  # a "cap" / "all caps" / "no caps" waiting for the next word
        glue = False  # the next word or opening mark joins without a space

        def spaced(text: str) -> str:
            before = self._frozen + "".join(history) + out
            if before and not before[-1].isspace() and (out or opts.space_between_dictations) and not glue:
                return " " + text
            return text

        for run in _runs(self._tokens(words)):
            if run[0].kind == "word":
                text = self._replace(" ".join(tok.text for tok in run))
                if not text:
                    continue
                before = self._frozen + "".join(history) + out
                text = spaced(text)
                if opts.capitalize:
                    if _sentence_start(before):
                        text = _upper_first(text)
                    elif not first_word_done and not out.strip(" " + _OPENERS):
                        text = self._lower_first(text)
                if case:
                    text = _case_first_word(text, case)
                    case = None
                first_word_done = True
                glue = False
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
                elif tok.kind in ("newline", "tab", "close"):
                    out += tok.text
                    glue = False
                elif tok.kind == "open":
                    out += spaced(tok.text)
                    glue = True
                elif tok.kind == "case":
                    case = tok.text
                elif tok.kind == "nospace":
                    glue = True
                elif tok.kind == "scratch":
                    case, glue = None, False
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
        if final and opts.enter_after and out and not out.endswith("\n"):
            out += "\n"
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
    # quotes and brackets (closing: 'He said "stop." Then'; opening: 'Done. (It') don't count
    stripped = before.rstrip(" \t" + _CLOSERS + _OPENERS)
    if not stripped or stripped.endswith("\n"):
        return True
    if stripped.endswith(("...", "…")):
        return False  # Whisper's mark for trailing off: the sentence goes on
    return bool(stripped) and stripped[-1] in _TERMINALS


def _case_first_word(text: str, case: str) -> str:
    """Apply a spoken case command to the first word of ``text`` (after its leading space):
    "cap" upper-cases its first letter, "upper" / "lower" the whole word."""
    lead = len(text) - len(text.lstrip())
    word, sep, rest = text[lead:].partition(" ")
    if case == "cap":
        word = _upper_first(word)
    elif case == "upper":
        word = word.upper()
    else:
        word = word.lower()
    return text[:lead] + word + sep + rest


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
