"""API keys on the ``api_keys`` and ``api_key_projects`` tables: create, list, revoke and verify.

The key scheme (prefixes, 256-bit secrets, SHA-256 digest as the lookup key, binding rules) is
``store/keys.py``'s. The database finds the row by digest; we then compare the digests again with
:func:`hmac.compare_digest`, so the decision never depends on a short-circuiting string comparison.
Every verification reads the row afresh (nothing is cached), so a revoked key fails on its very next use.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.keys import KeyInfo, KeyStatus, Verification, hash_key, new_key
from agenttracer.store.sql.schema.tables import api_key_projects, api_keys
from agenttracer.store.sql.schema.tables import projects as projects_table


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


def _check_projects_exist(conn: sa.Connection, bound: Sequence[str]) -> None:
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
    info, key = new_key(scope, name, projects, admin)
    with engine.begin() as conn:
        if info.projects:
            _check_projects_exist(conn, info.projects)
        conn.execute(
            api_keys.insert().values(
                key_id=info.key_id,
                scope=info.scope,
                admin=info.admin,
                prefix=info.prefix,
                key_hash=hash_key(key),
                last4=info.last4,
                name=info.name,
                created_at=info.created_at,
            )
        )
        if info.projects:
            conn.execute(api_key_projects.insert(), [{"key_id": info.key_id, "project": p} for p in info.projects])
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
