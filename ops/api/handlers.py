"""The /v1 operations and their route table.

Handlers are thin: they decode the path, call the store or the same service the CLI
uses (compliance-checked sends through `sms.conversation.Conversation.send`, the
campaign report of `sms.report`), and answer records. Business rules stay in their
layers.
"""

from __future__ import annotations

from typing import Any

from ops.api import pagination, schemas
from ops.api.core import ApiContext, ApiRequest, Json, Route
from ops.api.errors import ApiError, bad_request, not_found
from store.models import Lead, LeadInput
from store.phones import InvalidPhoneNumber, normalize_phone

PHONE = {"phone": "the lead's phone number (any common form; E.164 preferred, '+' as %2B)"}
CALL_SID = {"call_sid": "Twilio's CallSid"}
CAMPAIGN = {"name": "the campaign's name"}


def _phone(raw: str, field: str = "phone") -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber as exc:
        raise bad_request(str(exc), field, code="invalid_phone") from None


def _page_answer(kind: str, page: Any) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": pagination.encode(kind, page.next_after)}


def _int_cursor(kind: str, cursor: str | None) -> int | None:
    key = pagination.decode(kind, cursor)
    if key is not None and not isinstance(key, int):
        raise bad_request("cursor is not a cursor of this list", "cursor")
    return key


# leads -------------------------------------------------------------------------------


async def list_leads(ctx: ApiContext, r: ApiRequest) -> Any:
    q: schemas.LeadQuery = r.query
    page = await ctx.db().page_leads(
        limit=q.limit, after_id=_int_cursor("leads", q.cursor) or 0, status=q.status,
        state=q.state, campaign=q.campaign, since=q.since, created_gte=q.created_at_gte,
        created_lte=q.created_at_lte)
    return _page_answer("leads", page)


async def create_lead(ctx: ApiContext, r: ApiRequest) -> Any:
    from store.database import clean_lead_input

    b: schemas.LeadCreate = r.body
    try:
        lead = clean_lead_input(LeadInput(
            phone=b.phone, first_name=b.first_name, last_name=b.last_name, email=b.email,
            state=b.state, attributes=b.attributes, source=b.source or "api"))
    except InvalidPhoneNumber as exc:
        raise bad_request(str(exc), "phone", code="invalid_phone") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    db = ctx.db()
    existed = await db.get_lead(lead.phone) is not None
    await db.upsert_leads([lead])
    stored = await db.get_lead(lead.phone)
    return Json(stored, 200 if existed else 201)


async def get_lead(ctx: ApiContext, r: ApiRequest) -> Any:
    lead = await ctx.db().get_lead(_phone(r.path["phone"]))
    if lead is None:
        raise not_found("lead")
    return lead


async def update_lead(ctx: ApiContext, r: ApiRequest) -> Any:
    from store.database import clean_lead_input

    b: schemas.LeadUpdate = r.body
    phone = _phone(r.path["phone"])
    db = ctx.db()
    if await db.get_lead(phone) is None:
        raise not_found("lead")
    try:
        fields = clean_lead_input(LeadInput(
            phone=phone, first_name=b.first_name, last_name=b.last_name, email=b.email,
            state=b.state, attributes=b.attributes or {}))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if any(v is not None for v in (b.first_name, b.last_name, b.email, b.state)) \
            or b.attributes:
        await db.upsert_leads([fields])
    if b.status is not None:
        await db.set_lead_status(phone, b.status)
    if b.human_takeover is not None:
        await db.set_human_takeover(phone, b.human_takeover)
    return await db.get_lead(phone)


async def delete_lead(ctx: ApiContext, r: ApiRequest) -> Any:
    """GDPR erasure: the lead, its messages and outbox rows; the consent trail and the
    DNC list stay (they are the legal record)."""
    if not await ctx.db().delete_lead(_phone(r.path["phone"])):
        raise not_found("lead")
    return Json(None, 204)


