"""The prose rules: does a text read like a sentence someone wrote, rather than a label or an id?

Words are whitespace-separated tokens holding two letters in a row (so ``HTTP 503`` is one word and
``4 1 1 1`` none); ``+`` and ``%20`` count as spaces; in scripts written without spaces (CJK, kana,
Thai) every two characters count as a word. ``[redacted:...]`` markers are not words, so redacting a
message never makes it wordier.
"""

from __future__ import annotations

import re

# A word: a whitespace-separated token holding two letters in a row (numbers and codes are not words).
_WORD = re.compile(r"(?<!\S)(?!\[redacted:)\S*?[^\W\d_]{2}")
# Scripts written without spaces: every two characters count as a word.
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"[.?!。？！]\s*$")

MAX_LABEL_WORDS = 4  # metadata strings and names: "Customer Support Agent v2" passes, a sentence does not


def _spaced(text: str) -> str:
    """URL-encoded spaces ('%20', '+') read as spaces for the prose rules."""
    return text.replace("%20", " ").replace("+", " ") if "%20" in text or "+" in text else text


def word_count(text: str) -> int:
    """Words in ``text``: whitespace/'+'/%20-separated tokens with two letters in a row, plus CJK pairs."""
    text = _spaced(text)
    count = len(_WORD.findall(text))
    if not text.isascii():
        count += len(_UNSPACED.findall(text)) // 2
    return count


# First/second-person pronouns: operators describe systems ("Upstream returned 503"), while people
# write about themselves ("reset my password", "Can you help me"). '/', '-' and "'" next to the
# word do not count, so "I/O error" and "us-east-1" pass.
_PERSONAL = re.compile(
    r"(?<![\w/\-'])(?:i|me|my|mine|you|your|yours|we|our|ours|ich|mein|meine|meinen|meinem|du|dein|deine"
    r"|je|vous|votre|tu|yo|mis)(?![\w/\-'])",
    re.IGNORECASE,
)
_PERSONAL_UNSPACED = re.compile("[我你您私僕俺]|あなた|わたし")


def _personal(text: str) -> bool:
    return _PERSONAL.search(text) is not None or (not text.isascii() and _PERSONAL_UNSPACED.search(text) is not None)


_QUESTION_END = re.compile(r"[?？]\s*$")


def is_prose(text: str, max_words: int = MAX_LABEL_WORDS) -> bool:
    """For a label (metadata string, name): more than ``max_words`` words, a sentence or question of
    three words or more, or two words or more written in the first or second person."""
    text = _spaced(text)
    words = word_count(text)
    if words > max_words:
        return True
    if words >= 3 and _SENTENCE_END.search(text) is not None:
        return True
    return words >= 2 and _personal(text)


def is_prose_message(text: str, max_words: int) -> bool:
    """For a failure message, which may be a short operator sentence: more than ``max_words`` words,
    or a question or first/second-person text of four words or more."""
    text = _spaced(text)
    words = word_count(text)
    if words > max_words:
        return True
    return words >= 4 and (_QUESTION_END.search(text) is not None or _personal(text))


def may_be_prose(text: str) -> bool:
    """False when ``text`` cannot hold two words (no whitespace, '+', '%20', and plain ASCII)."""
    return not text.isascii() or " " in text or "+" in text or "%20" in text or "\t" in text or "\n" in text
