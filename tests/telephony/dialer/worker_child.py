"""A dial-only worker in its own process, for the SIGKILL test: the real `DialerService`
(the one `leadline dialer run` builds) with the compliance clock pinned, so the test does
not depend on the hour it runs at. Killed with SIGKILL by the test; never cleans up.

    python -m tests.telephony.dialer.worker_child '<json settings>'
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

import msgspec


async def main(spec: dict) -> None:
    from agents.compliance.settings import ComplianceSettings
    from store.database import open_database
    from telephony.dialer.service import DialerService
    from telephony.dialer.settings import DialerSettings
    from telephony.settings import TwilioSettings

    dialer = msgspec.convert(spec["dialer"], DialerSettings)
    twilio = msgspec.convert(spec["twilio"], TwilioSettings)
    db = await open_database(spec["database_url"])
    now = datetime.fromisoformat(spec["now"])
    service = DialerService(lambda: dialer, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: now)
    await service.start_worker()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
