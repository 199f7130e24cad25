"""The owner alert call passes the compliance engine like every outbound call: at night it
goes (an owner notice), to an owner who texted STOP it does not, and nothing reaches Twilio."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ops.business import TwilioAlertNotifier
from ops.config import build
from store.database import open_database

OWNER = "+14155550134"


async def test_an_opted_out_owner_is_never_phoned(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    try:
        await db.add_consent_event(OWNER, "opt_out", "sms", "STOP", source="test")
        cfg = build({"twilio": {"account_sid": "AC" + "0" * 32, "auth_token": "t",
                                "api_base_url": "http://127.0.0.1:9"}})
        notifier = TwilioAlertNotifier(lambda: cfg, SimpleNamespace(_db=lambda: db))  # type: ignore[arg-type]
        with pytest.raises(PermissionError, match="opted_out"):
            await notifier.place_call(OWNER, "+14155550100", "<Response/>", "CA1", 20)
        assert notifier._rest is None  # no REST client made, no request sent
        audits = [e for e in await db.list_audit() if e.kind == "compliance"]
        assert audits and audits[-1].detail.get("source") == "owner_alert:CA1"
    finally:
        await db.close()
