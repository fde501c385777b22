"""Text shaping: commands, spacing, casing, scratch that, replacements, vocabulary, streaming == batch."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import ConfigError
from appliance.text import Edit, Replacement, Shaper, ShapingOptions


class Screen:
    """The host's text field: applies edits the way the typed keys would."""

    def __init__(self, shaper: Shaper | None = None) -> None:
        self.shaper = shaper or Shaper()
        self.text = ""
        self.edits: list[Edit] = []

    def apply(self, edit: Edit) -> None:
        self.edits.append(edit)
        self.text = edit.apply_to(self.text)

    def dictate(self, *fragments: str) -> str:
        """One dictation, fed fragment by fragment; returns the screen text."""
        self.shaper.begin()
        for frag in fragments:
            self.apply(self.shaper.feed(frag))
        self.apply(self.shaper.finish())
        assert self.text == self.shaper.text
        return self.text

    def say(self, transcript: str) -> str:
        """One dictation, fed word by word as the transcriber would."""
        words = transcript.split()
        return self.dictate(*(" " + w for w in words))


def shaped(*transcripts: str, **options) -> str:
    screen = Screen(Shaper(ShapingOptions(**options)))
    for t in transcripts:
        screen.say(t)
    return screen.text


# -- Edit -----------------------------------------------------------------------------------------
def test_edit_apply_and_truthiness():
    assert Edit(2, "y!").apply_to("hex") == "hy!"
    assert not Edit() and Edit(1) and Edit(0, "a")
    with pytest.raises(ValueError):
        Edit(4, "").apply_to("abc")


# -- spacing and casing ---------------------------------------------------------------------------
def test_first_dictation_has_no_leading_space_and_is_capitalised():
    assert shaped("hello there.") == "Hello there."


def test_consecutive_dictations_are_separated_by_one_space():
    assert shaped("Hello there.", "How are you?") == "Hello there. How are you?"


def test_no_space_after_a_newline():
    assert shaped("Dear Sam, new line", "Thanks for the letter.") == "Dear Sam,\nThanks for the letter."


def test_continuation_mid_sentence_is_lower_cased():
    assert shaped("I went to the,", "Store.") == "I went to the, store."
    assert shaped("I went to the", "Store and then", "Home.") == "I went to the store and then home."


def test_an_ellipsis_is_not_a_sentence_end():
    assert shaped("I went to the...", "Store.") == "I went to the... store."
    assert shaped("I went to the…", "Store.", drop_final_period=True) == "I went to the store"


def test_continuation_keeps_capitals_that_belong():
    assert shaped("Yesterday", "I went out.") == "Yesterday I went out."
    assert shaped("then", "I'm done.") == "Then I'm done."
    assert shaped("plug in the", "USB cable.") == "Plug in the USB cable."
    assert shaped("buy an", "iPhone today.") == "Buy an iPhone today."
    assert shaped("we met at", "McDonald's.") == "We met at McDonald's."


def test_vocabulary_words_keep_their_spelling_at_a_continuation():
    assert shaped("I flew to", "Paris.") == "I flew to paris."  # documented limitation...
    assert shaped("I flew to", "Paris.", vocabulary=("Paris",)) == "I flew to Paris."  # ...and its fix


def test_after_a_sentence_end_the_next_dictation_is_capitalised():
    assert shaped("It works.", "and it is fast.") == "It works. And it is fast."
    assert shaped('He said "stop."', "then he left.") == 'He said "stop." Then he left.'


def test_capitalize_off_types_whisper_casing():
    assert shaped("I went to the,", "Store.", capitalize=False) == "I went to the, Store."


def test_no_space_between_dictations_when_disabled():
    assert shaped("abc", "def", space_between_dictations=False) == "Abcdef"


# -- spoken commands ------------------------------------------------------------------------------
@pytest.mark.parametrize("spoken, mark", [
    ("period", "."), ("full stop", "."), ("comma", ","), ("question mark", "?"),
    ("exclamation mark", "!"), ("exclamation point", "!"), ("colon", ":"), ("semicolon", ";"),
])
def test_punctuation_commands(spoken, mark):
    assert shaped(f"hello {spoken} world") == f"Hello{mark} " + ("World" if mark in ".?!" else "world")


