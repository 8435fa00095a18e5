"""The project database: its tables, format version, the statements that write a row, and opening it.

`project.sqlite` is SQLite in WAL mode with `synchronous = FULL` (fsync on every commit), autocommit (each
statement is its own transaction). PRAGMA user_version holds SCHEMA_VERSION; a database with a larger number was
made by a newer FloodLabel and is refused untouched.

Migrations (`MIGRATIONS`, run when a project is opened for writing, each in one transaction with its user_version, so
a kill leaves the old format or the new one, never half): 1 -> 2 adds the `proposals` table (`proposals.py`); the
`images` table and its rows are untouched. A read-only open of an older database reads it as it is (no proposals).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from floodlabel.core.common.errors import DamagedProjectError, StoreError
from floodlabel.core.store import proposals

SCHEMA_VERSION = 2
"""Stored in PRAGMA user_version. A database with a larger number was made by a newer FloodLabel."""

COLUMNS = ("rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, created_at, updated_at, "
           "edited_since_accept, accepted_state_json, accepted_image_hash, mask_file, mask_sha256, mask_width, "
           "mask_height, model_id, checkpoint_hash, metrics_json, strokes_used, accepted_at")
"""Every column of `images`, in the order `records.record_from_row` and `INSERT_ROW` take them."""

UPSERT_PROGRESS = (
    "INSERT INTO images (rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, "
    "created_at, updated_at, edited_since_accept) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
    "ON CONFLICT(rel_path) DO UPDATE SET image_hash = excluded.image_hash, "
    "image_bytes = excluded.image_bytes, image_mtime_ns = excluded.image_mtime_ns, "
    "state_json = excluded.state_json, updated_at = excluded.updated_at, "
    "edited_since_accept = (status = 'accepted')")
"""An autosave: (rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, created_at, updated_at).
An accepted row keeps its status and accepted mask and is marked edited_since_accept."""

UPSERT_ACCEPTED = (
    "INSERT INTO images (rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, "
    "created_at, updated_at, edited_since_accept, accepted_state_json, accepted_image_hash, "
    "mask_file, mask_sha256, mask_width, mask_height, model_id, checkpoint_hash, metrics_json, "
    "strokes_used, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(rel_path) DO UPDATE SET status = excluded.status, "
    "image_hash = excluded.image_hash, image_bytes = excluded.image_bytes, "
    "image_mtime_ns = excluded.image_mtime_ns, state_json = excluded.state_json, "
    "updated_at = excluded.updated_at, edited_since_accept = 0, "
    "accepted_state_json = excluded.accepted_state_json, "
    "accepted_image_hash = excluded.accepted_image_hash, mask_file = excluded.mask_file, "
    "mask_sha256 = excluded.mask_sha256, mask_width = excluded.mask_width, "
    "mask_height = excluded.mask_height, model_id = excluded.model_id, "
    "checkpoint_hash = excluded.checkpoint_hash, metrics_json = excluded.metrics_json, "
    "strokes_used = excluded.strokes_used, accepted_at = excluded.accepted_at")
"""An accept: every column but edited_since_accept (reset to 0); created_at is kept when the row exists."""

INSERT_ROW = f"INSERT OR REPLACE INTO images ({COLUMNS}) VALUES ({', '.join('?' * 20)})"
"""A whole row, every column of COLUMNS (recovery restores rows with it)."""

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    rel_path TEXT PRIMARY KEY,                -- POSIX path relative to the dataset folder
    status TEXT NOT NULL CHECK (status IN ('in progress', 'accepted')),
    image_hash TEXT NOT NULL,                 -- SHA-256 of the image bytes at the last save
    image_bytes INTEGER, image_mtime_ns INTEGER,
    state_json TEXT,                          -- latest annotation state (autosave or accept)
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    edited_since_accept INTEGER NOT NULL DEFAULT 0,
    accepted_state_json TEXT, accepted_image_hash TEXT,
    mask_file TEXT, mask_sha256 TEXT, mask_width INTEGER, mask_height INTEGER,
    model_id TEXT, checkpoint_hash TEXT, metrics_json TEXT, strokes_used INTEGER, accepted_at REAL,
    CHECK (status != 'accepted' OR mask_file IS NOT NULL)
);
""" + proposals.TABLE

MIGRATIONS = {1: proposals.TABLE}
"""version -> the statements that take a database of that version to the next one."""


def connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
    """Open the database (autocommit, usable from any thread). Read-only: `mode=ro`, or `immutable=1` where its
    WAL files cannot be made (a read-only folder). StoreError when it cannot be opened, DamagedProjectError when
    it is not a database."""
    try:
        if not read_only:
            return sqlite3.connect(db_path, timeout=10, isolation_level=None, check_same_thread=False)
        uri = db_path.as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=10, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA user_version").fetchone()
            return conn
        except sqlite3.OperationalError:  # WAL files cannot be created in a read-only folder
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot open the project database {db_path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise DamagedProjectError(db_path, str(exc)) from exc


def connect_writable(db_path: Path) -> sqlite3.Connection:
    """A writable connection to an existing database, in WAL mode with fsync on commit. Raises sqlite3.Error."""
    conn = sqlite3.connect(db_path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def migrate(conn: sqlite3.Connection, version: int | None = None) -> None:
    """Bring a writable database of format `version` (None: read it) to SCHEMA_VERSION, one transaction per step.
    Raises sqlite3.Error."""
    if version is None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    for old in range(version, SCHEMA_VERSION):
        conn.executescript(f"BEGIN; {MIGRATIONS[old]} PRAGMA user_version = {old + 1}; COMMIT;")


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
        is not None


class EmptyProjectError(StoreError):
    """A read-only open found a database with no tables (new, or emptied by a crash): nothing can be read from it."""


def check_or_create_schema(conn: sqlite3.Connection, db_path: Path, *, read_only: bool) -> bool:
    """Check the database's format and integrity; create the tables in an empty one (writable only). True when
    the tables were created. StoreError for a newer format or an empty read-only database, DamagedProjectError
    when it is damaged."""
    created = False
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise DamagedProjectError(db_path, str(exc)) from exc
    if version > SCHEMA_VERSION:
        raise StoreError(f"{db_path} was made by a newer FloodLabel (project format {version}, this "
                         f"version reads up to {SCHEMA_VERSION}); update FloodLabel to open it")
    if version == 0 and tables:
        raise DamagedProjectError(db_path)
    try:
        if version == 0:
            if read_only:
                raise EmptyProjectError(f"{db_path} is an empty project database and the project is read-only")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            created = True
        elif not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            migrate(conn, version)
        conn.execute("PRAGMA synchronous = FULL")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DamagedProjectError(db_path, str(exc)) from exc
    if check != "ok":
        raise DamagedProjectError(db_path, f"integrity check: {check}")
    if not {"images", "meta"} <= {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}:
        raise DamagedProjectError(db_path)
    return created
