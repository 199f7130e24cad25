"""Call artifacts in a directory and in a real S3 HTTP endpoint (moto in server mode)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from moto.server import ThreadedMotoServer

from store.artifacts import (
    ArtifactError,
    ArtifactSettings,
    CallArtifacts,
    TranscriptTurn,
)
from store.database import open_database
from store.models import Turn

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
TURNS = [TranscriptTurn("agent", "Hi, this is Ava from Oak Dental.", T0),
         TranscriptTurn("caller", "Oh hi, yes?", T0 + timedelta(seconds=3)),
         TranscriptTurn("agent", "Can I book your cleaning?", T0 + timedelta(seconds=5))]
CREDS = {"access_key_id": "testing", "secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def _client(endpoint: str) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
        aws_secret_access_key="testing")


@pytest.fixture
async def bucket(s3_endpoint: str) -> AsyncIterator[str]:
    name = f"calls-{time.time_ns()}"
    async with await _client(s3_endpoint) as s3:
        await s3.create_bucket(Bucket=name)
    yield name


def s3_settings(endpoint: str, bucket: str, tmp_path: Path, **kw: Any) -> ArtifactSettings:
    return ArtifactSettings(kind="s3", bucket=bucket, endpoint_url=endpoint,
                            spool_directory=str(tmp_path / "spool"),
                            **{"backoff_s": 0.01, **CREDS, **kw})


def read_json(path: str | Path) -> Any:
    return msgspec.json.decode(Path(path).read_bytes())


def wav(tmp_path: Path) -> Path:
    import wave

    path = tmp_path / "CA1.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00\x02\x00" * 8000)
    return path


async def test_directory_default_writes_transcript_and_recording(tmp_path: Path) -> None:
    settings = ArtifactSettings(directory=str(tmp_path / "art"))
    art = CallArtifacts(lambda: settings)
    urls = await art.save("CA1", TURNS, recording=wav(tmp_path), started_at=T0)
    assert urls.transcript.startswith("file://") and urls.transcript.endswith(
        "calls/CA1/transcript.json")
    doc = msgspec.json.decode((tmp_path / "art/calls/CA1/transcript.json").read_bytes())
    assert doc["callSid"] == "CA1" and doc["recordingUrl"] == urls.recording
    assert [(t["role"], t["text"]) for t in doc["turns"]] == [(t.role, t.text) for t in TURNS]
    assert doc["turns"][1]["at"] == "2026-03-02T15:00:03Z"
    assert (tmp_path / "art/calls/CA1/recording.wav").read_bytes() == wav(tmp_path).read_bytes()
    assert not list((tmp_path / "art").rglob(".tmp-*"))


async def test_hostile_call_sid_stays_inside_the_directory(tmp_path: Path) -> None:
    art = CallArtifacts(lambda: ArtifactSettings(directory=str(tmp_path / "art")))
    urls = await art.save("../../etc/passwd", TURNS)
    assert "/art/calls/______etc_passwd/" in urls.transcript
    assert not (tmp_path / "etc").exists()


async def test_s3_upload_with_aes256(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    settings = s3_settings(s3_endpoint, bucket, tmp_path)
    art = CallArtifacts(lambda: settings)
    try:
        urls = await art.save("CA2", TURNS, recording=wav(tmp_path))
    finally:
        await art.aclose()
    assert urls.transcript == f"s3://{bucket}/calls/CA2/transcript.json"
    assert urls.recording == f"s3://{bucket}/calls/CA2/recording.wav"
    async with await _client(s3_endpoint) as s3:
        head = await s3.head_object(Bucket=bucket, Key="calls/CA2/transcript.json")
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentType"] == "application/json"
        obj = await s3.get_object(Bucket=bucket, Key="calls/CA2/transcript.json")
        doc = msgspec.json.decode(await obj["Body"].read())
        rec = await s3.get_object(Bucket=bucket, Key="calls/CA2/recording.wav")
        assert await rec["Body"].read() == wav(tmp_path).read_bytes()
        assert rec["ServerSideEncryption"] == "AES256"
    assert doc["recordingUrl"] == urls.recording and len(doc["turns"]) == 3
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]  # nothing left
    assert art.stats["uploaded"] == 2


async def test_s3_upload_with_kms_key(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    settings = s3_settings(s3_endpoint, bucket, tmp_path, sse="aws:kms",
                           kms_key_id="alias/leadline-calls")
    art = CallArtifacts(lambda: settings)
    try:
        await art.save("CA3", TURNS)
    finally:
        await art.aclose()
    async with await _client(s3_endpoint) as s3:
        head = await s3.head_object(Bucket=bucket, Key="calls/CA3/transcript.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert "leadline-calls" in head["SSEKMSKeyId"]


async def test_missing_bucket_is_a_clear_permanent_error_and_the_copy_is_kept(
        s3_endpoint: str, tmp_path: Path) -> None:
    settings = s3_settings(s3_endpoint, "no-such-bucket-here", tmp_path)
    art = CallArtifacts(lambda: settings)
    try:
        with pytest.raises(ArtifactError, match="NoSuchBucket") as info:
            await art.save("CA4", TURNS)
    finally:
        await art.aclose()
    assert info.value.permanent and info.value.spooled is not None
    assert read_json(info.value.spooled)["callSid"] == "CA4"
    assert art.stats["failed_permanent"] == 1 and art.stats["attempt_failed"] == 0
    assert art.stats["spooled"] == 1


async def test_endpoint_down_is_retried_with_backoff_kept_then_resent(
        tmp_path: Path) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    settings = s3_settings(endpoint, "late-bucket", tmp_path, attempts=3, backoff_s=0.05,
                           attempt_timeout_s=2.0)
    art = CallArtifacts(lambda: settings)
    t0 = time.monotonic()
    with pytest.raises(ArtifactError, match="gave up after 3 attempts") as info:
        await art.save("CA5", TURNS)
    assert time.monotonic() - t0 >= 0.05 + 0.1  # two backoff sleeps, doubling
    assert not info.value.permanent
    assert art.stats["attempt_failed"] == 3 and art.stats["failed_transient"] == 1
    assert read_json(info.value.spooled or "")["callSid"] == "CA5"

    # The endpoint comes back: the spool is sent and emptied, nothing was lost.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        async with await _client(endpoint) as s3:
            await s3.create_bucket(Bucket="late-bucket")
        assert await art.retry_spool() == (1, 0)
        async with await _client(endpoint) as s3:
            obj = await s3.get_object(Bucket="late-bucket", Key="calls/CA5/transcript.json")
            assert msgspec.json.decode(await obj["Body"].read())["callSid"] == "CA5"
            assert obj["ServerSideEncryption"] == "AES256"
        assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    finally:
        await art.aclose()
        server.stop()


async def test_dialer_hook_url_at_once_and_object_within_five_seconds(
        s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    """`transcript_url` is what the dialer's observer calls when a call ends."""
    db = await open_database(f"sqlite:///{tmp_path / 'calls.db'}")
    try:
        await db.start_call("CA6", direction="outbound", from_number="+15550001111",
                            to_number="+15550002222", started_at=T0)
        await db.add_turns([Turn("CA6", i, t.role, t.text, t.at) for i, t in enumerate(TURNS)])
        await db.end_call("CA6", outcome="booked", ended_at=T0 + timedelta(seconds=30))
        rec_dir = tmp_path / "rec"
        rec_dir.mkdir()
        wav(tmp_path).rename(rec_dir / "CA6.wav")
        settings = s3_settings(s3_endpoint, bucket, tmp_path, settle_s=0.2)
        art = CallArtifacts(lambda: settings, db=lambda: db, recording_dir=lambda: str(rec_dir))
        ended = time.monotonic()
        url = art.transcript_url("CA6")
        assert url == f"s3://{bucket}/calls/CA6/transcript.json"
        await art.drain()
        took = time.monotonic() - ended
        async with await _client(s3_endpoint) as s3:
            obj = await s3.get_object(Bucket=bucket, Key="calls/CA6/transcript.json")
            doc = msgspec.json.decode(await obj["Body"].read())
            await s3.head_object(Bucket=bucket, Key="calls/CA6/recording.wav")
        assert took < 5.0
        assert [t["text"] for t in doc["turns"]] == [t.text for t in TURNS]
        assert doc["startedAt"].startswith("2026-03-02T15:00:00")
        assert doc["recordingUrl"] == f"s3://{bucket}/calls/CA6/recording.wav"
        await art.aclose()
    finally:
        await db.close()