@pytest.mark.parametrize("transcript, expected", [
    ("Hello, Comma, world.", "Hello, world."),   # Whisper's commas around the command are dropped
    ("Hello comma. World.", "Hello, World."),    # words after a command keep Whisper's casing
    ("hello COMMA world", "Hello, world"),
    ("Hello, comma! world", "Hello, world"),
])
def test_commands_ignore_case_and_whisper_punctuation(transcript, expected):
    assert shaped(transcript) == expected


def test_new_line_and_new_paragraph():
    assert shaped("First line. New line. Second line.") == "First line.\nSecond line."
    assert shaped("First. Newline. second") == "First.\nSecond"
    assert shaped("Intro. New paragraph. Body text.") == "Intro.\n\nBody text."


def test_command_at_the_start_of_a_dictation_attaches_to_the_previous_text():
    assert shaped("Is it ready.", "Question mark.") == "Is it ready?"  # replaces Whisper's period
    assert shaped("Wait", "Comma.", "then go.") == "Wait, then go."
    assert shaped("Done.", "New paragraph.", "Next part.") == "Done.\n\nNext part."


def test_commands_can_be_disabled():
    assert shaped("hello comma world new line", commands=False) == "Hello comma world new line"


def test_literal_word_escape():
    assert shaped("type the word literal comma here") == "Type the word comma here"
    assert shaped("literal new line is two words") == "New line is two words"


def test_a_lone_command_prefix_is_typed_as_a_word():
    assert shaped("it was new") == "It was new"
    assert shaped("a full glass") == "A full glass"


@pytest.mark.parametrize("transcript, expected", [
    ("Dear Sam, press enter. Thanks.", "Dear Sam,\nThanks."),
    ("name press tab Sam", "Name\tSam"),
    ("open a new tab", "Open a new tab"),               # a plain "tab" is a word
    ("He said open quote stop close quote and left.", 'He said "stop" and left.'),
    ("A note open bracket an aside close bracket here.", "A note (an aside) here."),
    ("see open parenthesis page close parenthesis", "See (page)"),
    ('He said, "stop." Close quote.', 'He said, "stop.""'),  # close quote keeps Whisper's period
    ("Done. Open quote it works close quote", 'Done. "It works"'),  # a sentence starts inside it
])
def test_enter_tab_quote_and_bracket_commands(transcript, expected):
    assert shaped(transcript) == expected


def test_open_quote_at_a_continuation_lowers_whisper_capital():
    assert shaped("I went to the", "Open quote. Store close quote.") == 'I went to the "store"'


@pytest.mark.parametrize("transcript, expected", [
    ("I met cap smith today", "I met Smith today"),
    ("plug in the all caps usb cable", "Plug in the USB cable"),
    ("no caps Hello there", "hello there"),                # overrides the sentence start...
    ("I like no caps iPhone", "I like iphone"),           # ...and inner capitals: the whole word
    ("all caps gonna win", "GOING to win"),               # the first word of a replacement's output
    ("cap literal comma", "Comma"),
    ("hello cap comma world", "Hello, World"),            # waits for the next word
    ("all caps twenty five", "25"),
])
def test_case_commands_act_on_the_next_word(transcript, expected):
    assert shaped(transcript, replacements=(Replacement("gonna", "going to"),)) == expected


def test_no_space_joins_the_next_word_or_mark():
    assert shaped("hello no space world") == "Helloworld"
    assert shaped("call it no space open bracket x close bracket") == "Call it(x)"


def test_a_command_for_the_next_word_with_none_after_it_is_typed_as_words():
    assert shaped("I lost my cap") == "I lost my cap"
    assert shaped("there is no space") == "There is no space"
    assert shaped("all caps") == "All caps"
    assert shaped("the numeral system") == "The numeral system"  # numeral needs a number word


def test_enter_after_ends_each_dictation_with_a_newline():
    assert shaped("Hello there.", "And again", enter_after=True) == "Hello there.\nAnd again\n"
    assert shaped("Send it press enter", enter_after=True) == "Send it\n"  # no second Enter
    assert shaped("One.", "Two.", "Scratch that.", enter_after=True) == "One.\n"  # nothing typed: no Enter


