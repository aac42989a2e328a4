"""The classification of ClickHouse errors, whichever driver raised them.

Errors of chdb and clickhouse-connect are raised as ``ClickHouseError`` carrying the server's error
``code`` (0 when the driver did not say), so callers tell a timeout or an unavailable database from
a bad statement without importing a driver. The message is the driver's and may quote values of the
statement: log the class, never the message.
"""

from __future__ import annotations

import re

_CODE_RE = re.compile(r"Code: (\d+)")

# ClickHouse error codes the store reacts to.
TIMEOUT_EXCEEDED = 159
QUERY_WAS_CANCELLED = 394
READONLY = 164
NOT_ENOUGH_SPACE = 243
TABLE_IS_READ_ONLY = 242
# "Not there right now, try again": no connection (no code), network, too many queries, out of memory,
# read-only or full (a replica in trouble, a full disk).
UNAVAILABLE_CODES = frozenset({0, 3, 202, 203, 209, 210, 241, 242, 243, 425, 999})
CANNOT_WRITE_CODES = frozenset({READONLY, TABLE_IS_READ_ONLY, NOT_ENOUGH_SPACE})


class ClickHouseError(Exception):
    """A statement failed; ``code`` is ClickHouse's error code (0: the driver gave none, e.g. no connection).
    The message is the driver's and may quote values of the statement: never log it."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code

    @staticmethod
    def from_driver(exc: BaseException) -> ClickHouseError:
        code = getattr(exc, "code", None)
        if not isinstance(code, int):
            match = _CODE_RE.search(str(exc))
            code = int(match.group(1)) if match else 0
        kind = ClickHouseUnavailable if code in UNAVAILABLE_CODES else ClickHouseError
        return kind(str(exc), code)


class ClickHouseUnavailable(ClickHouseError):
    """The database cannot answer right now (unreachable, overloaded, read-only, full): retry later."""
