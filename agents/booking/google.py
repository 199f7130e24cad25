"""Google Calendar over plain REST on aiohttp, credentials from `google-auth`.

Two calls: `freeBusy` (POST {base}/freeBusy) for the busy intervals of the calendar and
`events.insert` (POST {base}/calendars/{id}/events?sendUpdates=all) with the attendee in
`attendees`, so Google emails the invitation. Why REST and not google-api-python-client:
that client is synchronous and discovery-based (a blocking thread per call and a large
dependency for two endpoints); the REST shapes are stable and documented.

Credentials: OAuth user credentials (a refresh token of the calendar's owner) or a
service account acting as a Workspace user through domain-wide delegation
(`with_subject`). A service account on its own cannot invite attendees (Google answers
403 forbiddenForServiceAccounts). Token refresh is google-auth's, run in a worker thread
with a bounded timeout (its transport is synchronous), never on the event loop.

Failures: 401 → the token is refreshed once and the request retried; 429, 5xx and the
rate-limit 403s → retried with exponential backoff (Retry-After honoured, capped),
`max_attempts` in all; other 4xx → `CalendarError` at once with Google's reason. Every
request has a total timeout. An insert carries an event id derived from the booking's
key, so a retry after a lost answer gets 409 and reads the event instead of inviting twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from agents.booking.core import Interval
from agents.booking.providers import CalendarError, CreatedEvent
from agents.booking.service import STATS
from agents.booking.settings import GoogleCalendarSettings

log = logging.getLogger("leadline.booking.google")

SCOPES = ["https://www.googleapis.com/auth/calendar"]
# 403 reasons that are rate limits, not permissions (Google's "Handle API errors").
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
MAX_RETRY_AFTER_S = 10.0
_B32HEX = "0123456789abcdefghijklmnopqrstuv"


def event_id_for(key: str) -> str:
    """A valid Google event id (base32hex, 5..1024 chars) that is the same for one key."""
    digest = hashlib.sha256(key.encode()).digest()
    bits = int.from_bytes(digest, "big")
    return "".join(_B32HEX[(bits >> (5 * i)) & 31] for i in range(40))


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def load_credentials(s: GoogleCalendarSettings) -> Any:
    """google-auth credentials from the settings (nothing is fetched here)."""
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    if s.credentials_file:
        try:
            info = json.loads(Path(s.credentials_file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CalendarError(f"google.credentials_file {s.credentials_file!r} cannot be "
                                f"read: {exc}") from None
        if not isinstance(info, dict):
            raise CalendarError("google.credentials_file is not a JSON object")
        info = {**info, "token_uri": s.token_url}
        try:
            if info.get("type") == "service_account":
                creds = service_account.Credentials.from_service_account_info(
                    info, scopes=SCOPES)
                return creds.with_subject(s.subject) if s.subject else creds
            return user_credentials.Credentials.from_authorized_user_info(info, SCOPES)
        except (ValueError, KeyError) as exc:
            raise CalendarError(f"google.credentials_file is not a usable key: {exc}") \
                from None
    return user_credentials.Credentials(
        token=None, refresh_token=s.refresh_token, client_id=s.client_id,
        client_secret=s.client_secret, token_uri=s.token_url, scopes=SCOPES)


def _transport(timeout_s: float) -> Any:
    """google-auth's requests transport with our timeout on every token request."""
    from google.auth.transport.requests import Request

    class _Bounded(Request):  # type: ignore[misc]
        def __call__(self, url: str, method: str = "GET", body: Any = None,
                     headers: Any = None, timeout: Any = None, **kwargs: Any) -> Any:
            return super().__call__(url, method=method, body=body, headers=headers,
                                    timeout=timeout_s, **kwargs)

    return _Bounded()