async def lead_thread(ctx: ApiContext, r: ApiRequest) -> Any:
    phone = _phone(r.path["phone"])
    db = ctx.db()
    lead = await db.get_lead(phone)
    items: list[schemas.ThreadItem] = []
    for m in await db.list_messages(phone, limit=500):
        items.append(schemas.ThreadItem(
            at=m.created_at, channel=m.channel, direction=m.direction,
            role="lead" if m.direction == "inbound" else "agent", text=m.body,
            intent=m.intent))
    calls = await db.page_calls(limit=20, phone=phone)
    for call in calls.items:
        detail = await db.get_call(call.call_sid)
        for t in detail.turns if detail else []:
            items.append(schemas.ThreadItem(
                at=t.started_at, channel="call", direction=call.direction,
                role="lead" if t.role == "caller" else t.role, text=t.text,
                call_sid=call.call_sid))
    if lead is None and not items:
        raise not_found("lead")
    items.sort(key=lambda i: i.at)
    return schemas.Thread(lead=lead, items=items)


# calls -------------------------------------------------------------------------------


async def list_calls(ctx: ApiContext, r: ApiRequest) -> Any:
    q: schemas.CallQuery = r.query
    page = await ctx.db().page_calls(
        limit=q.limit, before_id=_int_cursor("calls", q.cursor), direction=q.direction,
        status=q.status, outcome=q.outcome,
        phone=None if q.phone is None else _phone(q.phone),
        created_gte=q.created_at_gte, created_lte=q.created_at_lte)
    return _page_answer("calls", page)


async def get_call(ctx: ApiContext, r: ApiRequest) -> Any:
    db = ctx.db()
    detail = await db.get_call(r.path["call_sid"])
    if detail is None:
        raise not_found("call")
    analysis = await db.get_call_analysis(detail.call.call_sid)  # type: ignore[attr-defined]
    return schemas.CallView(detail.call, detail.turns, analysis)


def live_calls(runtime: Any) -> schemas.LiveCalls:
    """The calls this process holds now; no numbers or names (aggregate-safe)."""
    import time

    now = time.monotonic()
    calls = []
    for call in list(runtime.calls.active.values()):
        state = "ending" if call.end_reason else ("fallback" if call.fell_back else "live")
        calls.append(schemas.LiveCall(
            call_sid=call.call_sid, direction=call.context.direction,
            duration_s=round(now - call.started_at, 1),
            brain=getattr(call.brain, "kind", "unknown"), state=state))
    return schemas.LiveCalls(count=len(calls), calls=calls)


async def get_live_calls(ctx: ApiContext, r: ApiRequest) -> Any:
    return live_calls(ctx.runtime)


# messages ----------------------------------------------------------------------------


async def list_messages(ctx: ApiContext, r: ApiRequest) -> Any:
    q: schemas.MessageQuery = r.query
    page = await ctx.db().page_messages(
        limit=q.limit, after_id=_int_cursor("messages", q.cursor) or 0,
        phone=None if q.phone is None else _phone(q.phone), campaign=q.campaign,
        direction=q.direction, channel=q.channel, created_gte=q.created_at_gte,
        created_lte=q.created_at_lte)
    return _page_answer("messages", page)


async def send_message(ctx: ApiContext, r: ApiRequest) -> Any:
    """One text through compliance and the outbox, exactly as `leadline sms send`."""
    from sms.conversation import NoSender

    b: schemas.MessageSend = r.body
    to = _phone(b.to, "to")
    conversation = ctx.runtime.messaging.conversation
    if conversation is None:
        raise ApiError(409, "no_sms", "the SMS side is not running (no store or sender)")
    idem = r.request.headers.get("Idempotency-Key")
    if idem is not None and not 1 <= len(idem) <= 100:
        raise bad_request("Idempotency-Key must be 1..100 characters", "Idempotency-Key")
    import uuid

    origin = f"api:{r.token.id}:{idem or uuid.uuid4().hex}"
    try:
        queued = await conversation.send(to, b.body, b.purpose, origin)
    except NoSender as exc:
        raise ApiError(409, "no_sender", str(exc)) from None
    wake = getattr(ctx.runtime.messaging.sender, "wake", None)
    if queued.state == "queued" and wake is not None:
        wake()
    result = schemas.SendResult(state=queued.state, reason=queued.reason,
                                message_id=queued.message_id,
                                next_allowed_at=queued.next_allowed_at)
    return Json(result, 202)


