from __future__ import annotations

import asyncio
import os
import signal

import aiohttp

from tests.ops.conftest import start_server


async def _get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_health_has_the_documented_fields(server):
    await asyncio.sleep(0.1)  # let the media clock tick a few times
    body = await _get_json(server.url + "/health")
    assert body["status"] == "ok"
    assert body["environment"] == "development"
    assert body["memory"]["rss"] > 0 and body["memory"]["heapUsed"] > 0
    sessions = body["sessions"]
    assert set(sessions) >= {"activeVoiceSessions", "totalActiveSessions",
                             "averageSessionDuration"}
    assert body["redis"]["configured"] is False and body["redis"]["connected"] is False
    assert body["store"]["open"] is True
    assert body["security"]["signatureValidation"] is True
    assert body["media"]["vadEngine"] == "webrtc"
    assert body["media"]["ticks"] > 0


async def test_metrics_exposition(server):
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        text = await resp.text()
    for name in ("leadline_active_calls", "leadline_frames_in_total",
                 "leadline_frames_out_total", "leadline_frame_processing_seconds",
                 "leadline_vad_batches_total", "leadline_barge_ins_total",
                 "leadline_end_of_turns_total", "leadline_playout_underruns_total",
                 "leadline_protocol_errors_total", "leadline_config_reloads_total",
                 "process_resident_memory_bytes"):
        assert name in text, name


async def _wait_reload(srv, count: int) -> None:
    for _ in range(100):
        r = srv.runtime.reloader
        if r.reloads_ok + r.reloads_failed >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no reload happened")


async def test_hot_reload_reaches_live_settings_and_bad_file_keeps_old(tmp_path):
    path = tmp_path / "leadline.toml"
    path.write_text("[vad]\nstop_ms = 500\n")
    srv, runner = await start_server({}, str(path))
    try:
        engine = srv.runtime.engine
        call = engine.add_call(sink=_NullSink(), key="live")  # a live call's media
        os.utime(path, ns=(1, 1))  # make sure the next write changes the mtime
        path.write_text("[vad]\nstop_ms = 900\nbarge_in_ms = 150\n")
        await _wait_reload(srv, 1)
        assert srv.runtime.config.vad.stop_ms == 900
        assert call.turns.settings.stop_ms == 900  # reached the live call
        assert call.turns.settings.barge_in_ms == 150

        path.write_text("[vad]\nstop_ms = 'slow'\n")
        os.kill(os.getpid(), signal.SIGHUP)  # SIGHUP also reloads
        await _wait_reload(srv, 2)
        assert srv.runtime.config.vad.stop_ms == 900  # old values kept
        body = await _get_json(srv.url + "/health")
        assert body["status"] == "degraded"
        assert body["config"]["lastReload"]["ok"] is False
        assert "vad.stop_ms" in body["config"]["lastReload"]["error"]

        path.write_text("[vad]\nengine = 'silero'\n")
        await _wait_reload(srv, 3)
        assert engine.vad_engine.name == "silero"
        assert not call.closed  # swapping the VAD engine dropped no call
        body = await _get_json(srv.url + "/health")
        assert body["status"] == "ok"
        engine.remove_call(call)
    finally:
        await runner.cleanup()


class _NullSink:
    def send_media(self, frame): ...
    def send_checkpoint(self, item_id, ms): ...
    def send_clear(self): ...
    def speech_started(self): ...
    def end_of_turn(self, info): ...
    def barge_in(self, item_id, heard_ms): ...
    def playout_idle(self): ...