class GoogleCalendar:
    name = "google"
    invites = True  # sendUpdates=all: Google emails the attendee

    def __init__(self, settings: GoogleCalendarSettings, *, credentials: Any = None,
                 session: aiohttp.ClientSession | None = None,
                 sleep: Any = asyncio.sleep) -> None:
        self.settings = settings
        self._creds = credentials if credentials is not None else load_credentials(settings)
        self._session = session
        self._own_session = session is None
        self._lock = asyncio.Lock()
        self._sleep = sleep
        self._transport: Any = None
        self.refreshes = 0
        self.retries = 0

    # -- tokens ------------------------------------------------------------------------

    async def _token(self, *, force: bool = False) -> str:
        async with self._lock:
            if force or not self._creds.valid:
                await self._refresh()
            return str(self._creds.token)

    async def _refresh(self) -> None:
        from google.auth import exceptions

        if self._transport is None:
            self._transport = _transport(self.settings.timeout_s)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._creds.refresh, self._transport),
                                   self.settings.timeout_s + 1)
        except exceptions.RefreshError as exc:
            raise CalendarError(f"google refused the credentials: {exc}", status=401) \
                from None
        except (exceptions.TransportError, TimeoutError) as exc:
            raise CalendarError(f"google token endpoint unreachable: {exc!r}",
                                retryable=True) from None
        self.refreshes += 1
        STATS.refreshes += 1

    # -- requests -------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       body: Any = None) -> tuple[int, Any]:
        s = self.settings
        url = s.base_url.rstrip("/") + path
        refreshed = False
        attempt = 0
        timeout = aiohttp.ClientTimeout(total=s.timeout_s)
        while True:
            attempt += 1
            token = await self._token()
            retry_after = None
            try:
                async with self._http().request(
                        method, url, params=params, json=body, timeout=timeout,
                        headers={"Authorization": f"Bearer {token}"}) as resp:
                    status = resp.status
                    raw = await resp.read()
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = CalendarError(f"google calendar unreachable: {exc!r}", retryable=True)
                if attempt >= s.max_attempts:
                    raise error from None
                await self._backoff(attempt, None)
                continue
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                data = {}
            if status == 401 and not refreshed:
                refreshed = True
                await self._token(force=True)
                attempt -= 1  # a refresh is not a retry
                continue
            if 200 <= status < 300 or status == 409:
                return status, data
            reason, message = _google_error(data)
            retryable = status == 429 or status >= 500 or (
                status == 403 and reason in RATE_REASONS)
            if retryable and attempt < s.max_attempts:
                await self._backoff(attempt, retry_after)
                continue
            raise CalendarError(_explain(status, reason, message), status=status,
                                retryable=retryable)

    async def _backoff(self, attempt: int, retry_after: str | None) -> None:
        self.retries += 1
        STATS.retries += 1
        delay = self.settings.backoff_s * (2 ** (attempt - 1))
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after.strip()))
        await self._sleep(min(delay, MAX_RETRY_AFTER_S))

    # -- CalendarProvider -----------------------------------------------------------

    async def free_busy(self, start: datetime, end: datetime) -> list[Interval]:
        cal = self.settings.calendar_id
        _, data = await self._request("POST", "/freeBusy", body={
            "timeMin": _rfc3339(start), "timeMax": _rfc3339(end), "timeZone": "UTC",
            "items": [{"id": cal}]})
        entry = (data.get("calendars") or {}).get(cal) if isinstance(data, dict) else None
        if not isinstance(entry, dict):
            raise CalendarError(f"freeBusy answered nothing for calendar {cal!r}")
        errors = entry.get("errors") or []
        if errors:
            reason = errors[0].get("reason", "unknown") if isinstance(errors[0], dict) else ""
            raise CalendarError(f"freeBusy cannot read calendar {cal!r}: {reason} (share it "
                                "with the credentials' account)")
        out = []
        for item in entry.get("busy") or []:
            if not isinstance(item, dict):
                continue
            b_start, b_end = _parse_time(item.get("start")), _parse_time(item.get("end"))
            if b_start is not None and b_end is not None and b_end > b_start:
                out.append(Interval(b_start.astimezone(UTC), b_end.astimezone(UTC)))
        return out

    async def create_event(self, start: datetime, end: datetime, summary: str,
                           description: str, attendee_email: str, *,
                           key: str = "", call_sid: str = "") -> CreatedEvent:
        cal = quote(self.settings.calendar_id, safe="")
        body: dict[str, Any] = {
            "summary": summary,
            "description": description,
            "start": {"dateTime": _rfc3339(start), "timeZone": "UTC"},
            "end": {"dateTime": _rfc3339(end), "timeZone": "UTC"},
            "attendees": [{"email": attendee_email}] if attendee_email else [],
            "reminders": {"useDefault": True},
        }
        if key:
            body["id"] = event_id_for(key)
        status, data = await self._request(
            "POST", f"/calendars/{cal}/events", params={"sendUpdates": "all"}, body=body)
        if status == 409 and key:
            # Our own earlier insert (its answer was lost): read it back, invite once.
            status, data = await self._request("GET", f"/calendars/{cal}/events/{body['id']}")
        if status == 409 or not isinstance(data, dict) or not data.get("id"):
            raise CalendarError(f"events.insert answered {status} without an event")
        return CreatedEvent(event_id=str(data["id"]), link=str(data.get("htmlLink") or ""))

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None


def _google_error(data: Any) -> tuple[str, str]:
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return "", ""
    reasons = err.get("errors") or []
    reason = reasons[0].get("reason", "") if reasons and isinstance(reasons[0], dict) else ""
    return str(reason or err.get("status") or ""), str(err.get("message") or "")[:300]


def _explain(status: int, reason: str, message: str) -> str:
    hint = ""
    if status == 401:
        hint = " (the credentials were refreshed and still refused)"
    elif status == 403 and reason == "forbiddenForServiceAccounts":
        hint = (" (a service account can invite attendees only with domain-wide delegation:"
                " set google.subject)")
    elif status == 403:
        hint = " (the account may not write to this calendar)"
    elif status == 429 or reason in RATE_REASONS:
        hint = " (rate limited; retries exhausted)"
    elif status >= 500:
        hint = " (Google is failing; retries exhausted)"
    return f"google calendar answered {status} {reason or ''}: {message}{hint}".strip()


__all__ = ["GoogleCalendar", "event_id_for", "load_credentials"]
