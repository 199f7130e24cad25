"""Versioned schema: `NNNN_name[.<dialect>].sql` files in this package, applied in order.

Version 1 has one file per dialect ("sqlite", "postgres"), written out by hand.
Later versions are one dialect-neutral file (`NNNN_name.sql`) whose column types
are `${...}` placeholders that store/dialect.py spells per backend (TEXT
timestamps vs timestamptz, INTEGER vs bigint identity), so the table shapes
cannot drift apart. Either way the version numbers stay in step and both
backends pass one conformance suite. Applied versions are rows of
`schema_migrations`. Never edit a released file: add the next number.
"""

from __future__ import annotations

import re
import sqlite3
import string
from importlib import resources
from typing import NamedTuple

from store.dialect import DIALECTS

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(sqlite|postgres))?\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """All migrations of `dialect` in version order; gaps or duplicates are a packaging bug."""
    types = DIALECTS[dialect].ddl_types
    found: list[Migration] = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if not match or match.group(3) not in (dialect, None):
            continue
        sql = entry.read_text("utf-8")
        if match.group(3) is None:
            # substitute, not safe_substitute: an unknown ${type} is a bug to see at once.
            sql = string.Template(sql).substitute(types)
        found.append(Migration(int(match.group(1)), match.group(2), sql))
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
