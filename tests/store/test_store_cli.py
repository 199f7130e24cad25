"""The store ops commands (ops/store_cli.py), in-process against both backends."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.store_cli import register
from store import migrations
from store.database import open_database
from store.models import Turn

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leadline")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


async def seed(url: str) -> None:
    db = await open_database(url)
    try:
        await db.upsert_caller_seen("+14155552671", at=T0)
        await db.set_caller_name("+14155552671", "María O'Neil")
        await db.start_call("CA-old", direction="inbound", from_number="+14155552671",
                            to_number="+15005550006", started_at=T0 - timedelta(days=2))
        await db.start_call("CA-new", direction="inbound", from_number="+14155552671",
                            to_number="+15005550006", started_at=T0, brain="scripted")
        await db.add_turns([
            Turn("CA-new", 0, "agent", "Hello, who is calling?", T0),
            Turn("CA-new", 1, "caller", "My name is María.", T0 + timedelta(seconds=3)),
        ])
        await db.end_call("CA-new", outcome="message", ended_at=T0 + timedelta(seconds=30))
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["nlu", "name", "My name is Maria"], {"name": "Maria"}),
        (["nlu", "name", "I'm fine, thanks"], {"name": None}),
        (["nlu", "name", "--after-question", "uh, Maria Lopez"], {"name": "Maria Lopez"}),
    ],
)
def test_nlu_name(argv: list[str], want: dict[str, str | None], capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(*argv) == 0
    assert json.loads(capsys.readouterr().out) == want


def test_migrate_then_inspect(db_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "migrate", "--database-url", db_url, "--json") == 0
    every = [m.version for m in migrations.load("sqlite")]
    assert json.loads(capsys.readouterr().out)["applied"] == every
    assert run("db", "migrate", "--database-url", db_url) == 0
    assert "nothing to apply" in capsys.readouterr().out
    asyncio.run(seed(db_url))

    assert run("callers", "show", "(415) 555-2671", "--database-url", db_url, "--json") == 0
    caller = json.loads(capsys.readouterr().out)
    assert (caller["name"], caller["call_count"]) == ("María O'Neil", 1)
    assert run("callers", "show", "+14155552671", "--database-url", db_url) == 0
    assert "María O'Neil" in capsys.readouterr().out

    assert run("calls", "list", "--database-url", db_url, "--json") == 0
    assert [c["call_sid"] for c in json.loads(capsys.readouterr().out)] == ["CA-new", "CA-old"]
    assert run("calls", "list", "--since", "2025-03-01", "--database-url", db_url) == 0
    out = capsys.readouterr().out
    assert "CA-new" in out and "CA-old" not in out

    assert run("calls", "show", "CA-new", "--database-url", db_url) == 0
    out = capsys.readouterr().out
    assert "caller: My name is María." in out and "agent: Hello, who is calling?" in out
    assert run("calls", "show", "CA-new", "--database-url", db_url, "--json") == 0
    detail = json.loads(capsys.readouterr().out)
    assert [t["text"] for t in detail["turns"]] == ["Hello, who is calling?",
                                                     "My name is María."]
    assert detail["call"]["outcome"] == "message"


def test_not_found_and_bad_input(db_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "migrate", "--database-url", db_url) == 0
    capsys.readouterr()
    assert run("calls", "show", "CA-nope", "--database-url", db_url) == 1
    assert "no call CA-nope" in capsys.readouterr().err
    assert run("callers", "show", "+14155550100", "--database-url", db_url, "--json") == 1
    assert json.loads(capsys.readouterr().out) is None
    assert run("callers", "show", "anonymous", "--database-url", db_url) == 2
    assert "not a phone number" in capsys.readouterr().err
    assert run("calls", "list", "--since", "last tuesday", "--database-url", db_url) == 2
    assert "--since" in capsys.readouterr().err


def test_backup(db_url: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "migrate", "--database-url", db_url) == 0
    target = tmp_path / "backup.db"
    code = run("db", "backup", str(target), "--database-url", db_url)
    if db_url.startswith("postgresql"):
        assert code == 2 and "pg_dump" in capsys.readouterr().err
    else:
        assert code == 0 and target.exists()


def test_purge_removes_old_recording_files(db_url: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    recording = tmp_path / "old.wav"
    recording.write_bytes(b"RIFF")

    async def setup() -> None:
        db = await open_database(db_url)
        try:
            await db.start_call("CA-old", direction="inbound", from_number="+14155552671",
                                to_number="+15005550006",
                                started_at=datetime.now(UTC) - timedelta(days=40))
            await db.add_turns([Turn("CA-old", 0, "caller", "hi", datetime.now(UTC))])
            await db.end_call("CA-old", recording_path=str(recording))
        finally:
            await db.close()

    asyncio.run(setup())
    assert run("db", "purge", "--days", "30", "--database-url", db_url, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"turns": 1, "recordings": 1}
    assert not recording.exists()
    assert run("db", "purge", "--days", "0", "--database-url", db_url) == 0
    assert "retention is off" in capsys.readouterr().out


def test_missing_sqlite_file_is_not_created_by_a_read(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/absent.db"
    assert run("calls", "list", "--database-url", url) == 2
    assert "db migrate" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()


def test_database_url_from_the_environment(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADLINE_STORE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert run("db", "migrate", "--json") == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "sqlite"
    assert (tmp_path / "env.db").exists()


def test_unreachable_postgres_is_exit_code_2(capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/test"
    assert run("calls", "list", "--database-url", url) == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
