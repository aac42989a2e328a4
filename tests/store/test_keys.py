"""API keys in the database: made with a scope prefix, stored only as a digest, revocable at once."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from agenttracer.store.keys import KeyStatus
from agenttracer.store.sql.keys import create_key, list_keys, revoke_key, verify_key
from agenttracer.store.sql.schema.tables import api_keys


def test_a_key_carries_its_scope_prefix_and_only_its_digest_is_stored(engine: sa.Engine) -> None:
    info, key = create_key(engine, "ingest", name="ci agents")
    assert key.startswith("at_ingest_") and len(key) > len("at_ingest_") + 40
    assert info.last4 == key[-4:] and info.masked == f"at_ingest_…{key[-4:]}"
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    # The secret part of the key appears in no column.
    assert all(key[len("at_ingest_"):] not in str(value) for value in row)


def test_read_keys_have_their_own_prefix_and_keys_are_unique(engine: sa.Engine) -> None:
    keys = {create_key(engine, "read")[1] for _ in range(5)}
    assert len(keys) == 5 and all(k.startswith("at_read_") for k in keys)


def test_unknown_scope_and_overlong_name_are_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="scope must be one of ingest, read"):
        create_key(engine, "admin")
    with pytest.raises(ValueError, match="name must be at most 64"):
        create_key(engine, "read", name="x" * 65)


def test_verify_tells_valid_unknown_and_revoked_apart(engine: sa.Engine) -> None:
    info, key = create_key(engine, "read")
    with engine.connect() as conn:
        ok = verify_key(conn, key)
        assert ok.status is KeyStatus.VALID and ok.key is not None and ok.key.key_id == info.key_id
        assert verify_key(conn, key[:-1] + ("A" if key[-1] != "A" else "B")).status is KeyStatus.UNKNOWN
    assert revoke_key(engine, info.key_id) is True
    with engine.connect() as conn:
        assert verify_key(conn, key).status is KeyStatus.REVOKED


def test_revoking_twice_keeps_the_first_time_and_unknown_ids_say_so(engine: sa.Engine) -> None:
    info, _ = create_key(engine, "ingest")
    assert revoke_key(engine, info.key_id)
    first = list_keys(engine)[0].revoked_at
    assert revoke_key(engine, info.key_id)
    assert list_keys(engine)[0].revoked_at == first
    assert revoke_key(engine, "key_nosuchkey") is False


def test_list_shows_every_key_oldest_first_and_can_hide_revoked(engine: sa.Engine) -> None:
    a, _ = create_key(engine, "ingest", name="a")
    b, _ = create_key(engine, "read", name="b")
    revoke_key(engine, a.key_id)
    assert [k.key_id for k in list_keys(engine)] == [a.key_id, b.key_id]
    assert [k.key_id for k in list_keys(engine, include_revoked=False)] == [b.key_id]
