"""Property tests: the policy never raises, and what it lets through passes it again unchanged."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenttracer.model import MAX_MESSAGE_LEN
from agenttracer.privacy import REASONS, REDACTED_NAME, scrub_message, scrub_metadata, scrub_name
from tests.privacy import corpus_data

HOSTILE_VALUES = [e["value"] for e in corpus_data.hostile()]
BENIGN_VALUES = [e["value"] for e in corpus_data.benign()]

# Text that exercises the detectors: random unicode, corpus strings, and mixtures of both.
texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from("0123456789 -.+()@:[]atdo\u200b\uff10\uff20"), max_size=60),
    st.sampled_from(HOSTILE_VALUES),
    st.sampled_from(BENIGN_VALUES),
    st.lists(st.one_of(st.sampled_from(HOSTILE_VALUES + BENIGN_VALUES), st.text(max_size=20)), max_size=6).map(
        " ".join
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts,
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
keys = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["prompt_tokens", "rawResponse", "httpStatus", "http_status", "tokens", "model", "user_email"]),
    st.from_regex(r"[a-zA-Z][a-zA-Z0-9_.\-]{0,70}", fullmatch=True),
)
metadata = st.dictionaries(st.one_of(keys, st.integers()), values, max_size=40)

# AGENTTRACER_HYPOTHESIS_EXAMPLES=5000 for a deeper search than the default run.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("AGENTTRACER_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(metadata)
def test_metadata_never_raises_and_is_idempotent(meta: dict[Any, Any]) -> None:
    kept, removed = scrub_metadata(meta)
    assert all(r.reason in REASONS for r in removed)
    assert len(kept) <= 32
    assert scrub_metadata(kept) == (kept, [])


@PROPERTY_SETTINGS
@given(st.one_of(texts, st.integers(), st.none()))
def test_names_never_raise_and_are_idempotent(name: Any) -> None:
    out, reason = scrub_name(name)
    assert reason is None or reason in REASONS
    assert scrub_name(out) == (out, None)
    if reason is not None:
        assert out == REDACTED_NAME


@PROPERTY_SETTINGS
@given(st.one_of(texts, st.none(), st.integers()))
def test_messages_never_raise_and_are_idempotent(message: Any) -> None:
    out, reason = scrub_message(message)
    assert reason is None or reason in REASONS
    if out is not None:
        assert len(out) <= MAX_MESSAGE_LEN
        assert scrub_message(out) == (out, None)
