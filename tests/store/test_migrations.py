"""Migration files: numbering, dialect parity, and the SQLite statement splitter."""

from __future__ import annotations

import re
import sqlite3
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest

from store import migrations
from store.dialect import DIALECTS, POSTGRES, SQLITE


def test_both_dialects_have_the_same_versions() -> None:
    sqlite = migrations.load("sqlite")
    postgres = migrations.load("postgres")
    versions = [m.version for m in sqlite]
    assert versions == [m.version for m in postgres] == list(range(1, len(sqlite) + 1))
    assert len(versions) >= 2
    assert [m.name for m in sqlite] == [m.name for m in postgres]


@pytest.mark.parametrize(
    ("version", "tables"),
    [
        (1, {"callers", "calls", "turns", "audit_events"}),
        (2, {"leads", "messages", "consent_events", "dnc", "outbox"}),
    ],
)
def test_both_dialects_create_the_same_tables_and_columns(version: int, tables: set[str]) -> None:
    def shape(sql: str) -> dict[str, list[str]]:
        tables = {}
        for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", sql, re.S):
            cols = [line.split()[0] for line in body.strip().splitlines()
                    if line.strip() and not line.strip().startswith(("UNIQUE", "--"))]
            tables[name] = cols
        return tables

    sqlite = shape(migrations.load("sqlite")[version - 1].sql)
    postgres = shape(migrations.load("postgres")[version - 1].sql)
    assert sqlite == postgres
    assert set(sqlite) == tables


def test_split_sqlite_respects_strings_comments_and_triggers() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT 'semi;colon');
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        UPDATE a SET x = 'y;z' WHERE rowid = new.rowid;
        SELECT 1;
    END;
    INSERT INTO a VALUES ('it''s; fine')
    """
    statements = migrations.split_sqlite(script)
    assert len(statements) == 3
    conn = sqlite3.connect(":memory:")
    for statement in statements:
        conn.execute(statement)
    assert conn.execute("SELECT x FROM a").fetchall() == [("y;z",)]


def test_split_sqlite_refuses_a_truncated_script() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        migrations.split_sqlite("CREATE TABLE a (x TEXT DEFAULT 'unterminated);")


def test_every_shipped_sqlite_migration_splits_into_runnable_statements() -> None:
    conn = sqlite3.connect(":memory:")
    for migration in migrations.load("sqlite"):
        for statement in migrations.split_sqlite(migration.sql):
            conn.execute(statement)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"callers", "calls", "turns", "audit_events"} <= names


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_dialect_neutral_migrations_render_every_placeholder(dialect: str) -> None:
    for migration in migrations.load(dialect)[1:]:
        code = "\n".join(line.split("--", 1)[0] for line in migration.sql.splitlines())
        assert "$" not in code
        assert ("TIMESTAMPTZ" in migration.sql) == (dialect == "postgres")


def test_an_unknown_type_placeholder_is_a_packaging_error() -> None:
    with pytest.raises(KeyError):
        string.Template("CREATE TABLE a (x ${uuid})").substitute(DIALECTS["sqlite"].ddl_types)


def test_sqlite_parameters_keep_their_numbers() -> None:
    assert SQLITE.sql("SELECT $2, $1, $2, $10") == "SELECT ?2, ?1, ?2, ?10"
    assert POSTGRES.sql("SELECT $1") == "SELECT $1"
    conn = sqlite3.connect(":memory:")
    assert conn.execute(SQLITE.sql("SELECT $2 || $1 || $2"), ("a", "b")).fetchone() == ("bab",)


def test_sqlite_times_are_fixed_width_so_text_order_is_time_order() -> None:
    early = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    late = early + timedelta(microseconds=1)
    encoded = [SQLITE.ts(early), SQLITE.ts(late), SQLITE.ts(late.astimezone(timezone(
        timedelta(hours=-5))))]
    assert encoded[0] < encoded[1] == encoded[2] and len(set(map(len, encoded))) == 1
    assert SQLITE.dt(encoded[1]) == late
    with pytest.raises(ValueError, match="naive"):
        SQLITE.ts(datetime(2025, 1, 1))
