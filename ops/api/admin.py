"""The rest of /v1: DNC, campaign writes and reports, lead CSV import, recordings,
the tunable config, tokens. Same rules as ops/api/handlers.py: thin, the services of
the layers below do the work."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from ops.api import pagination, schemas
from ops.api.core import ApiContext, ApiRequest, Json, Route
from ops.api.errors import ApiError, bad_request, not_found
from ops.api.handlers import CALL_SID, CAMPAIGN, PHONE, _int_cursor, _page_answer, _phone

_CALL_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMPORT_BATCH = 1000
# Knobs of [vad] an admin may change over the API (turn-taking and barge-in).
VAD_KEYS = ("engine", "threshold", "start_ms", "stop_ms", "min_volume", "barge_in_ms",
            "prefix_padding_ms")


class DncQuery(schemas._Q, forbid_unknown_fields=True, frozen=True):
    pass


class EnrollBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Who to enroll: listed phones, every lead of a status, or everyone."""

    phones: Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]],
                      msgspec.Meta(max_length=10_000)] | None = None
    status: schemas.LeadStatus | None = None
    all: bool = False


class EnrollResult(msgspec.Struct, frozen=True):
    enrolled: int
    already: int
    skipped: list[dict[str, str]]


class PausedState(msgspec.Struct, frozen=True):
    name: str
    paused: bool


