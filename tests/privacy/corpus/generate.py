"""Generate the privacy corpus: hostile strings that must never be stored, benign look-alikes that must pass.

Deterministic (fixed seed): ``python tests/privacy/corpus/generate.py`` rewrites ``hostile.jsonl``,
``benign.jsonl`` and ``benign_messages.jsonl`` byte for byte. The files are committed; the tests read
them and a test checks that they are what this script produces.

Each hostile line is ``{"category", "spelling", "value", "needle"}``: ``needle`` is the sensitive core
(the e-mail address, the digits of a number, the key) that must not survive anywhere, in any form.
Card numbers, IBANs and SSNs are synthetic but valid (Luhn, mod-97, SSA ranges); e-mail domains are
reserved example domains; phone numbers use fictional ranges where they exist (555-01xx, Ofcom drama).
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZW = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
rng = random.Random(20261125)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in text)


def other_digits(text: str, zero: int = 0x0660) -> str:
    """Digits written in another script (Arabic-Indic by default; 0x0966 for Devanagari)."""
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


def zero_width(text: str) -> str:
    """Insert a zero-width/invisible character after every two or three characters."""
    out = []
    for i, ch in enumerate(text):
        out.append(ch)
        if i % rng.choice((2, 3)) == 1:
            out.append(rng.choice(ZW))
    return "".join(out)


def embed(text: str) -> str:
    before = rng.choice(["customer ", "contact=", "id:", "value ", "see ", "ref=", "user:", "(", "["])
    after = rng.choice(["", " ok", ";", ")", "]", " retry", "&x=1", " (primary)"])
    return before + text + after


def luhn_complete(prefix: str, length: int) -> str:
    digits = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits + "0")):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def grouped(text: str, size: int, sep: str) -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


# --- hostile ------------------------------------------------------------------------------------------------


def emails() -> Iterator[tuple[str, str, str]]:
    locals_ = [
        "alice.smith",
        "bob_jones",
        "carol+billing",
        "dave.o'neil",
        "erin99",
        "frank.m.miller",
        "grace.hopper",
        "heidi-k",
        "ivan.petrov",
        "judy",
    ]
    domains = ["example.com", "example.org", "mail.example.net", "corp.example.co.uk", "example.io"]
    for i, local in enumerate(locals_):
        for domain in (domains[i % 5], domains[(i + 2) % 5]):
            addr = f"{local}@{domain}"
            user, host = addr.split("@")
            spellings = {
                "plain": addr,
                "upper": addr.upper(),
                "url_encoded": addr.replace("@", "%40"),
                "double_encoded": addr.replace("@", "%2540"),
                "html_entity": addr.replace("@", "&#64;"),
                "bracket_at": f"{user} [at] {host.replace('.', ' [dot] ')}",
                "paren_at": f"{user}(at){host}",
                "words": f"{user.split('.')[0]} at {host.replace('.', ' dot ')}",
                "spaced_at": f"{user} @ {host}",
                "fullwidth": fullwidth(addr),
                "zero_width": zero_width(addr),
                "embedded": embed(addr),
                "mailto": f"mailto:{addr}",
            }
            for spelling in rng.sample(sorted(spellings), 7):
                yield spelling, spellings[spelling], addr


def phones() -> Iterator[tuple[str, str, str]]:
    nanp = [f"{a}555{b:04d}" for a, b in [(212, 100), (415, 132), (646, 199), (312, 155), (617, 110), (206, 177)]]
    for number in nanp:
        a, b, c = number[:3], number[3:6], number[6:]
        spellings = {
            "e164": f"+1{number}",
            "intl_spaced": f"+1 {a} {b} {c}",
            "dashed": f"{a}-{b}-{c}",
            "dotted": f"{a}.{b}.{c}",
            "parens": f"({a}) {b}-{c}",
            "one_dashed": f"1-{a}-{b}-{c}",
            "joined_11": f"1{number}",
            "digit_spaced": " ".join(number),
            "fullwidth": fullwidth(f"+1 {a} {b} {c}"),
            "zero_width": zero_width(f"{a}-{b}-{c}"),
            "embedded": embed(f"+1 ({a}) {b}-{c}"),
            "tel_joined": f"tel:{number}",
            "context_joined": f"phone {number}",
        }
        for spelling in rng.sample(sorted(spellings), 9):
            yield spelling, spellings[spelling], number
    for number in ("5551234567", "8005550199", "3125550123"):
        for spelling, value in {
            "dashed": f"{number[:3]}-{number[3:6]}-{number[6:]}",
            "arabic_digits": other_digits(f"+1 {number}"),
            "embedded_dotted": embed(f"{number[:3]}.{number[3:6]}.{number[6:]}"),
        }.items():
            yield spelling, value, number
    for number in ("2125550100", "4155550132", "6465550199"):
        yield "joined_10", number, number
    uk = ["2079460958", "1134960123", "7700900123", "1632960456"]
    for number in uk:
        spellings = {
            "e164": f"+44{number}",
            "intl_spaced": f"+44 {number[:2]} {number[2:6]} {number[6:]}",
            "trunk": f"0{number[:2]} {number[2:6]} {number[6:]}",
            "double_zero": f"0044 {number[:4]} {number[4:]}",
            "joined_trunk": f"0{number}",
            "fullwidth": fullwidth(f"+44 {number}"),
            "zero_width": zero_width(f"+44{number}"),
            "embedded": embed(f"+44 (0){number[:2]} {number[2:6]} {number[6:]}"),
        }
        for spelling in sorted(spellings):
            yield spelling, spellings[spelling], number
    for number, cc in [("301234567", "49"), ("142685300", "33"), ("612345678", "31"), ("91234567", "34")]:
        yield "e164", f"+{cc}{number}", number
        yield "intl_dashed", f"+{cc}-{number[:3]}-{number[3:6]}-{number[6:]}", number
        yield "embedded", embed(f"+{cc} {number}"), number


def cards() -> Iterator[tuple[str, str, str]]:
    numbers = [luhn_complete(p, 16) for p in ("4", "4", "51", "55", "2221", "6011", "65", "4", "53", "35")]
    numbers += [luhn_complete(p, 15) for p in ("34", "37", "37")]
    numbers += [luhn_complete("4", 13), luhn_complete("62", 19)]
    for number in numbers:
        spellings = {
            "joined": number,
            "spaced": grouped(number, 4, " "),
            "dashed": grouped(number, 4, "-"),
            "dotted": grouped(number, 4, "."),
            "digit_spaced": " ".join(number),
            "fullwidth": fullwidth(grouped(number, 4, " ")),
            "zero_width": zero_width(number),
            "embedded": embed(grouped(number, 4, " ")),
            "embedded_joined": f"card={number}",
            "arabic_digits": other_digits(number),
        }
        if len(number) == 15:
            spellings["amex"] = f"{number[:4]} {number[4:10]} {number[10:]}"
        for spelling in rng.sample(sorted(spellings), 7):
            yield spelling, spellings[spelling], number


def ssns() -> Iterator[tuple[str, str, str]]:
    for _ in range(12):
        area = rng.choice([n for n in range(1, 900) if n != 666])
        number = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        a, g, s = number[:3], number[3:5], number[5:]
        spellings = {
            "dashed": f"{a}-{g}-{s}",
            "spaced": f"{a} {g} {s}",
            "dotted": f"{a}.{g}.{s}",
            "labelled_joined": f"SSN {number}",
            "labelled_lower": f"ssn:{a}-{g}-{s}",
            "social_security": f"social security number {number}",
            "digit_spaced": " ".join(number),
            "fullwidth": fullwidth(f"{a}-{g}-{s}"),
            "zero_width": zero_width(f"{a}-{g}-{s}"),
            "embedded": embed(f"{a}-{g}-{s}"),
            "devanagari_digits": other_digits(f"{a}-{g}-{s}", 0x0966),
        }
        for spelling in rng.sample(sorted(spellings), 6):
            yield spelling, spellings[spelling], number


def ibans() -> Iterator[tuple[str, str, str]]:
    shapes = {
        "DE": "n18",
        "GB": "a4 n14",
        "FR": "n23",
        "NL": "a4 n10",
        "ES": "n20",
        "IT": "a1 n22",
        "CH": "n17",
        "BE": "n12",
        "PL": "n24",
        "SE": "n20",
    }
    for country, shape in shapes.items():
        bban = ""
        for part in shape.split():
            alphabet = string.ascii_uppercase if part[0] == "a" else string.digits
            bban += "".join(rng.choice(alphabet) for _ in range(int(part[1:])))
        value = iban(country, bban)
        spellings = {
            "compact": value,
            "grouped": grouped(value, 4, " "),
            "lower": value.lower(),
            "dashed": grouped(value, 4, "-"),
            "fullwidth": fullwidth(grouped(value, 4, " ")),
            "zero_width": zero_width(value),
            "embedded": embed(value),
        }
        for spelling in sorted(spellings):
            yield spelling, spellings[spelling], value


def ips() -> Iterator[tuple[str, str, str]]:
    v4 = [
        "192.168.1.20",
        "10.0.3.7",
        "172.16.254.1",
        "203.0.113.42",
        "198.51.100.7",
        "8.8.8.8",
        "100.64.12.9",
        "81.2.69.160",
    ]
    for addr in v4:
        spellings = {
            "plain": addr,
            "port": f"{addr}:8443",
            "defanged": addr.replace(".", "[.]"),
            "fullwidth": fullwidth(addr),
            "zero_width": zero_width(addr),
            "embedded": embed(addr),
            "url": f"http://{addr}/v1",
        }
        for spelling in sorted(spellings):
            yield spelling, spellings[spelling], addr
    v6 = [
        "2001:db8::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "fe80::1ff:fe23:4567:890a",
        "2a00:1450:4001:81c::200e",
        "::ffff:192.0.2.128",
    ]
    for addr in v6:
        spellings = {
            "plain": addr,
            "upper": addr.upper(),
            "bracketed": f"[{addr}]:443",
            "zero_width": zero_width(addr),
            "embedded": embed(addr),
        }
        for spelling in sorted(spellings):
            yield spelling, spellings[spelling], addr


def _rand(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def not_dialable(number: str) -> str:
    """A 10-digit id that is no North American phone number (its exchange starts with 1): ten digits whose
    area code and exchange both start with 2-9 ARE one, whatever the sender meant."""
    if len(number) == 10 and number[0] in "23456789" and number[3] in "23456789":
        return number[:3] + "1" + number[4:]
    return number


# Credentials in URL query parameters, and encoded blobs, of every length (no rng: fixed values).
QUERY_SECRETS = [
    ("url_token", "https://api.example.com/v1/export?token={}", "Zk3q9Lm2Xw"),
    ("url_access_token", "https://hooks.example.com/cb?state=1&access_token={}", "ya29a0Af3kQ"),
    ("url_amz_signature", "https://bucket.example.com/o.json?X-Amz-Expires=60&X-Amz-Signature={}", "4f6d2a9c1b77"),
    ("url_api_key", "wss://rt.example.com/socket?api_key={}", "k9f8e7d6c5"),
    ("url_sig", "https://files.example.com/d/1?se=2026&sig={}", "Qm9vdHM5Zz"),
    ("url_code", "https://app.example.com/oauth/callback?code={}&state=xyz", "4/0AeanS0b"),
]
BLOBS = [
    "U2VjcmV0LXBheWxvYWQtMTIzNDU2Nzg5MA==",
    "eTkzNzRhYmNkZWZHSElKS0xNTk9QUVJTVFVWV1hZWmFiY2Q",
    "3Q7wPz9XkV2mN8rT4yB6cF1hJ5gL0sDq",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08e3b0c44298fc1c149afbf4c8996fb924",
]


def secrets() -> Iterator[tuple[str, str, str]]:
    alnum = string.ascii_letters + string.digits
    b64u = alnum + "-_"
    keys = [
        "sk-" + _rand(alnum, 48),
        "sk-proj-" + _rand(b64u, 56),
        "sk-ant-api03-" + _rand(b64u, 40),
        "sk_live_" + _rand(alnum, 24),
        "AKIA" + _rand(string.ascii_uppercase + string.digits, 16),
        "ASIA" + _rand(string.ascii_uppercase + string.digits, 16),
        "ghp_" + _rand(alnum, 36),
        "gho_" + _rand(alnum, 36),
        "github_pat_" + _rand(alnum + "_", 60),
        "xoxb-" + _rand(string.digits, 12) + "-" + _rand(string.digits, 12) + "-" + _rand(alnum, 24),
        "xoxp-" + _rand(string.digits, 11) + "-" + _rand(alnum, 20),
        "AIza" + _rand(b64u, 35),
        "glpat-" + _rand(b64u, 20),
        "hf_" + _rand(alnum, 34),
    ]
    for key in keys:
        spellings = {
            "plain": key,
            "embedded": f"key={key}",
            "zero_width": zero_width(key),
            "fullwidth": fullwidth(key),
            "upper": key.upper(),
            "quoted": f'"{key}"',
        }
        for spelling in sorted(spellings):
            yield spelling, spellings[spelling], key
    for _ in range(4):
        aws_secret = _rand(alnum + "/+", 40)
        for spelling, value in {
            "aws_secret_plain": aws_secret,
            "aws_secret_embedded": f"secret {aws_secret}",
            "aws_secret_zero_width": zero_width(aws_secret),
        }.items():
            yield spelling, value, aws_secret
    for _ in range(6):
        jwt = "eyJ" + _rand(b64u, 30) + ".eyJ" + _rand(b64u, 40) + "." + _rand(b64u, 43)
        for spelling, value in {
            "plain": jwt,
            "embedded": f"auth={jwt}",
            "zero_width": zero_width(jwt),
            "fullwidth": fullwidth(jwt),
        }.items():
            yield spelling, value, jwt
    for spelling, template, secret in QUERY_SECRETS:
        yield spelling, template.format(secret), secret
    for blob in BLOBS:
        yield "blob", blob, blob
        yield "blob_embedded", f"payload {blob}", blob
    for kind in ("RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY", "CERTIFICATE"):
        body = _rand(alnum + "+/", 40)
        pem = f"-----BEGIN {kind}-----\n{body}"
        yield "plain", pem, body
        yield "lower", pem.lower(), body
        yield "zero_width", zero_width(f"-----BEGIN {kind}-----") + " " + body, body
    for scheme in ("postgresql", "https", "redis", "mongodb+srv", "amqp", "ftp"):
        password = _rand(alnum, 14)
        url = f"{scheme}://svc_user:{password}@db.internal.example.com:5432/app"
        yield "plain", url, password
        yield "zero_width", zero_width(url), password
        yield "empty_user", f"{scheme}://:{password}@cache.example.com", password
    for _ in range(6):
        token = _rand(b64u, 32)
        for spelling, value in {
            "header": f"Authorization: Bearer {token}",
            "lower": f"bearer {token}",
            "upper": f"BEARER {token}",
            "basic": f"Basic {_rand(alnum + '+/', 24)}=",
            "zero_width": zero_width(f"Bearer {token}"),
        }.items():
            yield spelling, value, token if spelling != "basic" else value.split()[1]
    for name in ("password", "passwd", "api_key", "client_secret", "access_token", "PASSWORD"):
        value = _rand(alnum + "!#$", 12)
        yield "assignment", f"{name}={value}", value
        yield "assignment_colon", f"{name}: {value}", value


PROSE = [
    ("user_prompt", "Can you help me reset the password on my account?"),
    ("user_prompt", "What is the refund policy for orders shipped to Canada"),
    ("user_prompt", "please cancel my subscription and refund the last payment"),
    ("user_prompt", "I need to change the delivery address for order 1234"),
    ("user_prompt", "why was my card declined twice yesterday"),
    ("user_prompt", "summarise this contract and highlight the termination clauses"),
    ("user_prompt", "Write a polite email to my landlord about the broken heating"),
    ("user_prompt", "how do I export all of my data from the dashboard"),
    ("llm_response", "I'm sorry, but I can't help with that request."),
    ("llm_response", "Sure! Here is a summary of the document you shared with me."),
    ("llm_response", "Your order has been shipped and should arrive within three business days."),
    ("llm_response", "Based on the information provided, the customer is eligible for a full refund."),
    ("llm_response", "The capital of France is Paris, which is also its largest city."),
    ("llm_response", "Here are three options you could consider for the migration plan."),
    ("chain_of_thought", "Let me think step by step about which tool to call first."),
    ("chain_of_thought", "First, I should check the order status, then decide whether a refund applies."),
    ("chain_of_thought", "The user seems frustrated, so the reply should apologise before explaining the delay."),
    ("chain_of_thought", "Thought: the search returned nothing useful, try the knowledge base instead."),
    ("retrieved_document", "Refunds are processed within 14 business days of receiving the returned item."),
    ("retrieved_document", "Section 4.2: The tenant shall give sixty days written notice before vacating."),
    ("retrieved_document", "Patients with a history of asthma should consult their physician before use."),
    ("retrieved_document", "The quarterly revenue grew by twelve percent compared to the previous year."),
    ("user_prompt_de", "Wie kann ich mein Passwort zurücksetzen, bitte hilf mir"),
    ("user_prompt_fr", "Pouvez-vous annuler ma commande et me rembourser le montant total"),
    ("user_prompt_es", "Quiero cambiar la dirección de envío de mi pedido por favor"),
    ("user_prompt_zh", "请帮我查询一下我的账户余额和最近的交易记录"),
    ("user_prompt_ja", "私のアカウントのパスワードを変更する方法を教えてください"),
    ("short_personal", "reset my password"),
    ("short_personal", "call me tomorrow"),
    ("short_question", "where is my order?"),
]


def prose() -> Iterator[tuple[str, str, str]]:
    for kind, text in PROSE:
        yield f"{kind}", text, text
        yield f"{kind}_zero_width", zero_width(text), text
        yield f"{kind}_fullwidth", fullwidth(text), text
        if text.isascii():
            yield f"{kind}_upper", text.upper(), text
            yield f"{kind}_url_encoded", text.replace(" ", "%20"), text


HOSTILE: dict[str, Callable[[], Iterator[tuple[str, str, str]]]] = {
    "email": emails,
    "phone": phones,
    "payment_card": cards,
    "ssn": ssns,
    "iban": ibans,
    "ip_address": ips,
    "secret": secrets,
    "prose": prose,
}


# --- benign -------------------------------------------------------------------------------------------------

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-nano",
    "o3-mini",
    "claude-3-5-sonnet",
    "claude-3-5-sonnet-20241022",
    "claude-3-haiku-20240307",
    "claude-sonnet-4-5",
    "gemini-1.5-pro",
    "gemini-2.0-flash-001",
    "llama-3.1-70b-instruct",
    "mistral-large-2407",
    "text-embedding-3-small",
    "command-r-plus",
    "qwen2.5-72b-instruct",
    "deepseek-v3",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "meta-llama/Llama-3.1-8B-Instruct",
]
TOOLS = [
    "web_search",
    "search_kb",
    "lookup_order",
    "get_weather",
    "send_email_stub",
    "create_ticket",
    "sql_query_runner",
    "vector_search",
    "rerank",
    "fetch_url",
    "calculator",
    "code_interpreter",
    "kb.search",
    "crm.lookup",
    "billing.refund",
    "inventory-check",
    "ShopifyOrderLookup",
    "zendesk_create",
    "slack_notify",
    "github.list_prs",
]
HOSTS = [
    "api.example.com",
    "db-primary.internal",
    "localhost",
    "localhost:8000",
    "127.0.0.1:5432",
    "eu-west-1.amazonaws.com",
    "api.openai.com",
    "api.anthropic.com",
    "redis-0.redis.svc.cluster.local",
    "ingest.agenttracer.dev",
    "0.0.0.0:8001",
    "s3.us-east-2.amazonaws.com",
    "https://api.example.com/v1/orders",
    "https://status.example.com/incidents/42",
    "grpc://inventory.internal:50051",
    "[::1]:8080",
]
WORDS = [
    "ok",
    "error",
    "timeout",
    "retry",
    "cached",
    "miss",
    "hit",
    "primary",
    "fallback",
    "eu",
    "us",
    "prod",
    "staging",
    "dev",
    "canary",
    "blue",
    "green",
    "v2",
    "fast",
    "slow",
    "json",
    "xml",
    "stream",
    "batch",
    "sync",
    "async",
]
LABELS = [
    "Customer Support Agent",
    "Order Lookup",
    "Refund Flow v2",
    "Plan next action",
    "Rerank top 20",
    "Search knowledge base",
    "Generate reply",
    "Validate schema",
    "Retry with backoff",
    "Fetch inventory",
    "Summarize ticket",
    "Classify intent",
    "HTTP 503",
    "HTTP 429 Too Many",
    "rate limited",
    "cache hit",
    "tool call",
    "Step 3 of 5",
    "I/O error",
    "us-east-1",
    "Mon 09:00 UTC",
    "batch 12 of 40",
    "99.9%",
    "12.99 USD",
    "1500ms",
    "30s",
    "2.5 GB",
    "en-US",
    "application/json",
    "text/event-stream",
    "#ff8800",
    "Top-K 5",
    "p95 120ms",
]


# Look-alikes chosen to be hard: numbers, versions, assignments and words near the detectors' edges.
# A few are genuinely ambiguous and are refused on purpose (a 4-part version without 'v' reads as an
# IPv4 address, "a::b" is a valid IPv6 address); they count against the false-positive figure.
HARD = [
    "1.2.3.4",
    "10.0.19041.1",
    "4.0.0.0",
    "2024-11-25 14:30",
    "14:30:00",
    "+0100",
    "UTC+05:30",
    "1e-06",
    "3.141592653589793",
    "0.1234567890123",
    "2.718281828459045",
    "123-456-7890-ABC",
    "ISBN 978-3-16-148410-0",
    "9783161484100",
    "978-0-306-40615-7",
    "tel_lookup",
    "call_tool",
    "phone_number_validator",
    "email_sender",
    "@mention",
    "user@localhost",
    "node@18.19.0",
    "python@3.11",
    "image@sha256:abcd",
    "arn:aws:s3:::my-bucket",
    "2001:db8 docs",
    "00:1a:2b:3c:4d:5e",
    "12:34:56:78",
    "fe80",
    "a::b",
    "ProcessPoolExecutor",
    "KeyError",
    "openai.RateLimitError",
    "Bearer",
    "Bearer token missing",
    "basic auth",
    "token_limit",
    "x-api-key",
    "max_tokens=4096",
    "temperature=0.7",
    "top_p=0.95",
    "k=5",
    "code=200",
    "status=503",
    "retry_after=30",
    "DE",
    "de-DE",
    "en_GB.UTF-8",
    "Europe/Berlin",
    "America/New_York",
    "50.0%",
    "$12.99",
    "€9,99",
    "1,234,567",
    "1 234 567",
    "100 200 300 400 500",
    "4111",
    "GPU 0 1 2 3",
    "v2.10.3-alpha.1+20241125",
    "run 42 of 100",
    "page 3/10",
    "batch-0001-0002-0003-0004",
    "cluster-01.eu-west-1.internal",
    "10-0-3-7.pod.cluster.local",
    "ip-10-0-3-7.ec2.internal",
    "sk-learn",
    "scikit-learn==1.5.2",
    "torch==2.5.1+cu121",
    "AKIA",
    "eyJ",
    "ghp_",
    "xoxb",
    "summarize_document",
    "what-if-analysis",
    "I/O",
    "my-service",
    "our-api",
    "A/B test variant B",
    "Q4 2024 report",
    "Top 10 results",
    "Retry budget left: 2",
    "Cold start",
    "Warm cache hit",
    "v1.2.3.4",
]


def benign() -> Iterator[tuple[str, str]]:
    for value in HARD:
        yield "hard", value
    for _ in range(120):
        yield "uuid4", str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for _ in range(120):
        ms = rng.randint(1_600_000_000_000, 1_900_000_000_000)
        raw = ms.to_bytes(6, "big") + rng.getrandbits(80).to_bytes(10, "big")
        value = bytearray(raw)
        value[6] = (value[6] & 0x0F) | 0x70
        value[8] = (value[8] & 0x3F) | 0x80
        yield "uuid7", str(uuid.UUID(bytes=bytes(value)))
    for _ in range(100):
        yield "timestamp_ms", str(rng.randint(1_600_000_000_000, 1_999_999_999_999))
    for _ in range(40):
        yield "timestamp_s", str(rng.randint(1_600_000_000, 1_999_999_999))
    for _ in range(100):
        yield "id_9_10", not_dialable(str(rng.randint(100_000_000, 9_999_999_999)))
    for _ in range(80):
        sha = f"{rng.getrandbits(160):040x}"
        yield "git_sha", sha
        if _ % 2:
            yield "git_sha_short", sha[:7]
    for _ in range(60):
        version = f"{rng.randint(0, 30)}.{rng.randint(0, 40)}.{rng.randint(0, 300)}"
        yield (
            "semver",
            rng.choice(
                [
                    version,
                    "v" + version,
                    version + "-rc." + str(rng.randint(1, 9)),
                    version + "+build." + str(rng.randint(1, 9999)),
                    version + "-beta",
                ]
            ),
        )
    for _ in range(60):
        prefix = rng.choice(["ORD", "INV", "PO", "TCK", "CASE", "REF"])
        yield "order_number", f"{prefix}-{rng.randint(2019, 2026)}-{rng.randint(0, 999999):06d}"
    for _ in range(20):
        yield "ticket", f"{rng.choice(['JIRA', 'OPS', 'SUP', 'ENG'])}-{rng.randint(1, 99999)}"
    for code in (
        200,
        201,
        202,
        204,
        301,
        302,
        304,
        400,
        401,
        403,
        404,
        408,
        409,
        413,
        415,
        422,
        429,
        500,
        502,
        503,
        504,
    ):
        yield "http_code", str(code)
        yield "http_code", f"HTTP {code}"
    for model in MODELS:
        yield "model", model
    for tool in TOOLS:
        yield "tool", tool
    for host in HOSTS:
        yield "host", host
    for label in LABELS:
        yield "label", label
    for _ in range(60):
        yield (
            "date",
            f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}Z",
        )
    for _ in range(40):
        yield "token_word", "-".join(rng.sample(WORDS, rng.randint(1, 3)))
    for _ in range(30):
        yield (
            "pod",
            f"api-{f'{rng.getrandbits(36):09x}'}-{''.join(rng.choices(string.ascii_lowercase + string.digits, k=5))}",
        )
    for _ in range(20):
        yield "digest", "sha256:" + f"{rng.getrandbits(256):064x}"
    for _ in range(20):
        yield "image", f"ghcr.io/acme/agent:{rng.randint(1, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    for _ in range(20):
        yield "count", str(rng.randint(0, 100000))
    for _ in range(20):
        yield "float", str(round(rng.uniform(0, 5000), rng.randint(1, 4)))
    for _ in range(10):
        yield "arn", f"arn:aws:lambda:us-east-1:{rng.randint(10**11, 10**12 - 1)}:function:agent-{rng.randint(1, 99)}"
    for _ in range(10):
        yield "hex_id", f"{rng.getrandbits(128):032x}"
    for _ in range(10):
        yield "trace_id", f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"


BENIGN_MESSAGES = [
    "External API timeout after 30s",
    "Rate limited by provider (429), retry budget exhausted after 3 attempts",
    "Upstream returned HTTP 503 from inventory service",
    "Schema validation failed: field 'order_id' missing",
    "Tool web_search returned no results",
    "Model output was not valid JSON",
    "Connection refused by db-primary.internal:5432",
    "Max iterations (25) reached without a final answer",
    "Cancelled by operator",
    "Context window of 128000 tokens exceeded",
    "Content filter blocked the completion",
    "Retriever returned 0 documents for index kb-v3",
    "TLS handshake timeout after 10s",
    "Invalid tool arguments for lookup_order",
    "Timed out waiting for lock on run 550e8400-e29b-41d4-a716-446655440000",
    "Deadline exceeded after 2500 ms",
    "HTTP 401 from api.example.com: credentials rejected",
    "KeyError: 'customer_id'",
    "Worker crashed with exit code 137 (OOM)",
    "Gateway timeout on ORD-2024-000123 refund",
    "Disk I/O error on volume data-1",
    "Embedding service unavailable in us-east-1",
    "Parser failed at line 42, column 7",
    "Budget of 50 steps used up",
    "DNS lookup failed for api.openai.com",
    "gpt-4o-mini returned finish_reason=length",
    "Circuit breaker open for crm.lookup",
    "Retry 3/3 failed: ConnectionError",
    "Quota exceeded for project agenttracer-prod",
    "Vector store returned malformed payload",
]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=True) + "\n" for row in rows), encoding="utf-8")


def build() -> dict[str, list[dict[str, str]]]:
    rng.seed(20261125)
    hostile = [
        {"category": category, "spelling": spelling, "value": value, "needle": needle}
        for category, gen in HOSTILE.items()
        for spelling, value, needle in gen()
    ]
    seen: set[str] = set()
    benign_rows = []
    for category, value in benign():
        if value not in seen:
            seen.add(value)
            benign_rows.append({"category": category, "value": value})
    messages = [{"category": "message", "value": m} for m in BENIGN_MESSAGES]
    return {"hostile.jsonl": hostile, "benign.jsonl": benign_rows, "benign_messages.jsonl": messages}


def main() -> None:
    for name, rows in build().items():
        write(HERE / name, rows)
        print(f"{name}: {len(rows)} entries")


if __name__ == "__main__":
    main()
