"""Detectors for personal data, secrets and prose in (already normalised) text.

Each detector is a precompiled regular expression that proposes candidate spans plus, where the
pattern alone would produce false positives, a validator (Luhn for cards, mod-97 for IBANs, the
``ipaddress`` module for IPv6). Patterns are written so that the identifiers operators do store
pass: UUIDs, 13-digit millisecond timestamps, 9-digit ids and 10-digit ids that no North American could
dial, git SHAs and digests, versions, order numbers
such as ``ORD-2024-000123``, HTTP codes, model and tool names, hostnames.

``find_reason`` answers "may this short text be stored?" and returns at the first hit;
``find_spans`` lists every offending span (used to redact failure messages). Cheap facts about the
text (digit count, literal hints) decide which detectors run at all, so plain identifiers — the vast
majority of metadata values — skip every regular expression. Prose rules live in ``prose``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator

from agenttracer.privacy import reasons as R

Validator = Callable[["re.Match[str]"], bool]

# --- e-mail ----------------------------------------------------------------------------------------
# Found from the '@' (or its encodings and bracket spellings) outwards, which keeps the scan linear.
_AT_TOKEN = re.compile(r"\s*(?:@|%(?:25)*40|&#0*64;|&#x0*40;|&commat;|[\[({<]\s*at\s*[\])}>])\s*", re.IGNORECASE)
_DOT = r"(?:\.|%2e|\s*[\[({<]\s*dot\s*[\])}>]\s*)"
_DOMAIN = re.compile(rf"[\w\-]+(?:{_DOT}[\w\-]+)*?{_DOT}[a-z]{{2,24}}(?![a-z])", re.IGNORECASE)
_LOCAL_CHARS = frozenset(".+'%-_")
# "alice at example dot com": only with the spelled-out " dot ", so "timeout at api.example.com" passes.
_EMAIL_WORDS = re.compile(r"\b[\w.+\-]+\s+at\s+[\w\-]+(?:\s+dot\s+[\w\-]+)+\b", re.IGNORECASE)


def _email_spans(text: str) -> Iterator[tuple[int, int]]:
    for at in _AT_TOKEN.finditer(text):
        start = at.start()
        while start > 0 and at.start() - start < 64 and (text[start - 1].isalnum() or text[start - 1] in _LOCAL_CHARS):
            start -= 1
        if start == at.start():
            continue
        domain = _DOMAIN.match(text, at.end())
        if domain is not None:
            yield start, domain.end()


# --- payment cards (validated by IIN range and Luhn) -----------------------------------------------
_CARD = re.compile(
    r"(?<!\d)(?:"
    r"\d{4}(?P<s>[ .\-_]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"  # 4-4-4-x groups, or joined
    r"|\d{4}[ \-]\d{6}[ \-]\d{4,5}"  # Amex / Diners grouping
    r"|\d(?:[ \-.]\d){12,18}"  # one digit at a time
    r")(?!\d)"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(m: re.Match[str]) -> bool:
    # Card numbers start with 2-6 (Mastercard, Amex/Diners/JCB, Visa, Mastercard/Maestro, Discover/
    # UnionPay); 13-digit millisecond timestamps start with 1 and so never qualify.
    text = m.group(0)
    if text[0] not in "23456" and unicodedata.digit(text[0], 0) not in (2, 3, 4, 5, 6):
        return False
    digits = "".join(str(unicodedata.digit(ch)) for ch in text if ch.isdigit())
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn_ok(digits)


# --- US social security numbers ----------------------------------------------------------------------
_SSN = re.compile(
    r"(?<![\d\-])(?!000|666|9\d\d)\d{3}(?P<s>[ .\-])(?!00)\d{2}(?P=s)(?!0000)\d{4}(?![\d\-])"
    r"|(?<![a-z])(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?|ss#)\W{0,4}\d{3}[ .\-]?\d{2}[ .\-]?\d{4}(?!\d)"
    r"|(?<![\d.\-])(?<!\d )\d(?:[ \-.]\d){8}(?![\-.]?\d)(?! \d)",
    re.IGNORECASE,
)

# --- telephone numbers -----------------------------------------------------------------------------
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\s?\d(?:[\s.\-]{0,2}\(?\d\)?){6,14}"  # +CC ...
    r"|(?:00|011)[\s.\-]?[1-9](?:[\s.\-]{0,2}\(?\d\)?){6,13}"  # 00CC ...
    r"|\(\d{2,5}\)[\s.\-]{0,2}\d{2,4}[\s.\-]?\d{3,4}"  # (415) 555-0132, (020) 7946 0958
    r"|[2-9]\d{2}[\s.\-]{1,2}\d{3}[\s.\-]\d{4}"  # 415-555-0132, 415.555.0132, 555-123-4567
    r"|1[\s.\-]?[2-9]\d{2}[\s.\-]?[2-9]\d{2}[\s.\-]?\d{4}"  # 1-415-555-0132, 14155550132
    r"|0[1-9]\d{1,3}[\s.\-]\d{3,4}[\s.\-]?\d{3,4}"  # 020 7946 0958, 07700 900123
    r"|0[1-9]\d{9}"  # 02079460958
    r"|[2-9]\d{2}[2-9]\d{6}"  # 4155550132: ten digits a North American could dial
    r"|\d(?:[ \-.]\d){9,14}"  # one digit at a time
    r")(?![\w])"
    r"|(?<![a-z])(?:phone|tel|mobile|cell|call|sms|fax|whatsapp)(?:\s*(?:no|nr|num|number|#)\.?)?[\s:=#.\-]*"
    r"\+?\(?\d(?:[\s.\-()]{0,2}\d){6,14}",
    re.IGNORECASE,
)

# --- IBAN (country length table + mod-97) ---------------------------------------------------------------
# fmt: off
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
# fmt: on
# A lookahead so that candidates may overlap ("xxDE89..." still finds "DE89...").
_IBAN = re.compile(r"(?<![a-z])(?=([a-z]{2}\d{2}(?:[ \-]?[a-z0-9]){11,30}))", re.IGNORECASE)
_LETTER_VALUES = {chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)}


def _iban_ok(m: re.Match[str]) -> bool:
    compact = m.group(1).replace(" ", "").replace("-", "").upper()
    length = _IBAN_LENGTHS.get(compact[:2])
    if length is None or len(compact) < length:
        return False
    candidate = compact[:length]
    rearranged = candidate[4:] + candidate[:4]
    if not rearranged.isascii() or not rearranged.isalnum():
        return False
    return int("".join(_LETTER_VALUES.get(ch, ch) for ch in rearranged)) % 97 == 1


def _iban_span(m: re.Match[str]) -> int:
    """How many characters of the candidate the IBAN itself covers (separators included)."""
    text = m.group(1)
    wanted = _IBAN_LENGTHS.get(text[:2].upper(), len(text))
    seen = 0
    for i, ch in enumerate(text):
        if ch.isalnum():
            seen += 1
            if seen == wanted:
                return i + 1
    return len(text)


# --- IP addresses ------------------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(
    rf"(?<![\dv])(?<!\d\.)(?P<a>{_OCTET})(?:\s?(?:\.|\[\.\]|\(\.\)|\[dot\])\s?{_OCTET}){{3}}(?!\d)(?!\s?\.\s?\d)",
    re.IGNORECASE,
)


def _ipv4_ok(m: re.Match[str]) -> bool:
    first = m.group("a")
    # 127.x.x.x (loopback) and 0.x.x.x (unspecified / this network) identify nobody.
    return first not in ("127", "0")


_IPV6 = re.compile(
    r"(?<![\w.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?:%[\w.]+)?(?![\w:])",
    re.IGNORECASE,
)


def _ipv6_ok(m: re.Match[str]) -> bool:
    try:
        address = ipaddress.IPv6Address(m.group(0).split("%", 1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


# --- secrets -------------------------------------------------------------------------------------------------
# Split by what each kind needs to be present, so that most text runs none of them.
_SECRET_PREFIXED = re.compile(  # needs '-', '_' or '.'
    r"(?<![a-z0-9])(?:sk|rk)[-_](?P<kind>ant[-_](?:api\d\d[-_])?|proj[-_]|live[-_]|test[-_]|svcacct[-_]|admin[-_])?"
    r"(?P<body>[a-z0-9_\-]{16,})"
    r"|(?<![a-z0-9])gh[pousr]_[a-z0-9]{20,}"
    r"|(?<![a-z0-9])github_pat_[a-z0-9_]{20,}"
    r"|(?<![a-z0-9])xox[abposre]-[a-z0-9\-]{8,}"
    r"|(?<![a-z0-9])(?:hf|npm)_[a-z0-9]{30,}"
    r"|(?<![a-z0-9])glpat-[a-z0-9\-_]{20,}"
    r"|(?<![a-z0-9])sg\.[a-z0-9_\-]{16,}\.[a-z0-9_\-]{16,}"
    r"|(?<![a-z0-9])ey[jy][a-z0-9_\-]{4,}\.[a-z0-9_\-]{4,}\.[a-z0-9_\-]*"  # JWT
    r"|-----\s*begin[a-z0-9 ]*-----(?:.*?-----\s*end[a-z0-9 ]*-----|.*)"  # PEM block, to its end
    r"|hooks\.slack\.com/services/\S+",
    re.IGNORECASE | re.DOTALL,
)
_SECRET_BARE = re.compile(  # AWS and Google keys: 20+ letters and digits without a separator
    r"(?<![a-z0-9])(?:a(?:kia|sia|gpa|ida|roa|npa|nva|ipa|bia|cca)[a-z0-9]{16}(?![a-z0-9])|aiza[0-9a-z\-_]{30,})",
    re.IGNORECASE,
)
# Blobs: a run of 32+ base64 / base64url characters (an AWS secret access key, an encoded token or
# payload), or of more than 64 hex digits. A base64 blob mixes upper case, lower case and digits, with few
# '-'/'_' in it; git SHAs and sha256 digests (64 lower-case hex), UUIDs and trace ids (lower-case hex), and
# kebab-case names (many separators) never qualify.
_BLOB = re.compile(r"(?<![A-Za-z0-9/+=_\-])[A-Za-z0-9/+_\-]{32,}={0,2}(?![A-Za-z0-9/+=_\-])")
_HEX_BLOB_LEN = 64


def _blob_ok(m: re.Match[str]) -> bool:
    text = m.group(0).rstrip("=")
    compact = text.replace("-", "")
    if len(compact) > _HEX_BLOB_LEN and all(c in "0123456789abcdefABCDEF" for c in compact):
        # Random hex mixes digits and letters; "EEEE…" or "0000…" is padding, not a blob.
        return any(c.isdigit() for c in compact) and any(c.isalpha() for c in compact)
    separators = text.count("-") + text.count("_")
    return (
        separators * 10 <= len(text)
        and any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )


_SECRET_URL = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s/?#@:]*:[^\s/?#@]*@", re.IGNORECASE)  # scheme://user:pass@
_SECRET_HEADER = re.compile(  # needs whitespace
    r"\b(?:bearer|token)\s+(?P<bearer>[a-z0-9\-._~+/]{8,}=*)|\bbasic\s+[a-z0-9+/]{12,}={0,2}", re.IGNORECASE
)
_SECRET_ASSIGNMENT = re.compile(  # needs ':' or '='
    r"(?<![a-z])(?:password|passwd|pwd|passphrase|secret|api[_\-]?key|access[_\-]?key|secret[_\-]?key|"
    r"(?:auth|access|refresh|id|session)[_\-]?token|client[_\-]?secret|private[_\-]?key)\s*[:=]\s*[^\s,;&]{3,}"
    r"|(?<![a-z_])(?:token|key|sig|signature|code)=[a-z0-9%\-._~+/]{16,}",
    re.IGNORECASE,
)
# A URL query parameter that carries a credential, whatever its length: ?token=, &access_token=, ?api_key=,
# ?sig=, &X-Amz-Signature=, ?code= (an OAuth grant). "max_tokens" (a count) is not one.
_SECRET_QUERY = re.compile(
    r"[?&;](?:[a-z0-9_.\-]*(?:token(?!s)|secret|passw(?:or)?d|pwd|api[_\-]?key|signature|credential|session)"
    r"[a-z0-9_.\-]*|key|sig|code|auth|sid|jwt)=[^&#\s]{3,}",
    re.IGNORECASE,
)


def _secret_ok(m: re.Match[str]) -> bool:
    # A bare "sk-" or "Bearer" word followed by ordinary letters ("sk-learn-compat-pipeline", "Bearer
    # authentication failed") is not a credential: real ones carry digits or symbols.
    groups = m.groupdict()
    if groups.get("kind"):  # sk-ant-, sk-proj-, sk_live_…: the prefix alone says what it is
        return True
    for group in ("body", "bearer"):
        value = groups.get(group)
        if value is not None:
            return any(ch.isdigit() for ch in value) or (group == "bearer" and len(value) >= 24)
    return True


Finder = Callable[[str], Iterator[tuple[int, int]]]
Rule = tuple[str, Finder]


def _finder(pattern: re.Pattern[str], validator: Validator | None = None) -> Finder:
    """Spans of ``pattern`` that pass ``validator`` (IBAN candidates are zero-width lookaheads)."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        for m in pattern.finditer(text):
            if validator is None or validator(m):
                start, end = m.span()
                yield (start, start + _iban_span(m)) if end == start else (start, end)

    return find