async def test_dialer_hook_failure_is_logged_and_counted_not_raised(tmp_path: Path) -> None:
    settings = s3_settings(f"http://127.0.0.1:{free_port()}", "b", tmp_path, attempts=1,
                           settle_s=0.0)
    art = CallArtifacts(lambda: settings)
    art.transcript_url("CA7")
    await art.drain()
    assert art.stats["failed_transient"] == 1 and art.stats["errors"] == 0
    assert (tmp_path / "spool/calls/CA7/transcript.json").exists()
    await art.aclose()


def test_settings_are_checked_and_come_from_config_and_env(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    with pytest.raises(ValueError, match="bucket"):
        ArtifactSettings(kind="s3")
    with pytest.raises(ValueError, match="aws:kms"):
        ArtifactSettings(kms_key_id="k")
    from ops import config

    path = tmp_path / "leadline.toml"
    path.write_text('[artifacts]\nkind = "s3"\nbucket = "b1"\nsse = "aws:kms"\n', "utf-8")
    monkeypatch.setenv("LEADLINE_ARTIFACTS_BUCKET", "from-env")
    monkeypatch.setenv("LEADLINE_ARTIFACTS_SECRET_ACCESS_KEY", "s3cr3t")
    cfg = config.load(str(path))
    assert (cfg.artifacts.kind, cfg.artifacts.bucket, cfg.artifacts.sse) == (
        "s3", "from-env", "aws:kms")
    assert cfg.artifacts.secret_access_key == "s3cr3t"
    path.write_text('[artifacts]\nkind = "s3"\n', "utf-8")
    monkeypatch.delenv("LEADLINE_ARTIFACTS_BUCKET")
    with pytest.raises(config.ConfigError, match="bucket"):
        config.load(str(path))


async def test_a_reloaded_config_gets_a_new_store(tmp_path: Path) -> None:
    current = [ArtifactSettings(directory=str(tmp_path / "a"))]
    art = CallArtifacts(lambda: current[0])
    await art.save("CA8", TURNS)
    current[0] = ArtifactSettings(directory=str(tmp_path / "b"))
    await art.save("CA8", TURNS)
    await asyncio.sleep(0)
    assert (tmp_path / "a/calls/CA8/transcript.json").exists()
    assert (tmp_path / "b/calls/CA8/transcript.json").exists()
    await art.aclose()


class _DownDatabase:
    async def get_call(self, call_sid: str) -> None:
        raise ConnectionRefusedError("database is down")


async def test_database_down_still_stores_the_recording(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    wav(tmp_path).rename(rec_dir / "CA9.wav")
    settings = ArtifactSettings(directory=str(tmp_path / "art"), settle_s=0.0)
    art = CallArtifacts(lambda: settings, db=lambda: _DownDatabase(),
                        recording_dir=lambda: str(rec_dir))
    art.transcript_url("CA9")
    await art.drain()
    assert art.stats["transcript_unreadable"] == 1 and art.stats["errors"] == 0
    doc = read_json(tmp_path / "art/calls/CA9/transcript.json")
    assert doc["turns"] == [] and doc["recordingUrl"].endswith("calls/CA9/recording.wav")
