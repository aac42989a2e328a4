"""API keys on ClickHouse's ``api_keys`` table: create, list, revoke, verify — the semantics of
``store/sql/keys.py`` (hashed keys, scopes, project binding; module docstring there says why a SHA-256
digest is enough and how the comparison stays constant-time).

A key's bound projects are an array column of its row (no second table); a revocation is a new version
of the row. Reads are ``FINAL`` (few rows), so a revoked key fails on its very next use.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.projects import project_slugs
from agenttracer.store.keys import KeyInfo, KeyStatus, Verification, hash_key, new_key

_COLUMNS = (
    "key_id", "scope", "admin", "prefix", "key_hash", "last4", "name", "created_at", "revoked_at", "projects",
    "version",
)  # fmt: skip
_INFO = "key_id, scope, prefix, last4, name, created_at, revoked_at, admin, projects"


def _version() -> int:
    from agenttracer.store.clickhouse.write.rows import next_version

    return next_version()


def _info(row: Sequence[Any]) -> KeyInfo:
    key_id, scope, prefix, last4, name, created_at, revoked_at, admin, bound = row
    return KeyInfo(key_id, scope, prefix, last4, name, created_at, revoked_at, bool(admin), tuple(sorted(bound)))


def create_key(
    conn: Connection,
    scope: str,
    name: str | None = None,
    *,
    projects: Sequence[str] = (DEFAULT_PROJECT,),
    admin: bool = False,
) -> tuple[KeyInfo, str]:
    """Make a new key of ``scope`` bound to ``projects`` (or an ``admin`` read key); return its public
    record and the full key (shown once, never stored)."""
    info, key = new_key(scope, name, projects, admin)
    if info.projects:
        missing = sorted(set(info.projects) - set(project_slugs(conn)))
        if missing:
            raise ValueError(f"no such project: {', '.join(missing)} (create it with `agenttracer projects create`)")
    row = (info.key_id, info.scope, info.admin, info.prefix, hash_key(key), info.last4, info.name,
           info.created_at, None, list(info.projects), _version())  # fmt: skip
    conn.insert("api_keys", _COLUMNS, [row])
    return info, key


def list_keys(conn: Connection, *, include_revoked: bool = True) -> list[KeyInfo]:
    where = "" if include_revoked else " WHERE revoked_at IS NULL"
    return [
        _info(row) for row in conn.query(f"SELECT {_INFO} FROM api_keys FINAL{where} ORDER BY created_at, key_id").rows
    ]


def revoke_key(conn: Connection, key_id: str) -> bool:
    """Revoke ``key_id``; False when no such key exists. Revoking twice keeps the first time."""
    rows = conn.query(
        f"SELECT {', '.join(_COLUMNS)} FROM api_keys FINAL WHERE key_id = {{key_id:String}}", {"key_id": key_id}
    ).rows
    if not rows:
        return False
    row = dict(zip(_COLUMNS, rows[0], strict=True))
    if row["revoked_at"] is None:
        row.update(revoked_at=datetime.now(timezone.utc), version=_version())
        conn.insert("api_keys", _COLUMNS, [tuple(row[name] for name in _COLUMNS)])
    return True


def unbind_project(conn: Connection, slug: str) -> int:
    """Remove ``slug`` from every key bound to it (deleting a project); a key left bound to nothing is
    revoked. Returns how many keys were revoked."""
    rows = conn.query(
        f"SELECT {', '.join(_COLUMNS)} FROM api_keys FINAL WHERE has(projects, {{slug:String}})", {"slug": slug}
    ).rows
    changed, revoked = [], 0
    version, now = _version(), datetime.now(timezone.utc)
    for values in rows:
        row = dict(zip(_COLUMNS, values, strict=True))
        row["projects"] = [p for p in row["projects"] if p != slug]
        if not row["projects"] and not row["admin"] and row["revoked_at"] is None:
            row["revoked_at"] = now
            revoked += 1
        row["version"] = version
        changed.append(tuple(row[name] for name in _COLUMNS))
    if changed:
        conn.insert("api_keys", _COLUMNS, changed)
    return revoked


def verify_key(conn: Connection, key: str) -> Verification:
    """Look ``key`` up by its digest; say whether it is valid, revoked or unknown."""
    digest = hash_key(key)
    rows = conn.query(
        f"SELECT {_INFO}, key_hash FROM api_keys FINAL WHERE key_hash = {{digest:String}}", {"digest": digest}
    ).rows
    if not rows or not hmac.compare_digest(rows[0][-1], digest):
        return Verification(KeyStatus.UNKNOWN)
    info = _info(rows[0][:-1])
    if not info.active:
        return Verification(KeyStatus.REVOKED, info)
    return Verification(KeyStatus.VALID, info)


def any_key_exists(conn: Connection) -> bool:
    """True once a key has ever been created — revoked ones included, so revoking the last key locks."""
    return bool(conn.query("SELECT 1 FROM api_keys LIMIT 1").rows)
