"""The ops page: `GET /ops`, server-rendered HTML with a small script that polls JSON.

Two kinds of data, kept apart on purpose:

- aggregates (`GET /ops/summary.json`, no token): live call count and per-call
  direction/duration/brain/state (no numbers, no names), health of Redis, the
  database, the brain breaker and config reloads, latency histograms read from the
  Prometheus registry (barge-in, end of turn, turn latency), and each campaign's funnel;
- anything with a phone number, a name or a transcript comes only from the `/v1` API
  with a bearer token, which the page's login form keeps in sessionStorage (gone with
  the tab). Nothing personal is ever served without a token.

The script renders every value with `textContent`/SVG text nodes, never as HTML, so a
lead named `<script>…` is shown, not run. No CDN, no build step: the assets are files
in this package, served by the server with a strict Content-Security-Policy.
"""

from __future__ import annotations

import html
import logging
import time
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web

log = logging.getLogger("leadline.ops_page")
_encoder = msgspec.json.Encoder()
POLL_MS = 1000
# Histograms plotted, in order: (Prometheus family, title).
LATENCY_PLOTS = (
    ("leadline_barge_in_seconds", "Barge-in (speech onset → clear)"),
    ("leadline_end_of_turn_seconds", "End of turn (silence → commit)"),
    ("leadline_turn_latency_seconds", "Turn latency (commit → first agent audio)"),
)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text("utf-8")


def histograms(registry: Any) -> list[dict[str, Any]]:
    """The plotted histograms as per-bucket counts (Prometheus buckets are cumulative),
    summed over labels (e.g. brain kinds)."""
    wanted = dict(LATENCY_PLOTS)
    found: dict[str, dict[float, float]] = {}
    sums: dict[str, tuple[float, float]] = {}
    for fam in registry.collect():
        if fam.name not in wanted or fam.type != "histogram":
            continue
        cum = found.setdefault(fam.name, {})
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                cum[le] = cum.get(le, 0.0) + s.value
            elif s.name.endswith("_sum") or s.name.endswith("_count"):
                total, count = sums.get(fam.name, (0.0, 0.0))
                sums[fam.name] = (total + s.value, count) if s.name.endswith("_sum") \
                    else (total, count + s.value)
    out = []
    for name, title in LATENCY_PLOTS:
        cum = found.get(name, {})
        bounds = sorted(cum)
        buckets, prev = [], 0.0
        for le in bounds:
            buckets.append({"le": None if le == float("inf") else le,
                            "count": max(0.0, cum[le] - prev)})
            prev = cum[le]
        total, count = sums.get(name, (0.0, 0.0))
        out.append({"name": name, "title": title, "buckets": buckets, "count": count,
                    "mean_s": round(total / count, 4) if count else None})
    return out


def _gauge(registry: Any, name: str) -> float | None:
    for fam in registry.collect():
        if fam.name == name and fam.samples:
            return float(fam.samples[0].value)
    return None


async def summary(runtime: Any) -> dict[str, Any]:
    """Aggregates only: safe to serve without a token."""
    from ops.api.handlers import live_calls

    health = runtime.health()
    live = live_calls(runtime)
    breaker = _gauge(runtime.registry, "leadline_realtime_breaker_state")
    last = health["config"]["lastReload"]
    funnels: list[dict[str, Any]] = []
    db = runtime.persistence.db
    if db is not None:
        try:
            from sms.report import build_report

            for row in await build_report(db):
                funnels.append({"name": row["name"], "paused": row["paused"],
                                "enrolled": row["enrolled"], **row["funnel"]})
        except Exception:
            log.exception("campaign funnel for the ops page failed")
    return {
        "at": time.time(),
        "status": health["status"],
        "live": {"count": live.count,
                 "calls": [msgspec.to_builtins(c) for c in live.calls
                           ][:200]},
        "health": {
            "redis": {"configured": health["redis"]["configured"],
                      "connected": health["redis"]["connected"]},
            "database": {"backend": health["store"].get("backend"),
                         "open": health["store"].get("open"),
                         "writeErrors": health["store"].get("writeErrors")},
            "brain": {"kind": health["brain"]["kind"],
                      "breaker": {None: "n/a", 0.0: "closed", 1.0: "half-open",
                                  2.0: "open"}.get(breaker, str(breaker))},
            "dialer": {"enabled": bool(runtime.config.dialer.enabled)},
            "config": {"lastReload": None if last is None else
                       {"ok": last.get("ok"), "at": last.get("at"),
                        "error": last.get("error")}},
        },
        "latency": histograms(runtime.registry),
        "funnels": funnels,
    }


def _page(initial: dict[str, Any]) -> str:
    template = _asset("page.html")
    return (template
            .replace("{{active_calls}}", html.escape(str(initial["live"]["count"])))
            .replace("{{status}}", html.escape(str(initial["status"])))
            .replace("{{poll_ms}}", str(POLL_MS)))


def mount(app: web.Application, runtime: Any) -> None:
    async def page(request: web.Request) -> web.Response:
        body = _page(await summary(runtime))
        return web.Response(text=body, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP,
                                     "X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "no-store"})

    async def summary_json(request: web.Request) -> web.Response:
        return web.Response(body=_encoder.encode(await summary(runtime)),
                            content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:  # a fixed list: no path ever reaches the file system
            raise web.HTTPNotFound()
        return web.Response(text=_asset(name), content_type=ASSETS[name], charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    app.router.add_get("/ops", page)
    app.router.add_get("/ops/summary.json", summary_json)
    app.router.add_get("/ops/static/{name}", asset)
