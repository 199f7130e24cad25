"""Bodies, query strings and answers of the /v1 API as msgspec structs.

The same structs decode requests (unknown fields refused, types checked) and feed the
OpenAPI document, so the documentation cannot drift from what is accepted. Stored
records (`store.models.Lead`, `Call`, …) are answered as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from store.analysis_repo import StoredAnalysis
from store.campaign_models import CampaignRecord
from store.models import Call, DncEntry, Lead, Message, Turn
from store.token_models import ApiToken

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000, description="page size (1–1000)")]
Cursor = Annotated[str, msgspec.Meta(max_length=400,
                                     description="next_cursor of the previous page")]
When = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 time with offset")]
Text = Annotated[str, msgspec.Meta(max_length=320)]
LeadStatus = Literal["new", "contacted", "replied", "interested", "booked",
                     "not_interested", "opted_out", "wrong_number"]


class _Q(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    limit: Limit = 100
    cursor: Cursor | None = None
    created_at_gte: When | None = None
    created_at_lte: When | None = None


class LeadQuery(_Q, forbid_unknown_fields=True, frozen=True):
    status: LeadStatus | None = None
    state: Annotated[str, msgspec.Meta(max_length=2, min_length=2)] | None = None
    campaign: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    since: When | None = None  # changed (updated_at) since


class CallQuery(_Q, forbid_unknown_fields=True, frozen=True):
    direction: Literal["inbound", "outbound", "unknown"] | None = None
    status: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    outcome: Annotated[str, msgspec.Meta(max_length=80)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class MessageQuery(_Q, forbid_unknown_fields=True, frozen=True):
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    campaign: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    direction: Literal["inbound", "outbound"] | None = None
    channel: Literal["sms", "email"] | None = None


class PageQuery(_Q, forbid_unknown_fields=True, frozen=True):
    pass


class LeadCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    phone: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    first_name: Text | None = None
    last_name: Text | None = None
    email: Text | None = None
    state: Text | None = None
    attributes: dict[str, str] = {}
    source: Text | None = None


class LeadUpdate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Fields given are changed; `null`/absent leaves a field as it is."""

    first_name: Text | None = None
    last_name: Text | None = None
    email: Text | None = None
    state: Text | None = None
    attributes: dict[str, str] | None = None
    status: LeadStatus | None = None
    human_takeover: bool | None = None


class MessageSend(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=1600)]
    purpose: Literal["marketing", "conversation", "transactional", "notification"] = \
        "marketing"


class SendResult(msgspec.Struct, frozen=True):
    """What compliance and the outbox made of it: "queued" (the sender delivers it),
    "deferred" (held until next_allowed_at), "refused" or "duplicate"."""

    state: str
    reason: str
    message_id: int | None
    next_allowed_at: datetime | None


class CampaignSummary(msgspec.Struct, frozen=True):
    id: int
    name: str
    business: str
    paused: bool
    touches: int
    created_at: datetime
    updated_at: datetime


class CampaignDetail(msgspec.Struct, frozen=True):
    campaign: CampaignRecord
    enrollments: dict[str, int]


class LiveCall(msgspec.Struct, frozen=True):
    call_sid: str
    direction: str
    duration_s: float
    brain: str
    state: str


class LiveCalls(msgspec.Struct, frozen=True):
    count: int
    calls: list[LiveCall]


class DncAdd(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    phones: Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]],
                      msgspec.Meta(min_length=1, max_length=1000)]
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class DncAdded(msgspec.Struct, frozen=True):
    added: int


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    role: Literal["admin", "viewer"]
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    expires_at: When | None = None


class TokenCreated(msgspec.Struct, frozen=True):
    token: str
    id: int
    role: str


class ThreadItem(msgspec.Struct, frozen=True):
    """One entry of a lead's conversation across channels: an SMS/email or a call turn."""

    at: datetime
    channel: str  # sms | email | call
    direction: str  # inbound | outbound
    role: str  # lead | agent | tool | system
    text: str
    intent: str | None = None
    call_sid: str | None = None


class Thread(msgspec.Struct, frozen=True):
    lead: Lead | None
    items: list[ThreadItem]


class ImportSummary(msgspec.Struct, frozen=True):
    rows: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]


def listing(name: str, item: Any) -> Any:
    """`{"items": [...], "next_cursor": str|null}` of `item`, named for the schema."""
    return msgspec.defstruct(name, [("items", list[item]),
                                    ("next_cursor", str | None)],
                             frozen=True, module=__name__)


LeadList = listing("LeadList", Lead)
CallList = listing("CallList", Call)
MessageList = listing("MessageList", Message)
CampaignList = listing("CampaignList", CampaignSummary)
DncList = listing("DncList", DncEntry)
TokenList = listing("TokenList", ApiToken)


class CallView(msgspec.Struct, frozen=True):
    """One stored call: its record, its transcript, and its analysis (null until the
    call has ended and been analysed)."""

    call: Call
    turns: list[Turn]
    analysis: StoredAnalysis | None = None
