"""The runs list's cursor: the position after a page's last run, sealed so it cannot be forged.

Every store pages runs newest first on ``(started_at, run_id)`` and hands out these cursors, so a
cursor is the same token whichever store issued it (and a client cannot tell stores apart by it).
A cursor is tied to the filters it was issued for: reusing it with other filters is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from agenttracer.model import MAX_ID_LEN, has_bad_chars
from agenttracer.store.cursor_seal import SealError, seal, unseal
from agenttracer.store.filters import RunFilters


class CursorError(ValueError):
    """A cursor that is not one this server issued for these filters."""


@dataclass(frozen=True)
class Cursor:
    """Position after the last run of a page. ``started_at`` None: inside the undated tail."""

    started_at: datetime | None
    run_id: str


def _filters_fingerprint(f: RunFilters) -> str:
    # Ties a cursor to the filters it was issued for, so reusing it with other filters is refused
    # instead of silently skipping runs.
    raw = json.dumps(asdict(f), default=str, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:12]


_MALFORMED = "cursor is not one this server issued: pass back the next_cursor value of a previous page unchanged"


def encode_cursor(cursor: Cursor, filters: RunFilters, key: bytes) -> str:
    """The ``next_cursor`` for a page ending at ``cursor``, sealed with the server's cursor secret ``key``."""
    payload = {
        "t": cursor.started_at.astimezone(timezone.utc).isoformat() if cursor.started_at else None,
        "r": cursor.run_id,
        "f": _filters_fingerprint(filters),
    }
    return seal(key, payload)


def decode_cursor(token: str, filters: RunFilters, key: bytes) -> Cursor:
    """Open a cursor from ``encode_cursor`` under the same ``key``; CursorError saying what is wrong.

    The seal is checked first, so a forged or edited cursor is refused before its content is read;
    the content is still checked in full (a cursor sealed by a buggy or older server is refused too).
    """
    try:
        payload = unseal(key, token)
    except SealError:
        raise CursorError(_MALFORMED) from None
    t, run_id, fingerprint = payload.get("t"), payload.get("r"), payload.get("f")
    if not (isinstance(run_id, str) and isinstance(fingerprint, str) and (t is None or isinstance(t, str))):
        raise CursorError(_MALFORMED)
    if not 0 < len(run_id) <= MAX_ID_LEN or has_bad_chars(run_id):
        raise CursorError(_MALFORMED)
    started_at = None
    if t is not None:
        try:
            started_at = datetime.fromisoformat(t)
        except ValueError:
            raise CursorError(_MALFORMED) from None
        if started_at.tzinfo is None:
            raise CursorError(_MALFORMED)
    if fingerprint != _filters_fingerprint(filters):
        raise CursorError("cursor was issued for different filters: repeat the first request's filters or start over")
    return Cursor(started_at, run_id)
