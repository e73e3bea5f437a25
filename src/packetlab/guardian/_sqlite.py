"""Opening the guardian's SQLite files: autocommit (explicit transactions), WAL, a busy
timeout, so several endpoint processes share one file and a killed one loses nothing committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path


def open_wal(path: Path, schema: Iterable[str], busy_timeout_ms: int) -> sqlite3.Connection:
    """Open (creating the directory and ``schema``) a database in WAL mode; raises
    sqlite3.Error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, isolation_level=None, timeout=busy_timeout_ms / 1000, check_same_thread=False
    )
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    for statement in schema:
        db.execute(statement)
    return db