_DIGIT_TABLE = str.maketrans("", "", "0123456789")
_ANY_DIGIT = re.compile(r"\d")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# Literal hints, searched in the lower-cased text without IGNORECASE (which lets the regex engine skip
# ahead on the first character): only text containing one runs the full pattern.
_SECRET_PREFIX_HINT = re.compile(r"sk[-_]|rk[-_]|gh[pousr]_|github_pat|xox|hf_|npm_|glpat|sg\.|ey[jy]|---|hooks\.slack")
_SECRET_BARE_HINT = re.compile(r"a(?:kia|sia|gpa|ida|roa|npa|nva|ipa|bia|cca|iza)")
_SECRET_ASSIGNMENT_HINT = re.compile(r"pass|pwd|secret|key|token|sig|code")
_IBAN_HINT = re.compile(r"[A-Za-z]{2}\d{2}")
# A 10-digit number is a North American phone number when its area code and exchange start with 2-9;
# 10-digit ids of other shapes (Unix times in seconds start with 1) pass.
_NANP_LEAD = frozenset("23456789")
_PHONE_JOINED = re.compile(r"(?<!\d)(?:1[2-9]\d{2}[2-9]\d{6}|0[1-9]\d{9}|[2-9]\d{2}[2-9]\d{6})(?!\d)")


