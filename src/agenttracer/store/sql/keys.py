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
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

import sqlalchemy as sa

from agenttracer.model import DEFAULT_PROJECT, PROJECT_RULE, is_valid_project
from agenttracer.store.sql.schema.tables import api_key_projects, api_keys
from agenttracer.store.sql.schema.tables import projects as projects_table

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


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")


def _row_to_info(row: sa.Row, bound: Sequence[str] = ()) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        scope=row.scope,
        prefix=row.prefix,
        last4=row.last4,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        admin=bool(row.admin),
        projects=tuple(sorted(bound)),
    )


def _check_binding(conn: sa.Connection, scope: str, bound: Sequence[str], admin: bool) -> None:
    """The binding rules: ingest → exactly one project; read → one or more projects, or admin; every
    project must exist (``agenttracer projects create``)."""
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
    slugs = projects_table.c.slug
    found = set(conn.execute(sa.select(slugs).where(slugs.in_(list(bound)))).scalars())
    missing = sorted(set(bound) - found)
    if missing:
        raise ValueError(f"no such project: {', '.join(missing)} (create it with `agenttracer projects create`)")


def create_key(
    engine: sa.Engine,
    scope: str,
    name: str | None = None,
    *,
    projects: Sequence[str] = (DEFAULT_PROJECT,),
    admin: bool = False,
) -> tuple[KeyInfo, str]:
    """Make a new key of ``scope`` bound to ``projects`` (or an ``admin`` read key); return its public
    record and the full key (shown once, never stored)."""
    _check_scope(scope)
    if name is not None and len(name) > MAX_NAME_LEN:
        raise ValueError(f"name must be at most {MAX_NAME_LEN} characters")
    bound = () if admin else tuple(sorted(set(projects)))
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
    with engine.begin() as conn:
        _check_binding(conn, scope, bound, admin)
        conn.execute(
            api_keys.insert().values(
                key_id=info.key_id,
                scope=info.scope,
                admin=admin,
                prefix=info.prefix,
                key_hash=hash_key(key),
                last4=info.last4,
                name=info.name,
                created_at=info.created_at,
            )
        )
        if bound:
            conn.execute(api_key_projects.insert(), [{"key_id": info.key_id, "project": p} for p in bound])
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
    api_keys.c.admin,
)


def list_keys(engine: sa.Engine, *, include_revoked: bool = True) -> list[KeyInfo]:
    query = sa.select(*_INFO_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        bound: dict[str, list[str]] = {}
        for key_id, project in conn.execute(sa.select(api_key_projects.c.key_id, api_key_projects.c.project)):
            bound.setdefault(key_id, []).append(project)
        return [_row_to_info(row, bound.get(row.key_id, ())) for row in conn.execute(query)]


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
    # One statement for the key and its projects: one row per bound project (one row with NULL for admin).
    rows = conn.execute(
        sa.select(*_INFO_COLUMNS, api_keys.c.key_hash, api_key_projects.c.project)
        .select_from(api_keys.outerjoin(api_key_projects, api_key_projects.c.key_id == api_keys.c.key_id))
        .where(api_keys.c.key_hash == digest)
    ).all()
    if not rows or not hmac.compare_digest(rows[0].key_hash, digest):
        return Verification(KeyStatus.UNKNOWN)
    info = _row_to_info(rows[0], [row.project for row in rows if row.project is not None])
    if not info.active:
        return Verification(KeyStatus.REVOKED, info)
    return Verification(KeyStatus.VALID, info)
