"""Versioned schema: `NNNN_name.<dialect>.sql` files in this package, applied in order.

Each dialect ("sqlite", "postgres") has its own file per version because types
differ (TEXT timestamps vs timestamptz, INTEGER vs bigint identity); the
version numbers and table shapes stay in step so both backends pass one
conformance suite. Applied versions are rows of `schema_migrations`.
Never edit a released file: add the next number.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from typing import NamedTuple

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sqlite|postgres)\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """All migrations of `dialect` in version order; gaps or duplicates are a packaging bug."""
    found: list[Migration] = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if match and match.group(3) == dialect:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort()
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return found


def split_sqlite(script: str) -> list[str]:
    """Statements of a SQLite script, so a migration runs inside our own transaction
    (`executescript` would commit first). Uses SQLite's own statement-end test, which
    knows about strings, comments and trigger bodies."""
    statements: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            text = buf.strip()
            if _has_code(text):
                statements.append(text)
            buf = ""
    if _has_code(buf.rstrip(";")):
        raise ValueError(f"incomplete SQL statement at end of migration: {buf.strip()[:80]!r}")
    return statements


def _has_code(text: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return any(line and line != ";" for line in lines)
