"""The SQLite plumbing shared by the event log and the meter registry.

Both stores use the standard library's :mod:`sqlite3` in WAL mode, opened in autocommit mode so
that every transaction is an explicit ``BEGIN IMMEDIATE`` ... ``COMMIT`` (:func:`transaction`).
They may share one file (each keeps its own tables and its own connection) or use separate files.

Why no thread pool (``twisted.enterprise.adbapi``): the writes are single-row inserts or updates,
and bulk writes (an event-log read of hundreds of entries, a fleet registration) go in one
transaction; in WAL mode a commit is one append to the WAL plus, with ``synchronous=FULL``, one
fsync. That is well under a millisecond on the reactor thread except for the fsync, and running it
in a pool would not make the fsync cheaper: it would add a thread hop per write, reorder writes
relative to the reactor's view, and force every caller onto Deferreds. Where fsync latency matters
more than surviving a power cut, open with ``synchronous="NORMAL"``: committed rows then still
survive a crash of the process (the WAL is in the OS's page cache), only not of the machine.

Each store records its schema version in ``amidcc_schema`` (component -> version) and refuses a
database written by a newer amidcc.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

__all__ = ["StoreError", "Synchronous", "connect", "ensure_schema", "transaction"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class StoreError(Exception):
    """A database cannot be used by this version of amidcc."""


def connect(path: str | Path, *, synchronous: Synchronous = "FULL") -> sqlite3.Connection:
    """Open (creating if needed) a SQLite database in WAL mode, autocommit, for this thread.

    ``":memory:"`` gives a private in-memory database (tests; nothing survives).
    """
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")  # the other store's connection may hold the lock
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure_schema(
    conn: sqlite3.Connection, component: str, version: int, statements: Sequence[str]
) -> None:
    """Create ``component``'s tables (idempotent ``CREATE ... IF NOT EXISTS`` statements).

    Raises :class:`StoreError` when the database holds a different version of that component's
    schema (there are no migrations yet: a version bump must bring one).
    """
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS amidcc_schema"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM amidcc_schema WHERE component = ?", (component,)
        ).fetchone()
        if row is not None and row[0] != version:
            raise StoreError(
                f"{component} schema version {row[0]} in the database, this amidcc has {version}"
            )
        for statement in statements:
            conn.execute(statement)
        if row is None:
            conn.execute(
                "INSERT INTO amidcc_schema (component, version) VALUES (?, ?)", (component, version)
            )
