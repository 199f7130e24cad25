"""What differs between SQLite and PostgreSQL at the level of one SQL statement.

The repository writes every statement once, in PostgreSQL's spelling with `$n`
parameters, and asks the dialect for the few pieces that are spelled
differently (greatest/least, JSON casts, row locks, booleans, list
parameters) and for the encoding of values that the drivers store
differently (times as fixed-width text on SQLite, timestamptz on PostgreSQL).
Anything bigger than a phrase — a different statement shape, a COPY, a
backup — is a backend method, not a dialect entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgspec

from store.models import utc

# Fixed width, so text order is time order and `max(a, b)` works on stored times.
SQLITE_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_DOLLAR_PARAM = re.compile(r"\$(\d+)")


def _sqlite_ts(at: datetime) -> str:
    return utc(at).strftime(SQLITE_TS_FORMAT)


def _sqlite_dt(text: str) -> datetime:
    # fromisoformat reads the trailing "Z" as UTC; ~30x faster than strptime.
    return datetime.fromisoformat(text)


def _identity(value: Any) -> Any:
    return value


def _json_list(values: Sequence[Any]) -> str:
    return msgspec.json.encode(list(values)).decode()


@lru_cache(maxsize=1024)
def _numbered_qmarks(sql: str) -> str:
    """`$1` → `?1`: SQLite's numbered parameters mean the same, so a statement may use one
    value twice. Our statements hold no `$` inside string literals."""
    return _DOLLAR_PARAM.sub(r"?\1", sql)


def _same_sql(sql: str) -> str:
    return sql


@dataclass(frozen=True, slots=True)
class Dialect:
    """One backend's spelling. Instances: SQLITE, POSTGRES."""

    name: str
    # Scalar two-argument max/min (SQLite's `max(a, b)` is scalar with two arguments).
    greatest: str
    least: str
    # Appended to a parameter that carries a JSON document (text on the wire).
    json_cast: str
    # Appended to a SELECT that the transaction goes on to update; SQLite's single
    # writer already serialises, so it needs no row locks.
    for_update: str
    skip_locked: str
    true: str
    false: str
    # DDL: the column types the dialect-neutral migrations name as ${...}.
    ddl_types: dict[str, str]
    # The bookkeeping table, and a query counting tables named $1 (is it there yet?).
    migrations_table: str
    table_probe: str
    # PostgreSQL runs a whole migration script in one call; SQLite statement by statement
    # (its executescript would commit our transaction first).
    whole_scripts: bool
    # Turns a repository statement ($n parameters) into this driver's text.
    sql: Callable[[str], str]
    # Value encoders/decoders at the driver boundary.
    ts: Callable[[datetime], Any]
    dt: Callable[[Any], datetime]

    def ts_opt(self, at: datetime | None) -> Any:
        return None if at is None else self.ts(at)

    def dt_opt(self, value: Any) -> datetime | None:
        return None if value is None else self.dt(value)

    def any_of(self, param: int, sql_type: str) -> str:
        """Membership in a list parameter: an array unnested on PostgreSQL; on SQLite the
        list travels as one JSON array (`list_param`) unpacked by json_each. One parameter
        either way, so a batch lookup is one statement however many keys it has."""
        if self.name == "postgres":
            # Not `= ANY(...)`: right after a bulk load the planner's statistics lag and
            # it seq-scans for ANY, while a semi-join on unnest keeps the index probe.
            return f"IN (SELECT unnest(${param}::{sql_type}[]))"
        return f"IN (SELECT value FROM json_each(${param}))"

    def json_merge(self, stored: str, incoming: str) -> str:
        """Top-level merge of two JSON objects, incoming keys winning (jsonb `||`; SQLite's
        json_patch, RFC 7396, is the same for objects without null values)."""
        if self.name == "postgres":
            return f"{stored} || {incoming}"
        return f"json_patch({stored}, {incoming})"

    def list_param(self, values: Sequence[Any]) -> Any:
        return list(values) if self.name == "postgres" else _json_list(values)

    @staticmethod
    def json_encode(value: Any) -> str:
        return msgspec.json.encode(value).decode()

    @staticmethod
    def json_decode(text: str | bytes) -> Any:
        return msgspec.json.decode(text)


SQLITE = Dialect(
    name="sqlite",
    greatest="max",
    least="min",
    json_cast="",
    for_update="",
    skip_locked="",
    true="1",
    false="0",
    ddl_types={
        "id": "INTEGER PRIMARY KEY",
        "bigint": "INTEGER",
        "ts": "TEXT",
        "json": "TEXT",
        "json_object": "'{}'",
        "json_array": "'[]'",
        "bool": "INTEGER",
        "false": "0",
        "real": "REAL",
    },
    migrations_table=(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    ),
    table_probe="SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
    whole_scripts=False,
    sql=_numbered_qmarks,
    ts=_sqlite_ts,
    dt=_sqlite_dt,
)

POSTGRES = Dialect(
    name="postgres",
    greatest="greatest",
    least="least",
    json_cast="::jsonb",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    true="TRUE",
    false="FALSE",
    ddl_types={
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "bigint": "BIGINT",
        "ts": "TIMESTAMPTZ",
        "json": "JSONB",
        "json_object": "'{}'::jsonb",
        "json_array": "'[]'::jsonb",
        "bool": "BOOLEAN",
        "false": "FALSE",
        "real": "DOUBLE PRECISION",
    },
    migrations_table=(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ),
    table_probe="SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)",
    whole_scripts=True,
    sql=_same_sql,
    ts=utc,
    dt=_identity,
)

DIALECTS = {d.name: d for d in (SQLITE, POSTGRES)}