class PreviewQuery(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    lead: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class ReportQuery(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    campaign: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    since: schemas.When | None = None


class VadKnobs(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Partial [vad]: the fields given are changed, the rest kept."""

    engine: Literal["webrtc", "silero"] | None = None
    threshold: float | None = None
    start_ms: int | None = None
    stop_ms: int | None = None
    min_volume: int | None = None
    barge_in_ms: int | None = None
    prefix_padding_ms: int | None = None


class ConfigPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    vad: VadKnobs


class ConfigView(msgspec.Struct, frozen=True):
    vad: dict[str, Any]
    media: dict[str, Any]
    path: str | None
    writable: bool
    last_reload: dict[str, Any] | None


class Created(msgspec.Struct, frozen=True):
    name: str
    created: bool


TokenList = schemas.TokenList


# businesses --------------------------------------------------------------------------


def _business_list() -> Any:
    from agents.business.settings import BusinessSettings

    return schemas.listing("BusinessList", BusinessSettings)


BusinessList = _business_list()


async def list_businesses(ctx: ApiContext, r: ApiRequest) -> Any:
    """The `[[businesses]]` of the running config (they live in the config file, which
    is where they are edited), paged by position."""
    q: BusinessQuery = r.query
    start = _int_cursor("businesses", q.cursor) or 0
    every = ctx.runtime.config.businesses
    items = every[start:start + q.limit]
    more = start + q.limit < len(every)
    return {"items": items,
            "next_cursor": pagination.encode("businesses", start + q.limit) if more else None}


class BusinessQuery(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    limit: schemas.Limit = 100
    cursor: schemas.Cursor | None = None


# DNC ---------------------------------------------------------------------------------


async def list_dnc(ctx: ApiContext, r: ApiRequest) -> Any:
    q: DncQuery = r.query
    after = pagination.decode("dnc", q.cursor)
    page = await ctx.db().page_dnc(limit=q.limit, after=str(after or ""),
                                   created_gte=q.created_at_gte, created_lte=q.created_at_lte)
    return _page_answer("dnc", page)


async def add_dnc(ctx: ApiContext, r: ApiRequest) -> Any:
    b: schemas.DncAdd = r.body
    phones = [_phone(p, f"phones[{i}]") for i, p in enumerate(b.phones)]
    added = await ctx.db().dnc_add(phones, reason=b.reason or "api")
    return Json(schemas.DncAdded(added=added), 201 if added else 200)


async def remove_dnc(ctx: ApiContext, r: ApiRequest) -> Any:
    if not await ctx.db().dnc_remove(_phone(r.path["phone"])):
        raise not_found("DNC entry")
    return Json(None, 204)


# campaigns ---------------------------------------------------------------------------


async def create_campaign(ctx: ApiContext, r: ApiRequest) -> Any:
    """A campaign file (TOML, the format of `leadline campaigns load`), stored or
    replaced by name; enrollments and the paused flag are kept."""
    from sms.campaigns import service
    from sms.campaigns.model import CampaignError

    try:
        text = r.body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the campaign file must be UTF-8 TOML") from None
    try:
        rec, created = await service.load(ctx.db(), text, "body")
    except CampaignError as exc:
        raise bad_request(str(exc), code="invalid_campaign") from None
    return Json(Created(name=rec.name, created=created), 201 if created else 200)


async def _set_paused(ctx: ApiContext, r: ApiRequest, paused: bool) -> PausedState:
    if not await ctx.db().set_campaign_paused(r.path["name"], paused):
        raise not_found("campaign")
    return PausedState(name=r.path["name"], paused=paused)


async def pause_campaign(ctx: ApiContext, r: ApiRequest) -> Any:
    return await _set_paused(ctx, r, True)


async def resume_campaign(ctx: ApiContext, r: ApiRequest) -> Any:
    return await _set_paused(ctx, r, False)


async def enroll_campaign(ctx: ApiContext, r: ApiRequest) -> Any:
    from sms.campaigns import service
    from sms.campaigns.service import CampaignNotFound

    b: EnrollBody = r.body
    chosen = sum((b.phones is not None, b.status is not None, b.all))
    if chosen != 1:
        raise bad_request("give exactly one of phones, status or all=true", "phones")
    try:
        summary = await service.enroll(ctx.db(), r.path["name"], phones=b.phones,
                                       status=b.status, everyone=b.all,
                                       now=datetime.now(UTC))
    except CampaignNotFound:
        raise not_found("campaign") from None
    return EnrollResult(enrolled=summary.enrolled, already=summary.already,
                        skipped=summary.skipped)


async def preview_campaign(ctx: ApiContext, r: ApiRequest) -> Any:
    from sms.campaigns import service
    from sms.campaigns.service import CampaignNotFound

    cfg = ctx.runtime.config
    try:
        return await service.preview(ctx.db(), r.path["name"], _phone(r.query.lead, "lead"),
                                     business_name=cfg.sms.business_name,
                                     booking_url=cfg.sms.booking_url)
    except CampaignNotFound:
        raise not_found("campaign") from None
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


async def campaign_report(ctx: ApiContext, r: ApiRequest) -> Any:
    """The report of `leadline report`: per campaign, counts, rates and the funnel."""
    from sms.report import build_report

    q: ReportQuery = r.query
    try:
        return {"items": await build_report(ctx.db(), campaign=q.campaign, since=q.since)}
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc), "campaign") from None


# leads import ------------------------------------------------------------------------


async def import_leads(ctx: ApiContext, r: ApiRequest) -> Any:
    """A lead CSV, read by the importer `leadline leads import` uses; the answer is the
    same summary as its --json."""
    from sms.leads_csv import LeadFileError, read_leads
    from store.errors import StoreError

    db = ctx.db()
    source = r.query.source
    counts = {"rows": 0, "created": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    warnings: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []

    def note(target: list[dict[str, Any]], issues: Any) -> None:
        for issue in issues:
            if len(target) < 100:
                target.append({"row": issue.row, "field": issue.field,
                               "reason": issue.reason})

    rows = read_leads(io.BytesIO(r.body), source=source or "api")
    try:
        while True:
            # The reader is CPU-bound: batches run off the event loop, calls keep flowing.
            chunk = await asyncio.to_thread(lambda: list(itertools.islice(rows, IMPORT_BATCH)))
            if not chunk:
                break
            batch = []
            for result in chunk:
                counts["rows"] = result.row
                note(warnings, result.warnings)
                note(errors, result.errors)
                if result.errors:
                    counts["skipped"] += 1
                if result.lead is not None:
                    batch.append(result.lead)
            if batch:
                done = await db.upsert_leads(batch)
                counts["created"] += done.created
                counts["updated"] += done.updated
                counts["unchanged"] += done.unchanged
    except LeadFileError as exc:
        raise bad_request(f"{exc}; rows 1–{counts['rows']} imported before it"
                          if counts["created"] + counts["updated"] else str(exc),
                          code="invalid_csv") from None
    except (StoreError, ValueError) as exc:
        raise bad_request(str(exc), code="invalid_csv") from None
    return {**counts, "warnings": warnings, "errors": errors}


class ImportQuery(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    source: Annotated[str, msgspec.Meta(max_length=200)] | None = None


# recordings --------------------------------------------------------------------------


def _recording_file(directory: str, stored: str) -> Path:
    root = Path(directory).resolve()
    path = Path(stored)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root):
        raise ApiError(403, "forbidden", "the recording is outside the recording directory")
    if not path.is_file():
        raise not_found("recording file")
    return path


async def call_recording(ctx: ApiContext, r: ApiRequest) -> Any:
    """The call's WAV, only from inside the recording directory: a stored path or a
    call SID that points anywhere else is refused."""
    sid = r.path["call_sid"]
    if not _CALL_SID.match(sid):
        raise bad_request("call_sid has characters no CallSid has", "call_sid")
    detail = await ctx.db().get_call(sid)
    if detail is None or not detail.call.recording_path:
        raise not_found("recording")
    path = await asyncio.to_thread(_recording_file, ctx.runtime.config.recording.directory,
                                   detail.call.recording_path)
    return web.FileResponse(path, headers={
        "Content-Type": "audio/wav",
        "Content-Disposition": f'attachment; filename="{sid}.wav"'})


# config ------------------------------------------------------------------------------


def _config_view(ctx: ApiContext) -> ConfigView:
    cfg = ctx.runtime.config
    reloader = ctx.runtime.reloader
    last = reloader.last
    return ConfigView(vad=msgspec.to_builtins(cfg.vad), media=msgspec.to_builtins(cfg.media),
                      path=reloader.path, writable=reloader.path is not None,
                      last_reload=None if last is None else last.as_dict())


async def get_config(ctx: ApiContext, r: ApiRequest) -> Any:
    return _config_view(ctx)


def _write_config(path: Path, changes: dict[str, Any]) -> None:
    """Set [vad] keys in the file, keeping its comments; the new text is loaded as a
    config (env overrides included) before it replaces the file, atomically."""
    import tomlkit

    from ops import config as config_mod

    doc = tomlkit.parse(path.read_text("utf-8"))
    section = doc.get("vad")
    if section is None:
        section = tomlkit.table()
        doc["vad"] = section
    for key, value in changes.items():
        section[key] = value
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".leadline-config-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(tomlkit.dumps(doc))
        try:
            config_mod.load(tmp)
        except config_mod.ConfigError as exc:
            field = next((f"vad.{k}" for k in changes if k in str(exc)), "vad")
            raise bad_request(str(exc), field, code="invalid_config") from None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


async def patch_config(ctx: ApiContext, r: ApiRequest) -> Any:
    """Change [vad] knobs: validated as a whole config, written back to the config file
    (comments and layout kept), then applied like any hot reload, live calls included."""
    reloader = ctx.runtime.reloader
    if reloader.path is None:
        raise ApiError(409, "no_config_file", "the server runs without --config: there is "
                       "no file to write the change back to")
    changes = {k: v for k, v in msgspec.to_builtins(r.body.vad).items() if v is not None}
    if not changes:
        raise bad_request("no [vad] value given", "vad")
    await asyncio.to_thread(_write_config, Path(reloader.path), changes)
    result = reloader.reload("api")
    if not result.ok:
        raise ApiError(409, "reload_failed", result.error or "reload failed")
    return _config_view(ctx)


# tokens ------------------------------------------------------------------------------


async def list_tokens(ctx: ApiContext, r: ApiRequest) -> Any:
    q: schemas.PageQuery = r.query
    page = await ctx.db().list_api_tokens(limit=q.limit,
                                          after_id=_int_cursor("tokens", q.cursor) or 0)
    return _page_answer("tokens", page)


async def create_token(ctx: ApiContext, r: ApiRequest) -> Any:
    b: schemas.TokenCreate = r.body
    if b.expires_at is not None and b.expires_at <= datetime.now(UTC):
        raise bad_request("expires_at is in the past", "expires_at")
    rec, token = await ctx.db().create_api_token(b.role, label=b.label,
                                                 expires_at=b.expires_at)
    return Json(schemas.TokenCreated(token=token, id=rec.id, role=rec.role), 201)


async def revoke_token(ctx: ApiContext, r: ApiRequest) -> Any:
    try:
        token_id = int(r.path["id"])
    except ValueError:
        raise bad_request("id must be a number", "id") from None
    if not await ctx.db().revoke_api_token(token_id):
        raise not_found("usable token")
    return Json(None, 204)


ROUTES: list[Route] = [
    Route("GET", "/businesses", list_businesses, "Businesses of the running config",
          "businesses", query=BusinessQuery, response=BusinessList),
    Route("GET", "/dnc", list_dnc, "The do-not-contact list, by phone", "dnc",
          query=DncQuery, response=schemas.DncList),
    Route("POST", "/dnc", add_dnc, "Block phones on every channel", "dnc", role="admin",
          body=schemas.DncAdd, response=schemas.DncAdded, status=201),
    Route("DELETE", "/dnc/{phone}", remove_dnc, "Unblock a phone", "dnc", role="admin",
          status=204, path_params=PHONE),
    Route("POST", "/campaigns", create_campaign, "Load a campaign file (TOML, as `leadline "
          "campaigns load`); 201 new, 200 replaced", "campaigns", role="admin",
          raw_body=("application/toml", "the campaign definition"), response=Created,
          status=201),
    Route("POST", "/campaigns/{name}/pause", pause_campaign, "Pause a campaign",
          "campaigns", role="admin", response=PausedState, path_params=CAMPAIGN),
    Route("POST", "/campaigns/{name}/resume", resume_campaign, "Resume a campaign",
          "campaigns", role="admin", response=PausedState, path_params=CAMPAIGN),
    Route("POST", "/campaigns/{name}/enroll", enroll_campaign, "Enroll leads (phones, a "
          "status, or all)", "campaigns", role="admin", body=EnrollBody,
          response=EnrollResult, path_params=CAMPAIGN),
    Route("GET", "/campaigns/{name}/preview", preview_campaign, "Render each touch for one "
          "lead (sends nothing)", "campaigns", query=PreviewQuery,
          response=list[dict[str, Any]], path_params=CAMPAIGN),
    Route("GET", "/reports/campaigns", campaign_report, "The campaign report (counts, "
          "rates, funnel, median first reply, cost)", "reports", query=ReportQuery,
          response=dict[str, list[dict[str, Any]]], errors={"404": "no such campaign"}),
    Route("POST", "/leads/import", import_leads, "Import a lead CSV; the summary of "
          "`leadline leads import --json`", "leads", role="admin", query=ImportQuery,
          raw_body=("text/csv", "the lead CSV"), response=schemas.ImportSummary),
    Route("GET", "/calls/{call_sid}/recording", call_recording, "The call's recording "
          "(WAV)", "calls", raw_response=("audio/wav", "the recording"),
          path_params=CALL_SID, errors={"403": "the stored path is outside the recording "
                                               "directory"}),
    Route("GET", "/config", get_config, "The VAD / turn-taking knobs and the last reload",
          "config", response=ConfigView),
    Route("PATCH", "/config", patch_config, "Change [vad] knobs: written back to the config "
          "file and hot-reloaded", "config", role="admin", body=ConfigPatch,
          response=ConfigView, errors={"409": "no config file, or the reload failed"}),
    Route("GET", "/tokens", list_tokens, "API tokens (no secrets)", "tokens", role="admin",
          query=schemas.PageQuery, response=TokenList),
    Route("POST", "/tokens", create_token, "Make a token; the token is in this answer only",
          "tokens", role="admin", body=schemas.TokenCreate, response=schemas.TokenCreated,
          status=201),
    Route("DELETE", "/tokens/{id}", revoke_token, "Revoke a token", "tokens", role="admin",
          status=204, path_params={"id": "the token's id"}),
]


