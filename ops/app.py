"""Composition root: builds the shared parts once and wires the aiohttp app.

Shared by every call in the process: one media clock, one VAD engine (batched),
one media engine, the call manager, the metrics registry and the config. The
config can be swapped at run time (hot reload); each layer reads its section
through a callable, so live calls pick up new values without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import msgspec
import psutil
from aiohttp import web

from agents.scripted import prerender
from agents.selection import BrainSelector
from media.clock import MediaClock
from media.engine import MediaEngine
from media.vad import make_engine
from ops import metrics
from ops.booking import Booking, BookingCollector
from ops.business import Businesses
from ops.call_analysis import AnalysisCollector, CallAnalyses
from ops.campaigns import Campaigns
from ops.coach import Coaching
from ops.config import Config
from ops.dialer_metrics import ArtifactsCollector, DialerCollector
from ops.messaging import Messaging
from ops.persistence import Persistence
from ops.reload import ConfigReloader
from ops.sales import SalesCalls
from store.artifacts import CallArtifacts
from telephony.call import Call
from telephony.calls import CallManager, CallObserver
from telephony.dialer.service import DialerService
from telephony.settings import TwilioSettings
from telephony.twilio.http import TwilioRoutes, TwilioStats

log = logging.getLogger("leadline.app")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", "Runtime")  # type: ignore[name-defined]
_json = msgspec.json.Encoder()


class RestTransfers(CallObserver):
    """Hands callers to a human through Twilio's REST API (`<Dial>` replaces the stream).

    The REST client is made on the first transfer: most deployments never need one.
    """

    def __init__(self, settings: Callable[[], TwilioSettings]) -> None:
        self._settings = settings
        self._rest: Any = None

    def transfer(self, call: Call, number: str) -> bool:
        tw = self._settings()
        if not (tw.account_sid and tw.auth_token):
            log.error("transfer needs twilio.account_sid and auth_token",
                      extra={"call_sid": call.call_sid})
            return True
        from telephony.twilio.rest import TwilioRest

        if self._rest is None:
            self._rest = TwilioRest.from_settings(tw, base_url=tw.api_base_url or None)
        call.spawn(self._rest.transfer(call.call_sid, number), "transfer")
        return True

    async def aclose(self) -> None:
        if self._rest is not None:
            await self._rest.aclose()


class Runtime:
    """Everything one server process shares; built by `build_app`."""

    def __init__(self, config: Config, config_path: str | None) -> None:
        self.config = config
        self.started_at = time.time()
        self._process = psutil.Process()
        self.engine = MediaEngine(
            make_engine(config.vad, max_buffer_samples=config.media.max_inbound_ms * 8),
            config.vad,
            config.media,
            on_call_error=self._media_failed,
        )
        self.clock = MediaClock(on_tick=self.engine.tick)
        self.brains = BrainSelector(lambda: self.config)
        # Call records, turns, caller memory, live sessions.
        self.persistence = Persistence(lambda: self.config)
        self.transfers = RestTransfers(lambda: self.config.twilio)
        recording_dir = lambda: (self.config.recording.directory  # noqa: E731
                                 if self.config.recording.enabled else None)
        # Each outbound call's transcript and recording ([artifacts]: a directory or S3),
        # written within seconds of its end; the dialer's outcome carries the URL.
        self.artifacts = CallArtifacts(lambda: self.config.artifacts,
                                       db=lambda: self.persistence.db,
                                       recording_dir=recording_dir)
        self._spool_task: asyncio.Task[None] | None = None
        # Outbound calls: callbacks and the live-call observer always; the queue consumer
        # only with [dialer] enabled (started in `start`).
        self.dialer = DialerService(lambda: self.config.dialer, lambda: self.config.twilio,
                                    lambda: self.config.compliance, lambda: self.persistence.db,
                                    transcript_url=self.artifacts.transcript_url)
        # Sales scripts: a job's `script` is checked against [sales]; each outbound call
        # with one gets its follower (before the dialer's and the coach's observers run).
        self.sales = SalesCalls(lambda: self.config, lambda: self.persistence.db)
        self.dialer.dialer.scripts = lambda: self.config.sales.job_scripts(
            self.config.dialer.scripts, self.config.dialer.default_script)
        # Businesses by called number: each caller turn triaged, the owner's texts.
        self.businesses = Businesses(lambda: self.config, lambda: self.messaging.conversation,
                                     lambda: self.persistence.db,
                                     lambda: self.campaigns.email_sender)
        # The coach of each sales call ([coach] enabled): guidance into the live session.
        self.coaching = Coaching(lambda: self.config, lambda: self.persistence.db)
        # The calendar the booking tools and the /book link use ([booking]).
        self.booking = Booking(lambda: self.config, lambda: self.persistence.db)
        # Every call's analysis record at its end, and the owner's new-lead notice; before
        # the transfer observer (it notes transfers) and after persistence (caller memory).
        self.analyses = CallAnalyses(lambda: self.config, lambda: self.persistence.db,
                                     lambda: self.messaging.conversation,
                                     lambda: self.campaigns.email_sender,
                                     dial_live=self.dialer.observer.live.get)
        self.calls = CallManager(
            self.engine, self.brains.new_brain, self.brains.fallback_brain,
            config.server.max_calls,
            observers=(self.persistence, self.analyses, self.transfers, self.sales,
                       self.dialer.observer,
                       self.businesses, self.coaching),
            recording_dir=recording_dir,
        )
        self.clock.register(self.calls.tick_recorders)
        # Jobs with via = "livekit" are dialed through LiveKit SIP when [livekit] is set
        # (the Twirp client itself is made at the first dial, inside the loop).
        self.livekit: Any = None
        if config.livekit.configured:
            from telephony.livekit.dialing import LiveKitPlacer
            from telephony.livekit.session import LiveKitCalls

            self.livekit = LiveKitPlacer(LiveKitCalls(lambda: self.config.livekit, self.calls),
                                         lambda: self.persistence.db,
                                         self.dialer.waiters.notify)
            self.dialer.dialer.livekit = self.livekit
        # The SMS side: webhooks, conversation, outbox sender, over the same database.
        self.messaging = Messaging(lambda: self.config, lambda: self.persistence.db)
        # Drip campaigns and the email channel (scheduler, email outbox, unsubscribe).
        self.campaigns = Campaigns(
            lambda: self.config, lambda: self.persistence.db,  # type: ignore[arg-type,return-value]
            lambda: self.messaging.conversation,
            lambda: self.messaging.sender.wake() if self.messaging.sender else None)
        self.twilio_stats = TwilioStats()
        self.twilio = TwilioRoutes(lambda: self.config.twilio, self.calls, self.twilio_stats,
                                   businesses=self.businesses.registry,
                                   on_no_voice=self.businesses.notify_no_voice)
        self.reloader = ConfigReloader(config_path, config, self._apply,
                                       config.server.reload_poll_s)
        self.registry = metrics.make_registry(self)
        self.registry.register(BookingCollector())
        self.registry.register(self.messaging.collector())
        self.registry.register(self.campaigns.collector())
        self.registry.register(DialerCollector(self.dialer))
        self.registry.register(ArtifactsCollector(self.artifacts))
        self.registry.register(AnalysisCollector(self.analyses))
        self.registry.register(self.coaching.collector())
        if self.livekit is not None:
            from ops.livekit_metrics import LiveKitCollector

            self.registry.register(LiveKitCollector(self.livekit))

    # -- life cycle ----------------------------------------------------------------

    def _media_failed(self, media: Any, exc: Exception) -> None:
        media.sink.failed(exc)

    def _apply(self, old: Config, new: Config) -> None:
        """Hot reload: new values reach live calls; nothing is dropped."""
        self.config = new
        if self.engine.update_settings(new.vad, new.media):
            self.engine.replace_vad_engine(
                make_engine(new.vad, max_buffer_samples=new.media.max_inbound_ms * 8)
            )
        self.calls.max_calls = new.server.max_calls
        self.brains.configure()
        self.booking.configure()

    async def start(self, app: web.Application) -> None:
        # First, so an unreachable database stops the server before it takes calls.
        await self.persistence.start()
        await self.booking.start()
        await self.messaging.start()
        await self.campaigns.start()
        # The keyless brain is also every call's fallback: its prompts must be ready.
        await prerender(self.config.scripted)
        self.clock.start()
        self.reloader.start()
        # S3 uploads a previous run could not send (kept in the spool), in the background:
        # an endpoint that is down is retried with backoff, never a reason not to take calls.
        self._spool_task = asyncio.create_task(self._resend_spool(), name="artifact-spool")
        if self.config.dialer.enabled:
            await self.dialer.start_worker()
        log.info("leadline started", extra={
            "port": self.config.server.port, "brain": self.config.brain_kind,
            "vad": self.config.vad.engine,
            "signature_validation": self.config.twilio.validate_signatures,
        })

    async def _resend_spool(self) -> None:
        try:
            sent, failing = await self.artifacts.retry_spool()
        except Exception as exc:
            log.error("artifact spool not resent", extra={"error": repr(exc)[:300]})
            return
        if sent or failing:
            log.info("artifact spool resent", extra={"sent": sent, "failing": failing})

    async def stop(self, app: web.Application) -> None:
        await self.businesses.stop()
        await self.campaigns.stop()
        await self.messaging.stop()
        await self.dialer.stop()
        if self.livekit is not None:  # hangs up its calls and deletes their rooms
            await self.livekit.aclose()
        for call in list(self.calls.active.values()):
            call.leg.hang_up("server shutting down")
            await self.calls.close(call, "server shutting down")
        await self.sales.drain()  # the ended calls' sales summaries, while the db is open
        await self.coaching.stop()  # the calls' coach summaries, while the db is open
        await self.booking.stop()
        if self._spool_task is not None:
            self._spool_task.cancel()
            with contextlib.suppress(BaseException):
                await self._spool_task
        await self.artifacts.aclose()  # the last calls' artifacts, while the db is open
        await self.analyses.stop()  # the last calls' analyses, while the db is open
        await self.persistence.stop()  # after the calls, so their ends are written
        await self.reloader.stop()
        await self.clock.stop()
        await self.transfers.aclose()

    # -- views ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        cfg = self.config
        rss = self._process.memory_info().rss
        active = len(self.calls.active)
        cpu = self._process.cpu_times()
        p50, p99 = self.clock.lag_percentiles()
        last = self.reloader.last
        degraded = last is not None and not last.ok
        return {
            "status": "degraded" if degraded else "ok",
            "environment": cfg.server.environment,
            "uptimeSeconds": round(time.time() - self.started_at, 3),
            "memory": {
                "rss": rss,
                "heapUsed": rss,
                "maxRss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "rssPerCall": rss // active if active else None,
            },
            "process": {"pid": os.getpid(), "cpuSeconds": round(cpu.user + cpu.system, 3),
                        "userSeconds": round(cpu.user, 3), "systemSeconds": round(cpu.system, 3)},
            "sessions": {
                "activeVoiceSessions": active,
                "totalActiveSessions": active,
                "averageSessionDuration": round(self.calls.average_duration_s(), 3),
                "callsStarted": self.calls.started,
                "callsEnded": self.calls.ended,
            },
            **self.persistence.status(),  # the "redis" and "store" blocks
            "brain": {"kind": cfg.brain_kind},
            "security": {"signatureValidation": cfg.twilio.validate_signatures},
            "media": {
                "vadEngine": self.engine.vad_engine.name,
                "ticks": self.engine.ticks,
                "tickLagMs": {"p50": round(p50, 3), "p99": round(p99, 3)},
                "framesIn": self.engine.frames_in,
                "framesOut": self.engine.frames_out,
                "bargeIns": self.engine.barge_ins,
                "endOfTurns": self.engine.end_of_turns,
                "underruns": self.engine.underruns,
                "vadInferences": self.engine.vad_inferences,
            },
            "config": {
                "path": self.reloader.path,
                "lastReload": last.as_dict() if last else None,
                "vad": msgspec.to_builtins(cfg.vad),
            },
        }


async def _health(request: web.Request) -> web.Response:
    runtime: Runtime = request.app[RUNTIME]
    body = runtime.health()
    return web.Response(body=_json.encode(body), content_type="application/json",
                        status=200)


async def _metrics(request: web.Request) -> web.Response:
    runtime: Runtime = request.app[RUNTIME]
    return web.Response(body=metrics.exposition(runtime.registry),
                        content_type="text/plain", charset="utf-8")


def build_app(config: Config, config_path: str | None = None) -> web.Application:
    runtime = Runtime(config, config_path)
    app = web.Application(client_max_size=256 * 1024)
    app[RUNTIME] = runtime
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    runtime.twilio.add_to(app)
    runtime.messaging.add_to(app)
    runtime.campaigns.add_to(app)
    runtime.dialer.routes.add_to(app)
    runtime.businesses.add_to(app)
    runtime.booking.add_to(app)
    from ops.api.server import mount as mount_api

    mount_api(app, runtime)
    from ops.web import mount as mount_ops_page

    mount_ops_page(app, runtime)
    app.on_startup.append(runtime.start)
    app.on_shutdown.append(runtime.stop)
    return app
