"""Reason codes: why the privacy policy removed, replaced or redacted something.

Every decision the policy takes that loses data carries exactly one of these codes. They travel to the
user (the SDK's drop counters, the ingest response's ``removed`` list) instead of the value itself,
so they must be self-explanatory. ``docs/data-flow.md`` lists the same table; a test keeps the two
in step.
"""

from __future__ import annotations

# Structure of metadata keys.
INVALID_KEY = "invalid_key"
FORBIDDEN_KEY = "forbidden_key"
COUNT_NOT_NUMERIC = "count_not_numeric"
SENSITIVE_KEY = "sensitive_key"
DUPLICATE_KEY = "duplicate_key"
TOO_MANY_KEYS = "too_many_keys"

# Types and sizes of values.
UNSUPPORTED_TYPE = "unsupported_type"
NESTED_VALUE = "nested_value"
INT_OUT_OF_RANGE = "int_out_of_range"
NON_FINITE = "non_finite"
TOO_LONG = "too_long"
INVALID_CHARACTERS = "invalid_characters"

# Content detectors (metadata strings, names, keys and spans of failure messages).
EMAIL = "email"
PHONE = "phone"
PAYMENT_CARD = "payment_card"
SSN = "ssn"
IBAN = "iban"
IP_ADDRESS = "ip_address"
SECRET = "secret"
PROSE = "prose"

# The safety net: the policy itself failed on a strange input, so it kept nothing of it.
POLICY_ERROR = "policy_error"

REASONS: dict[str, str] = {
    INVALID_KEY: "The key is not text matching ^[a-z][a-z0-9_.]{0,63}$ after camelCase and '-' are "
    "normalised to snake_case.",
    FORBIDDEN_KEY: "The key names content that is never stored (prompt, response, email, password, ...), "
    "as the whole key or as one of its '_'/'.' tokens.",
    COUNT_NOT_NUMERIC: "The key names a count of forbidden content (prompt_tokens, input_length, ...); such "
    "keys may only hold numbers.",
    SENSITIVE_KEY: "The key itself looks like personal data, a secret, a long number or a sentence.",
    DUPLICATE_KEY: "Two keys normalise to the same key (httpStatus and http_status); the first one is kept.",
    TOO_MANY_KEYS: "More than 32 keys survived the policy; the rest were dropped in input order.",
    UNSUPPORTED_TYPE: "The value is not a bool, int, float or string (null, bytes, objects, ...).",
    NESTED_VALUE: "The value is an object or a list; metadata holds scalars only (nothing is flattened).",
    INT_OUT_OF_RANGE: "The integer is outside +/-(2**53 - 1), the range JSON consumers represent exactly.",
    NON_FINITE: "The float is NaN or infinite.",
    TOO_LONG: "The text is longer than its limit (128 characters for metadata strings and names).",
    INVALID_CHARACTERS: "The text contains control characters (other than tab and newline) or lone surrogates: "
    "corrupt data, refused rather than silently altered.",
    EMAIL: "The text contains an e-mail address (also spelled with %40, &#64;, [at], (at) or ' at ... dot ').",
    PHONE: "The text contains a telephone number.",
    PAYMENT_CARD: "The text or number contains a payment card number (13-19 digits passing the Luhn check).",
    SSN: "The text contains a US social security number.",
    IBAN: "The text contains an IBAN (country length and mod-97 check).",
    IP_ADDRESS: "The text contains an IPv4 or IPv6 address (loopback and unspecified addresses are allowed).",
    SECRET: "The text contains a credential: API keys (sk-, AKIA, ghp_, xox., ...), a JWT, a PEM block, "
    "user:password@ in a URL, a credential in a URL query (?token=, ?api_key=, ?sig=, ...), a Bearer/Basic "
    "header, a password=... assignment, or a long base64 or hex blob.",
    PROSE: "The text reads like a sentence (too many words, or a question/sentence) and may be user content.",
    POLICY_ERROR: "The policy could not evaluate the input, so it kept nothing of it (fail closed).",
}