# -- numbers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("transcript, expected", [
    ("I have twenty five apples.", "I have 25 apples."),
    ("one hundred and three", "103"),
    ("It is three point five percent.", "It is 3.5 percent."),
    ("the twenty first of May", "The 21st of May"),
    ("twenty-five, thirty.", "25, 30."),
    ("ten people", "10 people"),
    ("one of them, nine times", "One of them, nine times"),  # below the minimum: words
    ("Whisper wrote 25 already", "Whisper wrote 25 already"),
    ("a hundred times, hundreds of them", "A hundred times, hundreds of them"),  # no starter
    ("one hundred and salt", "100 and salt"),
    ("literal twenty apples", "Twenty apples"),
    ("Twenty five. Thirty.", "25. 30."),
])
def test_spoken_numbers_become_digits(transcript, expected):
    assert shaped(transcript) == expected


def test_numbers_minimum_is_a_setting():
    assert shaped("one of them", numbers_min=1) == "1 of them"
    assert shaped("twenty five", numbers_min=0) == "Twenty five"  # 0: off
    assert shaped("ten people, eleven cats", numbers_min=11) == "Ten people, 11 cats"


def test_numeral_types_any_number_as_digits():
    assert shaped("numeral three apples") == "3 apples"
    assert shaped("step numeral one hundred and three") == "Step 103"
    assert shaped("numeral five", numbers_min=0) == "5"
    assert shaped("numeral five", commands=False) == "Numeral five"


def test_number_settings_are_validated():
    with pytest.raises(ConfigError):
        ShapingOptions(numbers_min=-1)


# -- scratch that ---------------------------------------------------------------------------------
def test_scratch_that_deletes_the_previous_dictation():
    screen = Screen()
    screen.say("Keep this.")
    screen.say("Delete this part.")
    assert screen.say("Scratch that.") == "Keep this."
    last = screen.edits[-3:]  # " Scratch", " that.", finish()
    assert sum(e.delete for e in last) == len(" Delete this part.") and not any(e.insert for e in last)
    assert screen.say("Then more.") == "Keep this. Then more."


def test_repeated_scratch_that_goes_further_back():
    assert shaped("One.", "Two.", "Three.", "Scratch that.", "Scratch that.") == "One."
    assert shaped("One.", "Scratch that.", "Scratch that.") == ""


def test_scratch_that_mid_dictation_removes_only_this_dictations_words():
    assert shaped("Keep.", "wrong words scratch that right words.") == "Keep. Right words."


def test_scratch_then_new_text_in_the_same_dictation_follows_the_older_text():
    assert shaped("Start of it,", "Oops.", "Scratch that, end of it.") == "Start of it, end of it."


def test_scratch_only_reaches_back_history_limit():
    assert shaped("A.", "B.", "C.", "Scratch that.", "Scratch that.", "Scratch that.", history_limit=2) == "A."


# -- replacements and vocabulary ------------------------------------------------------------------
def test_whole_word_replacement_is_case_insensitive_and_respects_word_edges():
    reps = (Replacement("gonna", "going to"),)
    assert shaped("I'm Gonna go, gonnabe.", replacements=reps) == "I'm going to go, gonnabe."


def test_replacement_at_sentence_start_is_capitalised():
    assert shaped("gonna rain.", replacements=(Replacement("gonna", "going to"),)) == "Going to rain."


def test_empty_replacement_deletes_fillers_cleanly():
    reps = (Replacement("um", ""), Replacement("uh", ""))
    assert shaped("So, um, I think uh we should go um.", replacements=reps) == "So, I think we should go."
    assert shaped("Um, hello.", replacements=reps) == "Hello."
    assert shaped("Um.", replacements=reps) == ""


def test_regex_replacement_with_groups():
    reps = (Replacement(r"(\d+) percent", r"\1%", regex=True),)
    assert shaped("It rose 12 percent today.", replacements=reps) == "It rose 12% today."


