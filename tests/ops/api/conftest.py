"""A real leadline server per backend (SQLite, PostgreSQL) with an admin and a viewer token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import Server, start_server
from tests.store.conftest import BACKENDS, backend_url


@dataclass
class Api:
    server: Server
    session: aiohttp.ClientSession
    admin: str
    viewer: str
    admin_id: int
    viewer_id: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self) -> Any:
        return self.server.runtime.persistence.db

    def headers(self, token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, *, token: str | None = "admin",
                   json: Any = None, data: Any = None, headers: dict[str, str] | None = None
                   ) -> tuple[int, Any, dict[str, str]]:
        tok = {"admin": self.admin, "viewer": self.viewer}.get(token or "", token)
        h = {**self.headers(tok), **(headers or {})}
        async with self.session.request(method, self.url + path, json=json, data=data,
                                        headers=h) as r:
            raw = await r.read()
            ctype = r.headers.get("Content-Type", "")
            body: Any = raw
            if raw and ctype.startswith("application/json"):
                import msgspec

                body = msgspec.json.decode(raw)
            return r.status, body, dict(r.headers)


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with backend_url(request.param, tmp_path) as url:
        srv, runner = await start_server({
            "LEADLINE_STORE_DATABASE_URL": url,
            "LEADLINE_RECORDING_ENABLED": "true",
            "LEADLINE_RECORDING_DIRECTORY": str(tmp_path / "rec"),
            "LEADLINE_API_RATE_PER_S": "50", "LEADLINE_API_BURST": "100000",
        })
        try:
            db = srv.runtime.persistence.db
            admin_rec, admin = await db.create_api_token("admin")
            viewer_rec, viewer = await db.create_api_token("viewer")
            async with aiohttp.ClientSession() as session:
                yield Api(srv, session, admin, viewer, admin_rec.id, viewer_rec.id)
        finally:
            await runner.cleanup()
