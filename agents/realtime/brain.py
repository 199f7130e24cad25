"""`RealtimeBrain`: the asyncio shell that moves bytes between the conversation core and OpenAI.

All protocol decisions live in `protocol.RealtimeConversation`; this module only
opens sockets through the official SDK's GA client (`client.realtime.connect`),
pumps messages, runs tool tasks and handles the socket's life:

- connect bounded by `connect_timeout_s`; a failed start raises
  `RealtimeUnavailable` (the call then starts on the keyless brain) and counts
  against the process-wide circuit breaker;
- a socket lost mid-call is reconnected with backoff and the conversation is
  restored; if that does not succeed within `restore_within_s` (2 s) the call
  is told `brain_failed` and switches to the keyless brain;
- sessions are rotated before the service's 60-minute limit: a new socket is
  opened beside the old one and swapped in at an idle moment (no response in
  flight), so the caller hears nothing of it.

Per call there is one connection task (it reads) with a writer child that
wakes when the core has something to send, and a sleeping rotation child;
`push_audio` is a plain method call that appends to a buffer and sets an
event, never a task or a timer per frame. The SDK's `recv_bytes` is used so
server events are decoded once, by msgspec, not into pydantic models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from openai import AsyncOpenAI, OpenAIError

from agents.brain import Brain, BrainOutput, CallContext
from agents.business.plans import gates
from agents.business.prompt import for_business
from agents.realtime.breaker import CircuitBreaker, default_breaker
from agents.realtime.protocol import RealtimeConversation, RealtimeUsage, SessionConfig
from agents.realtime.stats import STATS, RealtimeStats, bump
from agents.sales.render import for_sales
from agents.settings import OpenAISettings
from agents.tools import ToolContext, ToolRegistry, ToolRunner, build_registry
from agents.tools.builtin import set_priority

log = logging.getLogger("leadline.agents.realtime")

# Largest server message accepted (an audio delta is a few KiB).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_FAKE_KEY = "sk-leadline-dev"
_clients: dict[tuple[str, str], AsyncOpenAI] = {}


class RealtimeUnavailable(RuntimeError):
    """The Realtime service could not be reached at call start."""


def openai_client(settings: OpenAISettings) -> AsyncOpenAI:
    """One SDK client per (key, base URL) for the whole process."""
    key = (settings.api_key, settings.base_url)
    client = _clients.get(key)
    if client is None:
        kwargs: dict[str, Any] = {"max_retries": 0}
        base = settings.base_url.rstrip("/")
        if base.startswith(("ws://", "wss://")):
            kwargs["websocket_base_url"] = base
        elif base:
            kwargs["base_url"] = base
        # A base URL without a key is a dev fake (LEADLINE_OPENAI_BASE_URL); the SDK
        # insists on some key.
        api_key = settings.api_key or (_FAKE_KEY if base else None)
        client = _clients[key] = AsyncOpenAI(api_key=api_key, **kwargs)
    return client


def _closed_errors() -> tuple[type[BaseException], ...]:
    from websockets.exceptions import ConnectionClosed

    return (ConnectionClosed, OpenAIError, OSError)


class _Dropped(Exception):
    pass


def _fast_send(conn: Any) -> Callable[[str], Awaitable[None]]:
    """The socket's own `send`, skipping the SDK's reconnect send queue.

    The SDK routes `send_raw` through a queue that only matters when the SDK
    reconnects by itself; we never enable that (no `on_reconnecting`), so the
    queue is always empty and the detour costs ~15 µs per audio frame (measured:
    23 µs vs 8.6 µs). Falls back to `send_raw` if the SDK's internals change.
    """
    from websockets.asyncio.connection import Connection

    inner = getattr(conn, "_connection", None)
    if isinstance(inner, Connection):
        return inner.send  # type: ignore[return-value]
    return conn.send_raw  # type: ignore[no-any-return]


class RealtimeBrain(Brain):
    """The OpenAI Realtime speech-to-speech brain of one call."""

    kind = "openai"

    def __init__(
        self,
        settings: OpenAISettings,
        *,
        registry: ToolRegistry | None = None,
        breaker: CircuitBreaker = default_breaker,
        clock: Callable[[], float] = time.monotonic,
        rotate_after_s: float | None = None,
        client: AsyncOpenAI | None = None,
        stats: RealtimeStats = STATS,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.registry = (
            registry
            if registry is not None
            else build_registry(settings.tools, transfer=bool(settings.transfer_number))
        )
        # Its thresholds are set by `agents.selection` (start and reload), not per call.
        self.breaker = breaker
        self._clock = clock
        self._rotate_after_s = (
            rotate_after_s if rotate_after_s is not None else settings.session_rotate_s
        )
        self._client = client
        # Called with (item_id, monotonic time) when the first audio of a response
        # arrives, so the call can measure first delta → frame sent (our share).
        self.on_first_audio: Callable[[str, float], None] | None = None
        self.conversation: RealtimeConversation | None = None
        self._output: BrainOutput | None = None
        self._runner: ToolRunner | None = None
        self._conn: Any = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failed = False
        self._call_sid = ""

    # --- what the call reads -----------------------------------------------------

    @property
    def usage(self) -> RealtimeUsage:
        return self.conversation.usage if self.conversation is not None else RealtimeUsage()

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.conversation.counts) if self.conversation is not None else {}

    @property
    def last_first_audio_at(self) -> float | None:
        return self.conversation.last_first_audio_at if self.conversation is not None else None

    # --- Brain ------------------------------------------------------------------------

    async def start(self, context: CallContext, output: BrainOutput) -> None:
        if self.conversation is not None:
            raise RuntimeError("brain already started")
        self._call_sid = context.call_sid
        self._output = output
        if context.flow is not None and "set_priority" not in self.registry \
                and gates(context.flow.business.plan).analysis:
            # Call analysis is a plan feature: the model may raise the priority.
            self.registry = ToolRegistry([*self.registry, set_priority])
        if context.sales is not None and "book_meeting" not in self.registry:
            # A sales script ends in scheduling: its calls can always book (the calendar
            # is [booking]'s; the built-in one by default).
            from agents.booking.tools import book_meeting, check_availability

            extra = [t for t in (check_availability, book_meeting) if t.name not in self.registry]
            self.registry = ToolRegistry([*self.registry, *extra])
        config = SessionConfig.for_call(self.settings, context, self.registry.definitions())
        if context.business is not None:
            config = for_business(config, context.business, context.memory)
        if context.sales is not None:  # a sales call: the script, its opening line
            config = for_sales(config, context.sales)
        conversation = RealtimeConversation(
            config, output, clock=self._clock, call_sid=context.call_sid,
            on_first_audio=self._first_audio, stats=self.stats,
        )
        self.conversation = conversation
        self._runner = ToolRunner(
            self.registry,
            ToolContext(
                context, output, after_reply=conversation.after_reply,
                transfer_number=self.settings.transfer_number,
            ),
            self._tool_report,
            default_timeout_s=self.settings.tool_timeout_s,
            call_sid=context.call_sid,
        )
        try:
            conn = await self._connect(self.settings.connect_timeout_s)
        except Exception as exc:
            self.breaker.record_failure()
            conversation.close()
            raise RealtimeUnavailable(f"cannot reach the Realtime service: {exc!r}") from exc
        self.breaker.record_success()
        self._conn = conn
        conversation.connection_made()
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(
            self._run(conn), name=f"realtime:{context.call_sid}"
        )

    def push_audio(self, ulaw: bytes) -> None:
        conversation = self.conversation
        if conversation is not None and not self._closing:
            conversation.push_audio(ulaw)
            self._wake.set()

    def commit(self) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.commit()
            self._wake.set()

    def cancel(self) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.cancel()
            if self._runner is not None:
                self._runner.cancel_interruptible()
            self._wake.set()

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.truncate(item_id, audio_end_ms)
            self._wake.set()

    def dtmf(self, digit: str) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.dtmf(digit)
            self._wake.set()

    def tool_result(self, call_id: str, output: str) -> None:
        self._tool_report(call_id, output, True)

    def safety_first(self, line: str) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.instruct_next(
                "Life may be at risk. Before anything else, and before asking for any "
                f"details, say this to the caller, word for word: {line}")
            self._wake.set()

    def coach_note(self, text: str) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.system_note(text)
            self._wake.set()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._runner is not None:
            await self._runner.aclose()
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._close_conn(conn)
        if self.conversation is not None:
            self.conversation.close()
        self._wake.set()

    # --- internals ----------------------------------------------------------------------

    def _first_audio(self, item_id: str, at: float) -> None:
        hook = self.on_first_audio
        if hook is not None:
            try:
                hook(item_id, at)
            except Exception:
                log.exception("on_first_audio hook failed", extra={"call_sid": self._call_sid})

    def _tool_report(self, call_id: str, output: str, respond: bool) -> None:
        if self.conversation is not None and not self._closing:
            self.conversation.tool_output(call_id, output, respond)
            self._wake.set()

    async def _connect(self, limit_s: float) -> Any:
        client = self._client or openai_client(self.settings)
        started = time.monotonic()
        try:
            async with asyncio.timeout(limit_s):
                conn = await client.realtime.connect(
                    model=self.settings.model,
                    websocket_connection_options={
                        "max_size": MAX_MESSAGE_BYTES,
                        "compression": None,
                    },
                ).enter()
        except TimeoutError:
            bump(self.stats.connects, "timeout")
            log.warning(
                "realtime connect timed out after %.1f s", limit_s,
                extra={"call_sid": self._call_sid},
            )
            raise
        except Exception as exc:
            bump(self.stats.connects, "error")
            log.warning(
                "realtime connect failed: %r", exc, extra={"call_sid": self._call_sid}
            )
            raise
        bump(self.stats.connects, "ok")
        self.stats.connect_seconds.add(time.monotonic() - started)
        return conn

    async def _run(self, conn: Any) -> None:
        """The connection task: read until the call ends, reconnecting or rotating as needed."""
        conversation = self.conversation
        assert conversation is not None
        while not self._closing:
            try:
                await self._pump(conn)
            except _Dropped as exc:
                if self._closing:
                    return
                self.stats.disconnects += 1
                log.warning(
                    "realtime socket lost: %s; restoring", exc.__cause__ or exc,
                    extra={"call_sid": self._call_sid},
                )
                conversation.connection_lost()
                restored = await self._restore()
                if restored is None:
                    self._fail("the Realtime connection was lost and could not be restored")
                    return
                conn = restored
                continue
            except Exception:
                # A bug (ours or the call's output raising): never leave the caller in
                # silence; the call switches to the keyless brain.
                log.exception("realtime brain crashed", extra={"call_sid": self._call_sid})
                self._fail("internal error in the Realtime brain")
                return
            # _pump returned: the connection was replaced by a rotation.
            conn = self._conn

    async def _pump(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._writer(conn), name=f"realtime-writer:{self._call_sid}")
        rotator = loop.create_task(self._rotator(conn), name=f"realtime-rotate:{self._call_sid}")
        try:
            await self._reader(conn)
        finally:
            writer.cancel()
            rotator.cancel()
            await asyncio.gather(writer, rotator, return_exceptions=True)

    async def _reader(self, conn: Any) -> None:
        conversation = self.conversation
        runner = self._runner
        assert conversation is not None and runner is not None
        closed_errors = _closed_errors()
        wake = self._wake
        while True:
            try:
                data = await conn.recv_bytes()
            except closed_errors as exc:
                if self._conn is not conn or self._closing:
                    return
                raise _Dropped(str(exc)) from exc
            if self._conn is not conn:
                return  # a late message of a connection replaced by rotation
            conversation.receive(data)
            for call in conversation.take_tool_calls():
                runner.start(call)
            if conversation.has_data:
                wake.set()

    async def _writer(self, conn: Any) -> None:
        conversation = self.conversation
        assert conversation is not None
        wake = self._wake
        send = _fast_send(conn)
        closed_errors = _closed_errors()
        while True:
            await wake.wait()
            if self._conn is not conn or self._closing:
                return  # leave the event set for the writer of the new connection
            wake.clear()
            try:
                for message in conversation.data_to_send():
                    await send(message)
            except closed_errors:
                return  # the reader sees the same closure and restores
            except Exception:
                log.exception("realtime send failed", extra={"call_sid": self._call_sid})
                await self._close_conn(conn)
                return

    async def _rotator(self, conn: Any) -> None:
        """Replace the session before the service's time limit, at an idle moment."""
        conversation = self.conversation
        runner = self._runner
        assert conversation is not None and runner is not None
        delay = self._rotate_after_s - (self._clock() - conversation.connected_at)
        if delay > 0:
            await asyncio.sleep(delay)
        new_conn = None
        while new_conn is None:
            try:
                new_conn = await self._connect(self.settings.connect_timeout_s)
            except Exception:
                await asyncio.sleep(5.0)
        try:
            # Polled at 20 Hz only inside the rotation window, once an hour.
            while not (conversation.is_idle and runner.running == 0):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            await self._close_conn(new_conn)
            raise
        if self._conn is not conn or self._closing:
            await self._close_conn(new_conn)
            return
        # Swap in one synchronous step: nothing else runs between these lines.
        conversation.connection_lost()
        self._conn = new_conn
        conversation.connection_made()
        self._wake.set()
        self.stats.rotations += 1
        log.info("realtime session rotated", extra={"call_sid": self._call_sid})
        # Closing the old socket ends its reader, which returns to `_run`.
        await asyncio.shield(self._close_conn(conn))

    async def _restore(self) -> Any:
        """Reconnect within `restore_within_s`, with backoff; None if that is not possible."""
        conversation = self.conversation
        assert conversation is not None
        deadline = self._clock() + self.settings.restore_within_s
        delay = 0.05
        while not self._closing:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            try:
                conn = await self._connect(min(self.settings.connect_timeout_s, remaining))
            except Exception:
                pause = min(delay, deadline - self._clock())
                if pause > 0:
                    await asyncio.sleep(pause)
                delay = min(delay * 2, 0.5)
                continue
            self._conn = conn
            conversation.connection_made()
            self._wake.set()
            bump(self.stats.restores, "ok")
            log.info("realtime session restored", extra={"call_sid": self._call_sid})
            return conn
        bump(self.stats.restores, "failed")
        self.breaker.record_failure()
        return None

    def _fail(self, error: str) -> None:
        if self._failed or self._closing:
            return
        self._failed = True
        self.stats.brain_failures += 1
        log.error("realtime brain failed: %s", error, extra={"call_sid": self._call_sid})
        if self._output is not None:
            self._output.brain_failed(error)

    async def _close_conn(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await conn.close()