def test_multi_word_replacement_is_held_back_while_streaming():
    shaper = Shaper(ShapingOptions(replacements=(Replacement("new york", "NYC"),)))
    screen = Screen(shaper)
    shaper.begin()
    screen.apply(shaper.feed(" I"))
    screen.apply(shaper.feed(" love"))
    screen.apply(shaper.feed(" New"))
    assert screen.text == "I love"  # "New" may start "New York"
    screen.apply(shaper.feed(" York."))
    screen.apply(shaper.finish())
    assert screen.text == "I love NYC."
    assert all(e.delete == 0 for e in screen.edits)


def test_vocabulary_spelling_and_prompt():
    opts = ShapingOptions(vocabulary=("VoiceKey", "Raspberry Pi"))
    shaper = Shaper(opts)
    assert shaper.vocabulary == ("VoiceKey", "Raspberry Pi")
    assert shaper.vocabulary_prompt() == "VoiceKey, Raspberry Pi."
    screen = Screen(shaper)
    assert screen.say("voicekey runs on a raspberry pi.") == "VoiceKey runs on a Raspberry Pi."
    assert Shaper().vocabulary_prompt() is None


def test_invalid_regex_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        ShapingOptions(replacements=(Replacement("(unclosed", "x", regex=True),))
    assert "(unclosed" in str(err.value) and err.value.fix


def test_typographic_characters_pass_through():
    assert shaped("It’s “quoted” — fine…") == "It’s “quoted” — fine…"


def test_drop_final_period_lets_a_sentence_continue():
    assert shaped("I went to the.", "Store.", drop_final_period=True) == "I went to the store"
    assert shaped("It ended period", drop_final_period=True) == "It ended."


# -- streaming --------------------------------------------------------------------------------------
def test_streaming_types_words_as_they_come_and_holds_command_prefixes():
    shaper = Shaper()
    shaper.begin()
    assert shaper.feed(" Hello") == Edit(0, "Hello")
    assert shaper.feed(" world") == Edit(0, " world")
    assert shaper.feed(" new") == Edit()  # may be "new line"
    assert shaper.feed(" line.") == Edit(0, "\n")
    assert shaper.feed(" question") == Edit()
    assert shaper.feed(" time") == Edit(0, "Question time")
    assert shaper.finish() == Edit()


def test_fragment_without_leading_space_continues_the_word():
    screen = Screen()
    assert screen.dictate(" Hel", "lo", " there") == "Hello there"


def feed_words(shaper: Shaper, *words: str) -> list[Edit]:
    shaper.begin()
    return [shaper.feed(" " + w) for w in words]


def test_trailing_number_words_wait_for_the_number_to_end():
    shaper = Shaper()
    edits = feed_words(shaper, "I", "have", "twenty", "five", "apples")
    assert edits == [Edit(0, "I"), Edit(0, " have"), Edit(), Edit(), Edit(0, " 25 apples")]
    assert feed_words(Shaper(), "one", "hundred", "and")[1:] == [Edit(), Edit()]
    shaper = Shaper()
    feed_words(shaper, "three", "point")
    assert shaper.finish() == Edit(0, "Three point")  # the end of the dictation ends the number
    assert feed_words(Shaper(), "twenty.") == [Edit(0, "20")]  # "." ends it (and waits: see below)


def test_commands_for_the_next_word_wait_for_it():
    assert feed_words(Shaper(), "hello", "no", "space", "world") == [
        Edit(0, "Hello"), Edit(), Edit(), Edit(0, "world")]
    assert feed_words(Shaper(), "numeral", "three", "apples") == [Edit(), Edit(), Edit(0, "3 apples")]
    shaper = Shaper()
    assert feed_words(shaper, "my", "cap") == [Edit(0, "My"), Edit()]
    assert shaper.finish() == Edit(0, " cap")


def test_trailing_punctuation_waits_for_the_next_word():
    """A punctuation command may replace it, so typing it early would mean taking it back."""
    shaper = Shaper()
    assert feed_words(shaper, "Hello.", "comma", "world.") == [Edit(0, "Hello"), Edit(), Edit(0, ", world")]
    assert shaper.finish() == Edit(0, ".")
    assert feed_words(Shaper(), "Hello.", "Again") == [Edit(0, "Hello"), Edit(0, ". Again")]


def test_multi_word_vocabulary_is_held_back_while_streaming():
    shaper = Shaper(ShapingOptions(vocabulary=("Raspberry Pi",)))
    assert feed_words(shaper, "a", "raspberry", "pi") == [Edit(0, "A"), Edit(), Edit(0, " Raspberry Pi")]


