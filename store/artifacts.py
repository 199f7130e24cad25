"""Call artifacts: each call's transcript (JSON) and recording (WAV) in object storage.

Sales ops open a call from the dialer's outcome (`transcriptUrl`), so every call's
artifacts must be where that URL points within seconds of the hang-up, in a directory by
default or in S3 (any S3 endpoint: AWS, MinIO, moto in the tests), always with
server-side encryption: recordings of phone calls are personal data.

Nothing is lost (DESIGN principle 5): for S3 the bytes are first written to a local
spool directory, uploaded with bounded retries and exponential backoff, and removed from
the spool only once the endpoint has acknowledged them. When the bucket is missing or
the endpoint is down the error is logged, counted and the spooled copy stays, to be sent
again by `retry_spool` (at start-up, or by ops on a timer).

Keys are `<prefix><call sid>/transcript.json` and `<prefix><call sid>/recording.wav`, so
the URL is known the moment a call ends, before anything is uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

log = logging.getLogger("leadline.artifacts")

_SAFE = re.compile(r"[^A-Za-z0-9_-]")
TRANSCRIPT = "transcript.json"
RECORDING = "recording.wav"
CONTENT_TYPES = {TRANSCRIPT: "application/json", RECORDING: "audio/wav"}
# Status codes after which a retry cannot help (the request itself is wrong).
_PERMANENT = {400, 401, 403, 404, 405, 409, 411, 412, 413}
# Objects larger than this are refused rather than read into memory (a 2 h stereo call
# at 8 kHz PCM16 is 230 MB; longer calls are cut by the media server first).
MAX_OBJECT_BYTES = 512 * 1024 * 1024


class ArtifactSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The `[artifacts]` section."""

    kind: Literal["directory", "s3"] = "directory"
    directory: str = "./data/artifacts"
    bucket: str = ""
    prefix: str = "calls/"
    region: str = "us-east-1"
    # Empty: AWS's own endpoint for the region; set for MinIO, moto, a VPC endpoint.
    endpoint_url: str = ""
    # Empty: the usual AWS credential chain (env, profile, instance role).
    access_key_id: str = ""
    secret_access_key: str = ""
    sse: Literal["AES256", "aws:kms"] = "AES256"
    # With sse = "aws:kms": the key; empty means the bucket's default aws/s3 key.
    kms_key_id: str = ""
    # Upload attempts per object, backoff doubling from backoff_s, each attempt bounded.
    attempts: int = 4
    backoff_s: float = 0.5
    attempt_timeout_s: float = 10.0
    # Where S3 uploads wait until acknowledged (and stay when they cannot be sent).
    spool_directory: str = "./data/artifacts-spool"
    # After a call ends: how long to wait for its last turns and the recording's header.
    settle_s: float = 1.0

    def __post_init__(self) -> None:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("kind = 's3' needs a bucket")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("kms_key_id needs sse = 'aws:kms'")
        if self.attempts < 1 or self.backoff_s < 0 or self.attempt_timeout_s <= 0:
            raise ValueError("attempts must be >= 1, backoff_s >= 0, attempt_timeout_s > 0")
        if self.prefix.startswith("/"):
            raise ValueError("prefix must not start with '/'")