_FIND_CARD = _finder(_CARD, _card_ok)
_FIND_PHONE_JOINED = _finder(_PHONE_JOINED)
_FIND_SECRET_PREFIXED = _finder(_SECRET_PREFIXED, _secret_ok)
_FIND_SECRET_BARE = _finder(_SECRET_BARE)
_FIND_SECRET_URL = _finder(_SECRET_URL)
_FIND_BLOB = _finder(_BLOB, _blob_ok)
_FIND_SECRET_QUERY = _finder(_SECRET_QUERY)
_FIND_SECRET_HEADER = _finder(_SECRET_HEADER, _secret_ok)
_FIND_SECRET_ASSIGNMENT = _finder(_SECRET_ASSIGNMENT)
_FIND_EMAIL_WORDS = _finder(_EMAIL_WORDS)
_FIND_IBAN = _finder(_IBAN, _iban_ok)
_FIND_SSN = _finder(_SSN)
_FIND_PHONE = _finder(_PHONE)
_FIND_IPV4 = _finder(_IPV4, _ipv4_ok)
_FIND_IPV6 = _finder(_IPV6, _ipv6_ok)


def _rules(text: str) -> list[Rule]:
    """The detectors that can possibly fire on ``text``, from cheap facts about it (the fast path).

    Plain identifiers (tool and model names, regions, UUIDs, short numbers) get an empty list.
    """
    rules: list[Rule] = []
    if (
        text.isdigit() and text.isascii()
    ):  # pure numbers: only cards (13-19 digits) and joined phone numbers (10-11 digits)
        if len(text) >= 13 and text[0] in "23456":
            rules.append((R.PAYMENT_CARD, _FIND_CARD))
        elif len(text) == 11 or (len(text) == 10 and text[0] in _NANP_LEAD and text[3] in _NANP_LEAD):
            rules.append((R.PHONE, _FIND_PHONE_JOINED))
        return rules
    if len(text) == 36 and _UUID.fullmatch(text):
        return rules
    ascii_text = text.isascii()
    digits = len(text) - len(text.translate(_DIGIT_TABLE)) if ascii_text else len(_ANY_DIGIT.findall(text))
    lower = text.lower()
    has_space = not ascii_text or " " in text or "\t" in text or "\n" in text
    if _SECRET_PREFIX_HINT.search(lower):
        rules.append((R.SECRET, _FIND_SECRET_PREFIXED))
    if len(text) >= 20 and _SECRET_BARE_HINT.search(lower):
        rules.append((R.SECRET, _FIND_SECRET_BARE))
    if len(text) >= 32:
        rules.append((R.SECRET, _FIND_BLOB))
    if "://" in text:
        rules.append((R.SECRET, _FIND_SECRET_URL))
    if has_space and ("bearer" in lower or "token" in lower or "basic" in lower):
        rules.append((R.SECRET, _FIND_SECRET_HEADER))
    if ("=" in text or ":" in text) and _SECRET_ASSIGNMENT_HINT.search(lower):
        rules.append((R.SECRET, _FIND_SECRET_ASSIGNMENT))
    if "=" in text and ("?" in text or "&" in text or ";" in text):
        rules.append((R.SECRET, _FIND_SECRET_QUERY))
    if "@" in text or "%" in text or "&" in text or ("at" in lower and any(b in text for b in "[({<")):
        rules.append((R.EMAIL, _email_spans))
    if has_space and " at " in lower and " dot " in lower:
        rules.append((R.EMAIL, _FIND_EMAIL_WORDS))
    if digits >= 13:
        rules.append((R.PAYMENT_CARD, _FIND_CARD))
    if digits >= 6 and len(text) >= 15 and _IBAN_HINT.search(text):
        rules.append((R.IBAN, _FIND_IBAN))
    if digits >= 9:
        rules.append((R.SSN, _FIND_SSN))
    if digits >= 7:
        rules.append((R.PHONE, _FIND_PHONE))
    if digits >= 4 and "." in text:
        rules.append((R.IP_ADDRESS, _FIND_IPV4))
    if text.count(":") >= 2:
        rules.append((R.IP_ADDRESS, _FIND_IPV6))
    return rules


def find_reason(text: str) -> str | None:
    """The first detector (personal data or secret, not prose) that fires on ``text``, or None."""
    for reason, find in _rules(text):
        for _ in find(text):
            return reason
    return None


def find_spans(text: str) -> list[tuple[int, int, str]]:
    """Every offending span ``(start, end, reason)`` in ``text``, sorted and non-overlapping."""
    found = sorted((start, end, reason) for reason, find in _rules(text) for start, end in find(text))
    merged: list[tuple[int, int, str]] = []
    for start, end, reason in found:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, reason))
    return merged