def test_shape_is_begin_feed_finish_in_one_edit():
    shaper = Shaper()
    assert shaper.shape("Hello new") == Edit(0, "Hello new")
    assert shaper.shape("Scratch that.") == Edit(len("Hello new"), "")


WORDS = st.sampled_from([
    "hello", "Hello,", "world.", "new", "line", "Line.", "paragraph", "period", "comma", "question",
    "mark", "Mark.", "scratch", "that", "That.", "literal", "full", "stop", "I", "USB", "gonna", "york",
    "exclamation", "point!", "colon", "semi", "it’s", "“quoted”", "a", "the", "Store.", "wait...", "so…",
    # numbers and the newer commands
    "twenty", "Twenty", "five", "five.", "one", "hundred", "and", "three", "point", "first", "second,", "ten",
    "twenty-one", "Twenty-five,", "25", "numeral", "cap", "all", "caps", "no", "space", "press", "enter",
    "tab", "open", "close", "quote", "bracket", "parenthesis", "raspberry", "pi",
])
DICTATION = st.lists(WORDS, min_size=0, max_size=12)
EXAMPLES = int(os.environ.get("VOICEKEY_HYPOTHESIS_EXAMPLES", "300"))


def property_options(drop: bool, enter: bool, numbers_min: int) -> ShapingOptions:
    return ShapingOptions(replacements=(Replacement("new york", "NYC"), Replacement("gonna", "going to"),
                                        Replacement("a", "")),
                          vocabulary=("USB", "Raspberry Pi"), drop_final_period=drop, enter_after=enter,
                          numbers_min=numbers_min)


def fragments_of(words: list[str], splits) -> list[str]:
    """A random grouping of words into fragments ("the transcriber hands words one at a time")."""
    fragments, i = [], 0
    while i < len(words):
        n = splits.randint(1, 3)
        fragments.append("".join(" " + w for w in words[i:i + n]))
        i += n
    return fragments


@settings(max_examples=EXAMPLES, deadline=None)
@given(dictations=st.lists(DICTATION, min_size=1, max_size=4), splits=st.randoms(use_true_random=False),
       drop=st.booleans(), enter=st.booleans(), numbers_min=st.sampled_from([0, 1, 10]))
def test_streaming_word_by_word_equals_batch(dictations, splits, drop, enter, numbers_min):
    opts = property_options(drop, enter, numbers_min)
    streamed, batch = Screen(Shaper(opts)), Screen(Shaper(opts))
    for words in dictations:
        streamed.dictate(*fragments_of(words, splits))
        batch.dictate(" ".join(words))
        assert streamed.text == batch.text
    # every edit only removes text VoiceKey typed (never more than is on screen), and the
    # shaper's idea of the screen matches the simulated one
    assert streamed.text == streamed.shaper.text


NO_DELETE_WORDS = WORDS.filter(lambda w: w != "scratch")


@settings(max_examples=EXAMPLES, deadline=None)
@given(dictations=st.lists(st.lists(NO_DELETE_WORDS, max_size=12), min_size=1, max_size=4),
       splits=st.randoms(use_true_random=False), drop=st.booleans(), enter=st.booleans(),
       numbers_min=st.sampled_from([0, 1, 10]))
def test_streaming_never_takes_back_what_it_typed(dictations, splits, drop, enter, numbers_min):
    """Live dictation's rule: without "scratch that", no edit ever deletes anything.

    Each dictation starts with a word: a punctuation command said *first* in a dictation replaces
    the mark the previous, finished dictation ended with ("Is it ready." + "question mark") -- a
    deletion by design, like "scratch that".
    """
    shaper = Shaper(property_options(drop, enter, numbers_min))
    screen = Screen(shaper)
    for words in dictations:
        screen.dictate(*fragments_of(["so", *words], splits))
    assert [e for e in screen.edits if e.delete] == []


def test_transcripts_are_not_logged_above_debug(caplog):
    import logging

    with caplog.at_level(logging.INFO):
        shaped("my secret password is swordfish", "scratch that")
    assert "swordfish" not in caplog.text