class ArtifactError(RuntimeError):
    """An artifact that could not be stored where configured (a local copy is kept)."""

    def __init__(self, message: str, *, permanent: bool, spooled: str | None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.spooled = spooled


class TranscriptTurn(msgspec.Struct, frozen=True, rename="camel"):
    role: str
    text: str
    at: datetime
    ended_at: datetime | None = None


class CallTranscript(msgspec.Struct, frozen=True, rename="camel"):
    """What transcript.json holds (camelCase: the sales tool reads it beside the outcome)."""

    call_sid: str
    turns: list[TranscriptTurn]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    recording_url: str | None = None


class ArtifactUrls(msgspec.Struct, frozen=True):
    transcript: str
    recording: str | None = None


class ObjectStore(Protocol):
    def url(self, key: str) -> str: ...
    async def put(self, key: str, data: bytes, content_type: str) -> str: ...
    async def aclose(self) -> None: ...


def safe_id(call_sid: str) -> str:
    """A call sid as a path/key segment (the recorder names its WAV the same way)."""
    return _SAFE.sub("_", call_sid) or "call"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_if_exists(path: str | os.PathLike[str] | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _spooled(root: Path) -> list[Path]:
    """Files waiting in the spool, oldest first (half-written temp files left out)."""
    if not root.is_dir():
        return []
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    return sorted(files, key=lambda p: p.stat().st_mtime)


class DirectoryStore:
    """Objects as files under `root` (written whole or not at all: tmp file + rename)."""

    def __init__(self, root: str) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if self.root not in target.parents:
            raise ValueError(f"key {key!r} escapes the artifact directory")
        return target

    def url(self, key: str) -> str:
        return self.path(key).as_uri()

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        target = self.path(key)
        await asyncio.to_thread(_atomic_write, target, data)
        return target.as_uri()

    async def aclose(self) -> None:
        return None


class S3Store:
    """Objects in an S3 bucket through aiobotocore, server-side encrypted, retried."""

    def __init__(self, settings: ArtifactSettings, *, stats: Counter[str] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else Counter()
        self._sleep = sleep
        self._client: Any = None
        self._exit: Any = None
        self._lock = asyncio.Lock()

    def url(self, key: str) -> str:
        return f"s3://{self.settings.bucket}/{key}"

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                s = self.settings
                config = AioConfig(
                    retries={"max_attempts": 1, "mode": "standard"},  # we retry, visibly
                    connect_timeout=min(5.0, s.attempt_timeout_s),
                    read_timeout=s.attempt_timeout_s,
                    s3={"addressing_style": "path"} if s.endpoint_url else None,
                )
                ctx = get_session().create_client(
                    "s3", region_name=s.region, endpoint_url=s.endpoint_url or None,
                    aws_access_key_id=s.access_key_id or None,
                    aws_secret_access_key=s.secret_access_key or None, config=config)
                self._client = await ctx.__aenter__()
                self._exit = ctx.__aexit__
            return self._client

    def _sse_args(self) -> dict[str, str]:
        s = self.settings
        args = {"ServerSideEncryption": s.sse}
        if s.sse == "aws:kms" and s.kms_key_id:
            args["SSEKMSKeyId"] = s.kms_key_id
        return args

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Upload with retries; raises `ArtifactError` (permanent or not) when it gives up."""
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        delay = s.backoff_s
        error = "no attempt made"
        for attempt in range(1, s.attempts + 1):
            try:
                client = await self._get_client()
                async with asyncio.timeout(s.attempt_timeout_s):
                    await client.put_object(Bucket=s.bucket, Key=key, Body=data,
                                            ContentType=content_type, **self._sse_args())
                self.stats["uploaded"] += 1
                self.stats["uploaded_bytes"] += len(data)
                return self.url(key)
            except ClientError as exc:
                err = exc.response.get("Error", {})
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                error = f"{err.get('Code', 'error')}: {err.get('Message', '')} (HTTP {status})"
                if status in _PERMANENT or err.get("Code") in ("NoSuchBucket", "AccessDenied"):
                    self.stats["failed_permanent"] += 1
                    raise ArtifactError(f"s3://{s.bucket}/{key}: {error}", permanent=True,
                                        spooled=None) from exc
            except (BotoCoreError, OSError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.stats["attempt_failed"] += 1
            log.info("artifact upload attempt failed", extra={
                "key": key, "attempt": attempt, "error": error[:300]})
            if attempt < s.attempts:
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)
        self.stats["failed_transient"] += 1
        raise ArtifactError(f"s3://{s.bucket}/{key}: gave up after {s.attempts} attempts: "
                            f"{error}", permanent=False, spooled=None)

    async def aclose(self) -> None:
        if self._exit is not None:
            exit_, self._exit, self._client = self._exit, None, None
            await exit_(None, None, None)


def make_store(settings: ArtifactSettings, stats: Counter[str] | None = None) -> ObjectStore:
    if settings.kind == "s3":
        return S3Store(settings, stats=stats)
    return DirectoryStore(settings.directory)


class CallArtifacts:
    """Writes each call's artifacts and hands out their URLs (one per process).

    `transcript_url(call_sid)` is the dialer's hook: it returns the URL at once and
    schedules the write, which reads the call's turns from the database (after
    `settle_s`, so the write-behind has committed the last turns) and the recorder's
    WAV from `recording_dir`.
    """

    def __init__(self, settings: Callable[[], ArtifactSettings], *,
                 db: Callable[[], Any] | None = None,
                 recording_dir: Callable[[], str | None] = lambda: None,
                 store: ObjectStore | None = None) -> None:
        self._settings = settings
        self._db = db
        self._recording_dir = recording_dir
        self.stats: Counter[str] = Counter()
        self._store = store
        self._store_for: ArtifactSettings | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def store(self) -> ObjectStore:
        """The store for the current settings (a reloaded config gets a new one)."""
        s = self._settings()
        if self._store is None or (self._store_for is not None and self._store_for != s):
            old = self._store
            self._store = make_store(s, self.stats)
            self._store_for = s
            if old is not None:
                self._spawn(old.aclose())
        return self._store

    def key(self, call_sid: str, name: str) -> str:
        return f"{self._settings().prefix}{safe_id(call_sid)}/{name}"

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            self.stats["errors"] += 1
            log.error("call artifacts failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for scheduled writes (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- writing --------------------------------------------------------------------

    async def _put(self, key: str, data: bytes) -> str:
        """One object, spooled first for S3 so a failure loses nothing."""
        if len(data) > MAX_OBJECT_BYTES:
            self.stats["refused_too_large"] += 1
            raise ArtifactError(f"{key}: {len(data)} bytes is over {MAX_OBJECT_BYTES}",
                                permanent=True, spooled=None)
        store = self.store()
        content_type = CONTENT_TYPES.get(key.rsplit("/", 1)[-1], "application/octet-stream")
        if isinstance(store, DirectoryStore):
            return await store.put(key, data, content_type)
        spool = Path(self._settings().spool_directory, key)
        await asyncio.to_thread(_atomic_write, spool, data)
        try:
            url = await store.put(key, data, content_type)
        except ArtifactError as exc:
            self.stats["spooled"] += 1
            log.error("artifact kept in the local spool", extra={
                "key": key, "spool": str(spool), "error": str(exc)[:300]})
            raise ArtifactError(str(exc), permanent=exc.permanent, spooled=str(spool)) from exc
        await asyncio.to_thread(spool.unlink, True)
        return url

    async def save(self, call_sid: str, turns: Sequence[TranscriptTurn], *,
                   recording: str | os.PathLike[str] | None = None,
                   started_at: datetime | None = None,
                   ended_at: datetime | None = None) -> ArtifactUrls:
        """Write the recording (if any) then the transcript that points at it."""
        recording_url = None
        data = await asyncio.to_thread(_read_if_exists, recording)
        if data is not None:
            recording_url = await self._put(self.key(call_sid, RECORDING), data)
        doc = CallTranscript(call_sid=call_sid, turns=list(turns), started_at=started_at,
                             ended_at=ended_at, recording_url=recording_url)
        url = await self._put(self.key(call_sid, TRANSCRIPT), msgspec.json.encode(doc))
        self.stats["calls_saved"] += 1
        return ArtifactUrls(transcript=url, recording=recording_url)

    def transcript_url(self, call_sid: str) -> str:
        """The transcript's URL now; its write scheduled (the dialer's `transcript_url`)."""
        url = self.store().url(self.key(call_sid, TRANSCRIPT))
        self._spawn(self._collect_and_save(call_sid))
        return url

    async def _collect_and_save(self, call_sid: str) -> ArtifactUrls | None:
        await asyncio.sleep(self._settings().settle_s)
        turns: list[TranscriptTurn] = []
        started = ended = None
        detail = None
        db = self._db() if self._db is not None else None
        if db is not None:
            try:
                detail = await db.get_call(call_sid)
            except Exception as exc:  # the database is down: keep the recording at least
                self.stats["transcript_unreadable"] += 1
                log.error("call turns unreadable for its artifacts", extra={
                    "call_sid": call_sid, "error": repr(exc)[:300]})
            if detail is not None:
                turns = [TranscriptTurn(role=t.role, text=t.text, at=t.started_at,
                                        ended_at=t.ended_at) for t in detail.turns]
                started = detail.call.started_at
                ended = detail.call.ended_at
        directory = self._recording_dir()
        wav = os.path.join(directory, f"{safe_id(call_sid)}.wav") if directory else None
        if detail is not None and detail.call.recording_path:
            wav = detail.call.recording_path
        try:
            return await self.save(call_sid, turns, recording=wav, started_at=started,
                                   ended_at=ended)
        except ArtifactError as exc:
            log.error("call artifacts not stored", extra={
                "call_sid": call_sid, "error": str(exc)[:300], "spooled": exc.spooled})
            return None

    async def retry_spool(self) -> tuple[int, int]:
        """Send what the spool holds (oldest first); (sent, still failing)."""
        s = self._settings()
        if s.kind != "s3":
            return 0, 0
        root = Path(s.spool_directory)
        files = await asyncio.to_thread(_spooled, root)
        store = self.store()
        sent = failed = 0
        for path in files:
            key = path.relative_to(root).as_posix()
            data = await asyncio.to_thread(path.read_bytes)
            try:
                await store.put(key, data, CONTENT_TYPES.get(path.name,
                                                             "application/octet-stream"))
            except ArtifactError:
                failed += 1
                continue
            await asyncio.to_thread(path.unlink, True)
            sent += 1
        self.stats["spool_resent"] += sent
        return sent, failed

    async def aclose(self) -> None:
        await self.drain()
        if self._store is not None:
            await self._store.aclose()
