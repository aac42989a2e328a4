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

Listing shows the prefix and the last four characters only. Revocation stamps ``revoked_at``; every
verification reads the row afresh (nothing is cached), so a revoked key fails on its very next use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

import sqlalchemy as sa

from agenttracer.store.schema.tables import api_keys

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


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")


def _row_to_info(row: sa.Row) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        scope=row.scope,
        prefix=row.prefix,
        last4=row.last4,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_key(engine: sa.Engine, scope: str, name: str | None = None) -> tuple[KeyInfo, str]:
    """Make a new key of ``scope``; return its public record and the full key (shown once, never stored)."""
    _check_scope(scope)
    if name is not None and len(name) > MAX_NAME_LEN:
        raise ValueError(f"name must be at most {MAX_NAME_LEN} characters")
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
    )
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                key_id=info.key_id,
                scope=info.scope,
                prefix=info.prefix,
                key_hash=hash_key(key),
                last4=info.last4,
                name=info.name,
                created_at=info.created_at,
            )
        )
    return info, key


# What a KeyInfo is read from (never the hash).
_INFO_COLUMNS = (
    api_keys.c.key_id,
    api_keys.c.scope,
    api_keys.c.prefix,
    api_keys.c.last4,
    api_keys.c.name,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)


def list_keys(engine: sa.Engine, *, include_revoked: bool = True) -> list[KeyInfo]:
    query = sa.select(*_INFO_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_row_to_info(row) for row in conn.execute(query)]


def revoke_key(engine: sa.Engine, key_id: str) -> bool:
    """Revoke ``key_id``; False when no such key exists. Revoking twice keeps the first time."""
    with engine.begin() as conn:
        exists = conn.execute(sa.select(api_keys.c.key_id).where(api_keys.c.key_id == key_id)).first()
        if exists is None:
            return False
        conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(timezone.utc))
        )
    return True


def any_key_exists(conn: sa.Connection) -> bool:
    """True once a key has ever been created — revoked ones included, so revoking the last key locks."""
    return conn.execute(sa.select(api_keys.c.key_id).limit(1)).first() is not None


def verify_key(conn: sa.Connection, key: str) -> Verification:
    """Look ``key`` up by its digest; say whether it is valid, revoked or unknown."""
    digest = hash_key(key)
    row = conn.execute(
        sa.select(*_INFO_COLUMNS, api_keys.c.key_hash).where(api_keys.c.key_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return Verification(KeyStatus.UNKNOWN)
    info = _row_to_info(row)
    if not info.active:
        return Verification(KeyStatus.REVOKED, info)
    return Verification(KeyStatus.VALID, info)