# campaigns ---------------------------------------------------------------------------


def _summary(rec: Any) -> schemas.CampaignSummary:
    touches = rec.definition.get("touches", []) if isinstance(rec.definition, dict) else []
    return schemas.CampaignSummary(
        id=rec.id, name=rec.name, business=rec.business, paused=rec.paused,
        touches=len(touches) if isinstance(touches, list) else 0,
        created_at=rec.created_at, updated_at=rec.updated_at)


async def list_campaigns(ctx: ApiContext, r: ApiRequest) -> Any:
    q: schemas.PageQuery = r.query
    page = await ctx.db().page_campaigns(
        limit=q.limit, after_id=_int_cursor("campaigns", q.cursor) or 0,
        created_gte=q.created_at_gte, created_lte=q.created_at_lte)
    return {"items": [_summary(c) for c in page.items],
            "next_cursor": pagination.encode("campaigns", page.next_after)}


async def get_campaign(ctx: ApiContext, r: ApiRequest) -> Any:
    db = ctx.db()
    rec = await db.get_campaign(r.path["name"])
    if rec is None:
        raise not_found("campaign")
    counts: dict[str, int] = {}
    after = 0
    while True:
        batch = await db.list_enrollments(rec.id, limit=1000, after_id=after)
        for e in batch:
            counts[e.state] = counts.get(e.state, 0) + 1
        if len(batch) < 1000:
            break
        after = batch[-1].id
    return schemas.CampaignDetail(campaign=rec, enrollments=counts)


ROUTES: list[Route] = [
    Route("GET", "/leads", list_leads, "List leads (filters: status, state, campaign, "
          "since, created_at_gte/lte), by id", "leads", query=schemas.LeadQuery,
          response=schemas.LeadList),
    Route("POST", "/leads", create_lead, "Create (201) or merge into (200) a lead; the "
          "phone is stored in E.164", "leads", role="admin", body=schemas.LeadCreate,
          response=Lead, status=201),
    Route("GET", "/leads/{phone}", get_lead, "One lead", "leads", response=Lead,
          path_params=PHONE),
    Route("PATCH", "/leads/{phone}", update_lead, "Change a lead's fields, status or "
          "human takeover", "leads", role="admin", body=schemas.LeadUpdate, response=Lead,
          path_params=PHONE),
    Route("DELETE", "/leads/{phone}", delete_lead, "Erase a lead with its messages (GDPR); "
          "consent events and DNC stay", "leads", role="admin", status=204,
          path_params=PHONE),
    Route("GET", "/leads/{phone}/thread", lead_thread, "The lead's SMS, email and call "
          "turns in time order, with intents", "leads", response=schemas.Thread,
          path_params=PHONE),
    Route("GET", "/calls", list_calls, "List stored calls, newest first", "calls",
          query=schemas.CallQuery, response=schemas.CallList),
    Route("GET", "/calls/live", get_live_calls, "Calls this process holds now", "calls",
          response=schemas.LiveCalls),
    Route("GET", "/calls/{call_sid}", get_call, "One call with its transcript and its "
          "analysis record", "calls", response=schemas.CallView, path_params=CALL_SID),
    Route("GET", "/messages", list_messages, "List SMS and email messages (by lead or "
          "campaign), oldest first", "messages", query=schemas.MessageQuery,
          response=schemas.MessageList),
    Route("POST", "/messages", send_message, "Send one SMS through compliance and the "
          "outbox; `state` says queued, deferred (quiet hours), refused or duplicate",
          "messages", role="admin",
          body=schemas.MessageSend, response=schemas.SendResult, status=202,
          errors={"409": "the SMS side has no sender configured"}),
    Route("GET", "/campaigns", list_campaigns, "List campaigns by id", "campaigns",
          query=schemas.PageQuery, response=schemas.CampaignList),
    Route("GET", "/campaigns/{name}", get_campaign, "One campaign with its definition and "
          "enrollment counts", "campaigns", response=schemas.CampaignDetail,
          path_params=CAMPAIGN),
]
