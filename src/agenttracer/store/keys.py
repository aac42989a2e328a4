"""API keys: create, list, revoke and verify, on the ``api_keys`` table.

A key looks like ``at_ingest_<secret>`` or ``at_read_<secret>``: the prefix says at a glance what the
key opens, the secret is 32 random bytes (256 bits) from :mod:`secrets`, URL-safe base64 encoded.

Only a SHA-256 digest of the whole key is stored, never the key. A slow password hash (bcrypt,
argon2) exists to make guessing *low-entropy* human passwords expensive; a 256-bit random secret
cannot be guessed at any hashing speed, so a fast digest loses nothing — and because it is
deterministic (no per-row salt) the digest itself is the lookup key: one indexed equality query per
request instead of trying every stored hash. A leaked database therefore yields no usable key.

The database finds the row by digest; we then compare the digests again with
:func:`hmac.compare_digest`, so the decision never depends on a short-circuiting string comparison.
Any timing the index lookup itself shows is about SHA-256 outputs, which tell an attacker nothing
about which key would produce them.

Every key is bound to projects (``api_key_projects``): an ingest key to exactly one, whose runs it
writes; a read key to one or more, or it is an ``admin`` key that reads every project. Only read keys
can be admin: an ingest key's one project is what decides where its runs go.

Listing shows the prefix and the last four characters only. Revocation stamps ``revoked_at``; every
verification reads the row afresh (nothing is cached), so a revoked key fails on its very next use.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from agenttracer.model import PROJECT_RULE, is_valid_project

SCOPES = ("ingest", "read")
KEY_PREFIXES = {"ingest": "at_ingest_", "read": "at_read_"}
SECRET_BYTES = 32
MAX_NAME_LEN = 64


class KeyStatus(str, Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never the secret, never the digest."""

    key_id: str
    scope: str
    prefix: str
    last4: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    admin: bool = False
    projects: tuple[str, ...] = ()  # sorted; empty for an admin key

    @property
    def masked(self) -> str:
        """``at_read_…abcd``: enough to recognise a key, useless to anyone who reads it."""
        return f"{self.prefix}…{self.last4}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Verification:
    status: KeyStatus
    key: KeyInfo | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")


def check_binding(scope: str, bound: Sequence[str], admin: bool) -> None:
    """The binding rules a store checks before it stores a key: ingest → exactly one project; read → one
    or more projects, or admin. (That every bound project exists is the store's check.)"""
    if admin:
        if scope != "read":
            raise ValueError("only a read key can be an admin key: an ingest key writes into exactly one project")
        if bound:
            raise ValueError("an admin key reads every project: name no project")
        return
    if scope == "ingest" and len(bound) != 1:
        raise ValueError("an ingest key is bound to exactly one project")
    if not bound:
        raise ValueError("a read key is bound to one or more projects, or is an admin key")
    for slug in bound:
        if not is_valid_project(slug):
            raise ValueError(f"project {slug!r}: {PROJECT_RULE}")


def new_key(scope: str, name: str | None, projects: Sequence[str], admin: bool) -> tuple[KeyInfo, str]:
    """A fresh key of ``scope`` and its public record (nothing stored yet); ValueError naming the broken
    rule. The store then checks that the projects exist and stores the record with ``hash_key(key)``."""
    check_scope(scope)
    if name is not None and len(name) > MAX_NAME_LEN:
        raise ValueError(f"name must be at most {MAX_NAME_LEN} characters")
    bound = () if admin else tuple(sorted(set(projects)))
    check_binding(scope, bound, admin)
    prefix = KEY_PREFIXES[scope]
    key = prefix + secrets.token_urlsafe(SECRET_BYTES)
    info = KeyInfo(
        key_id="key_" + secrets.token_hex(6),
        scope=scope,
        prefix=prefix,
        last4=key[-4:],
        name=name or None,
        created_at=datetime.now(timezone.utc),
        revoked_at=None,
        admin=admin,
        projects=bound,
    )
    return info, key
