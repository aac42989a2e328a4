"""Text normalisation applied before any detector looks at a string.

Detectors only see text in one canonical spelling, so that full-width digits, mathematical letters,
ligatures and zero-width characters slipped between the digits of a card number cannot hide it:

1. remove invisible characters (Unicode format characters such as ZERO WIDTH SPACE and the bidi
   controls, variation selectors, fillers, tag characters, lone surrogates, C0/C1 controls other
   than tab, newline and carriage return);
2. apply NFKC (compatibility composition: ``４１１１`` -> ``4111``, ``＠`` -> ``@``);
3. repeat both once, because removing a format character can expose a new composition;
4. write decimal digits of every script as ASCII digits (``٤١١١`` -> ``4111``).

What the policy stores is this normalised form, so stored text always passes the policy again
unchanged.
"""

from __future__ import annotations

import re
import unicodedata

# Everything in Unicode category Cf (format), plus invisible characters from other categories
# (fillers, variation selectors, combining grapheme joiner, Mongolian selectors), the surrogate
# range (never valid in stored text), non-characters, and control characters other than \t \n \r.
_INVISIBLE_CLASS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
    "\u00ad\u034f\u061c\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\ufffe\uffff"
    "\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001345f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff"
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CLASS}]")
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CORRUPT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def normalize_text(text: str) -> str:
    """The canonical spelling of ``text``: invisible characters removed, NFKC applied (idempotent)."""
    if text.isascii():
        # ASCII is already NFKC; only control characters can need removing.
        if text.isprintable():
            return text
        return _ASCII_CONTROL.sub("", text)
    for _ in range(3):
        text = _INVISIBLE.sub("", text)
        if unicodedata.is_normalized("NFKC", text):
            break
        text = unicodedata.normalize("NFKC", text)
    else:
        text = _INVISIBLE.sub("", text)
    # Digits of every script read as ASCII digits (NFKC leaves Arabic-Indic or Devanagari digits alone).
    return _NON_ASCII_DIGIT.sub(_ascii_digit, text)


def _ascii_digit(m: re.Match[str]) -> str:
    return str(unicodedata.digit(m.group(0), 0))


def is_invisible(char: str) -> bool:
    """True for a character that ``normalize_text`` removes."""
    return _INVISIBLE.fullmatch(char) is not None


def is_corrupt(text: str) -> bool:
    """True if ``text`` holds control characters (other than tab, newline, CR) or lone surrogates.

    Those are not spellings of anything: the policy refuses such text instead of repairing it.
    """
    if text.isascii() and text.isprintable():
        return False
    return _CORRUPT.search(text) is not None
