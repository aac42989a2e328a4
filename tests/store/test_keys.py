"""API keys in every store: made with a scope prefix, stored only as a digest, revocable at once."""

from __future__ import annotations

import hashlib

import pytest

from agenttracer.store.interface import Store
from agenttracer.store.keys import KeyStatus
from tests.support.stored import stored_key_rows, verify


def test_a_key_carries_its_scope_prefix_and_only_its_digest_is_stored(store: Store) -> None:
    info, key = store.create_key("ingest", name="ci agents")
    assert key.startswith("at_ingest_") and len(key) > len("at_ingest_") + 40
    assert info.last4 == key[-4:] and info.masked == f"at_ingest_…{key[-4:]}"
    [row] = stored_key_rows(store)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    # The secret part of the key appears in no column.
    assert all(key[len("at_ingest_"):] not in str(value) for value in row.values())


def test_read_keys_have_their_own_prefix_and_keys_are_unique(store: Store) -> None:
    keys = {store.create_key("read")[1] for _ in range(5)}
    assert len(keys) == 5 and all(k.startswith("at_read_") for k in keys)


def test_unknown_scope_and_overlong_name_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="scope must be one of ingest, read"):
        store.create_key("admin")
    with pytest.raises(ValueError, match="name must be at most 64"):
        store.create_key("read", name="x" * 65)


def test_verify_tells_valid_unknown_and_revoked_apart(store: Store) -> None:
    info, key = store.create_key("read")
    ok = verify(store, key)
    assert ok.status is KeyStatus.VALID and ok.key is not None and ok.key.key_id == info.key_id
    assert verify(store, key[:-1] + ("A" if key[-1] != "A" else "B")).status is KeyStatus.UNKNOWN
    assert store.revoke_key(info.key_id) is True
    assert verify(store, key).status is KeyStatus.REVOKED


def test_revoking_twice_keeps_the_first_time_and_unknown_ids_say_so(store: Store) -> None:
    info, _ = store.create_key("ingest")
    assert store.revoke_key(info.key_id)
    first = store.list_keys()[0].revoked_at
    assert store.revoke_key(info.key_id)
    assert store.list_keys()[0].revoked_at == first
    assert store.revoke_key("key_nosuchkey") is False


def test_list_shows_every_key_oldest_first_and_can_hide_revoked(store: Store) -> None:
    a, _ = store.create_key("ingest", name="a")
    b, _ = store.create_key("read", name="b")
    store.revoke_key(a.key_id)
    assert [k.key_id for k in store.list_keys()] == [a.key_id, b.key_id]
    assert [k.key_id for k in store.list_keys(include_revoked=False)] == [b.key_id]
