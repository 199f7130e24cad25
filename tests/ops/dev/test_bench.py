"""`leadline bench calls`: the caller script on a virtual clock, the wire shell, and a real run.

The script and the message handling are checked exactly, without sockets. The
end-to-end test starts a real `leadline serve` subprocess (signatures on) and
runs the real CLI against it: signed calls, frames both ways, barge-ins and
ends of turn measured, nothing dropped, one JSON line with every field.
"""

from __future__ import annotations

import binascii
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs import ulaw
from ops.dev.bench import (
    SILENT_B64,
    BenchOptions,
    CallerScript,
    Phase,
    _BenchSide,
    _Call,
    _split,
    b64_frames,
    resolve_auth_token,
)
from ops.dev.sim import Playout
from ops.dev.twilio_side import TwilioSide
from telephony.twilio.streams import Media, Outbound, Start, StreamProtocol
from tests.audio import speech_ulaw
from tests.fakes.clock import ManualClock

TOKEN = "bench-test-token"
FIELDS = {
    "calls", "seconds", "frames_in", "frames_out", "frames_sent", "frames_received",
    "server_lag_ms", "barge_in_ms", "end_of_turn_ms", "underruns", "dropped_calls",
    "server_cpu_cores", "server_rss_mb", "server_rss_per_call_kb", "generator_cpu_cores",
    "generator_bottleneck", "generator_send_lag_ms", "valid", "vad", "server_pid",
    "server_cpu", "generator_cpu",
}
STOP_MS = 500.0
AGENT_FRAME = b"\x10" * ulaw.FRAME_BYTES  # agent audio as it arrives (contents do not matter)

# --- pre-rendered audio ------------------------------------------------------------------


def test_b64_frames_cut_quiet_edges_and_pad_the_tail() -> None:
    speech = speech_ulaw("Hello there, this is a test.")
    padded = ulaw.SILENT_FRAME * 5 + speech + ulaw.SILENT_FRAME * 5 + b"\xff" * 7
    frames = b64_frames(padded)
    raw = [binascii.a2b_base64(f) for f in frames]
    assert all(len(f) == ulaw.FRAME_BYTES for f in raw)
    assert raw[0] != ulaw.SILENT_FRAME and raw[-1] != ulaw.SILENT_FRAME
    assert len(frames) <= len(speech) // ulaw.FRAME_BYTES + 1


def test_b64_frames_refuse_silence() -> None:
    with pytest.raises(ValueError):
        b64_frames(ulaw.SILENT_FRAME * 50)
    with pytest.raises(ValueError):
        b64_frames(b"")


def test_options_refuse_bad_values() -> None:
    for bad in ({"calls": 0}, {"seconds": 0}, {"ramp_seconds": -1}, {"wait_for_agent_s": 0},
                {"turn_text": " "}):
        with pytest.raises(ValueError):
            BenchOptions(**bad)  # type: ignore[arg-type]


# --- the caller script on a virtual clock ---------------------------------------------------

TURN = tuple(f"T{i}".encode() for i in range(50))  # 1 s of "speech"
BARGE = tuple(f"B{i}".encode() for i in range(25))  # 0.5 s


class Driver:
    """Drives a script tick by tick; the 'server' is whatever the test does between ticks."""

    def __init__(self, script: CallerScript) -> None:
        self.script = script
        self.clock = ManualClock(0.0)
        self.sent: list[bytes] = []

    @property
    def t(self) -> float:
        return self.clock.now

    def tick(self, agent: bool = False) -> bytes:
        self.clock.now = t = round(self.clock.now + 0.02, 6)
        if agent:
            self.script.agent_media(t, AGENT_FRAME)
        self.script.advance(t)
        frame = self.script.payload(t)
        self.sent.append(frame)
        return frame


def test_script_barges_into_the_greeting_then_listens_to_the_reply() -> None:
    s = CallerScript(TURN, BARGE, stop_ms=STOP_MS, barge_after_s=1.0, quiet_s=0.4)
    c = Driver(s)
    for _ in range(10):  # silence before the greeting
        assert c.tick() == SILENT_B64
    assert s.phase is Phase.AWAIT_AGENT
    for _ in range(50):  # 1 s of greeting: still silent
        assert c.tick(agent=True) == SILENT_B64
    assert s.phase is Phase.BARGE_WAIT
    assert c.tick(agent=True) == BARGE[0]  # talks over it now
    onset = c.t - 0.02
    for i in range(1, 6):
        assert c.tick(agent=True) == BARGE[i]
    s.agent_clear(c.t + 0.005)  # the server cut its greeting
    assert s.barge_in == [(c.t + 0.005, pytest.approx((c.t + 0.005 - onset) * 1000))]
    while s.phase is Phase.SPEAKING:  # finishes its sentence over silence
        c.tick()
    assert c.sent[-1] == BARGE[-1]
    end = c.t
    for _ in range(30):  # 600 ms: the server's stop_ms plus a little
        assert c.tick() == SILENT_B64
    c.tick(agent=True)  # the reply
    assert s.end_of_turn == [(c.t, pytest.approx((c.t - end) * 1000 - STOP_MS))]
    assert s.phase is Phase.LISTENING
    for _ in range(100):  # 2 s reply, heard out (never talked over)
        assert c.tick(agent=True) == SILENT_B64
    frame = SILENT_B64
    for _ in range(40):  # then quiet_s of silence and the caller speaks a full turn
        frame = c.tick()
        if frame != SILENT_B64:
            break
    assert frame == TURN[0]
    assert s.clears == 1 and s.barge_missed == 0 and s.no_reply == 0


def test_script_counts_a_barge_in_the_server_ignored() -> None:
    s = CallerScript(TURN, BARGE, stop_ms=STOP_MS, barge_after_s=0.2)
    c = Driver(s)
    while s.phase is not Phase.SPEAKING:
        c.tick(agent=True)
    while s.phase is Phase.SPEAKING:
        c.tick(agent=True)  # the agent never stops
    assert s.barge_missed == 1 and s.barge_in == []
    for _ in range(50):
        c.tick()
    c.tick(agent=True)  # new audio after the sentence: may be the old response, not measured
    assert s.end_of_turn == []


def test_script_speaks_again_when_nobody_answers() -> None:
    s = CallerScript(TURN, BARGE, stop_ms=STOP_MS, wait_for_agent_s=1.0)
    c = Driver(s)
    frames = [c.tick() for _ in range(55)]
    assert frames[49] == TURN[0] and s.no_reply == 1


def test_script_hears_out_a_response_shorter_than_the_barge_delay() -> None:
    s = CallerScript(TURN, BARGE, stop_ms=STOP_MS, barge_after_s=1.0, quiet_s=0.2)
    c = Driver(s)
    for _ in range(10):
        c.tick(agent=True)  # 200 ms greeting, too short to talk over
    frames = [c.tick() for _ in range(80)]
    assert BARGE[0] not in frames and TURN[0] in frames
    assert s.barge_missed == 0


def test_script_refuses_empty_utterances() -> None:
    with pytest.raises(ValueError):
        CallerScript((), BARGE, stop_ms=STOP_MS)


# --- the wire -------------------------------------------------------------------------------


def test_pre_encoded_media_is_byte_identical_to_twilio_side_and_accepted() -> None:
    frames = [speech_ulaw("One two three.")[i : i + 160] for i in range(0, 1600, 160)]
    fast = _BenchSide("MZ1", "CA1", "AC1", {"From": "+1"})
    ref = TwilioSide("MZ1", "CA1", "AC1", {"From": "+1"})
    start = fast.start()
    assert start == ref.start()
    server = StreamProtocol()
    assert isinstance(server.receive(start), Start)
    for f in frames:
        msg = fast.media_b64(binascii.b2a_base64(f, newline=False))
        assert msg == ref.media(f)
        event = server.receive(msg)
        assert isinstance(event, Media) and event.audio == f
    assert fast.mark("x") == ref.mark("x") and fast.stop() == ref.stop()


def _call(sid: str = "MZabc") -> _Call:
    script = CallerScript(TURN, BARGE, stop_ms=STOP_MS)
    return _Call(0, script, _BenchSide(sid, "CA1", "AC1"))


def test_call_reads_what_the_server_sends() -> None:
    call = _call()
    out = Outbound("MZabc")
    audio = speech_ulaw("Hi.")[:160]
    call.receive(out.media(audio), 1.0)
    call.receive(out.mark("scripted-1:100"), 1.0)
    assert call.frames_received == 1
    assert call.script.playout.received_bytes == 160 and call.script.playout.pending_marks == 1
    call.receive(out.clear(), 1.01)
    assert call.script.clears == 1 and call.script.playout.pending_marks == 0
    # A differently laid out media message takes the slow path and still counts.
    other = json.dumps({"streamSid": "MZabc", "event": "media",
                        "media": {"payload": binascii.b2a_base64(audio).decode().strip()}})
    call.receive(other.encode(), 1.1)
    assert call.frames_received == 2 and call.protocol_errors == 0


def test_a_chunk_of_frames_counts_every_frame_and_plays_in_real_time() -> None:
    call = _call()
    out = Outbound("MZabc")
    call.receive(out.media(speech_ulaw("Hello there.")[:800]), 1.0)  # 5 frames, one message
    call.receive(out.mark("r:100"), 1.0)
    assert call.frames_received == 5
    playout = call.script.playout
    assert playout.advance(1.08) == [] and playout.busy  # 80 ms in: still playing
    assert playout.advance(1.1) == ["r:100"] and not playout.busy  # echoed once played


@pytest.mark.parametrize("data", [
    b"", b"{", b"not json", b'{"event":"nope","streamSid":"MZabc"}',
    b'{"event":"media","streamSid":"MZabc","media":{"payload":"@@@"}}',  # bad base64, fast path
    b'{"event":"media","streamSid":"MZother","media":{"payload":"AAAA"}}',  # wrong stream
    b'{"event":"mark","streamSid":"MZabc"}',
])
def test_call_counts_bad_server_messages(data: bytes) -> None:
    call = _call()
    call.receive(data, 1.0)
    assert call.protocol_errors == 1 and call.frames_received == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.builds(
    lambda tail: b'{"event":"media","streamSid":"MZabc","media":{"payload":"' + tail,
    st.binary(max_size=300)))
def test_call_never_raises_on_garbage(data: bytes) -> None:
    call = _call()
    call.receive(data, 1.0)
    assert call.protocol_errors + call.frames_received + call.script.clears <= 1


# --- auth token and CPU split ------------------------------------------------------------------


def _no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TWILIO_AUTH_TOKEN", "LEADLINE_TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def test_auth_token_flag_wins_over_env_and_config(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    _no_token_env(monkeypatch)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "from-env")
    cfg = tmp_path / "leadline.toml"
    cfg.write_text('[twilio]\nauth_token = "from-file"\n')
    assert resolve_auth_token("flag", str(cfg)) == "flag"
    assert resolve_auth_token("", None) == ""  # an explicit empty token: unsigned


def test_auth_token_from_either_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_token_env(monkeypatch)
    assert resolve_auth_token(None) == ""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "plain")
    assert resolve_auth_token(None) == "plain"
    monkeypatch.setenv("LEADLINE_TWILIO_AUTH_TOKEN", "prefixed")
    assert resolve_auth_token(None) == "prefixed"  # the LEADLINE_ name wins, as in config


def test_auth_token_from_config_file_then_env_over_it(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    _no_token_env(monkeypatch)
    cfg = tmp_path / "leadline.toml"
    cfg.write_text('[twilio]\nauth_token = "from-file"\n')
    assert resolve_auth_token(None, str(cfg)) == "from-file"
    monkeypatch.setenv("LEADLINE_TWILIO_AUTH_TOKEN", "from-env")
    assert resolve_auth_token(None, str(cfg)) == "from-env"


def test_auth_token_falls_back_to_env_when_config_is_unreadable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_token_env(monkeypatch)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "plain")
    assert resolve_auth_token(None, str(tmp_path / "missing.toml")) == "plain"


def test_cpu_split_per_call() -> None:
    got = _split(3.0, 1.0, 10.0, 100)
    assert got == {"user_cores": 0.3, "system_cores": 0.1,
                   "user_ms_per_call_s": 3.0, "system_ms_per_call_s": 1.0}
    assert _split(None, None, 10.0, 100)["user_cores"] is None


def test_playout_model_is_the_sims() -> None:
    assert type(_call().script.playout) is Playout  # marks/underruns as Twilio's buffer


# --- end to end against a real server ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    ours = ("LEADLINE_", "TWILIO_", "OPENAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env |= {"LEADLINE_SERVER_PORT": str(port), "LEADLINE_SERVER_HOST": "127.0.0.1",
            "LEADLINE_TWILIO_AUTH_TOKEN": TOKEN, "LEADLINE_LOG_LEVEL": "WARNING"}
    cwd = tmp_path_factory.mktemp("served")
    log = (cwd / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "serve"], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + Path(log.name).read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _bench(*args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", "bench", "calls", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_bench_drives_signed_calls_and_measures_both_directions(served: str) -> None:
    done = _bench("--url", served, "--calls", "3", "--seconds", "8", "--ramp-seconds", "0.5",
                  "--auth-token", TOKEN)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    fig = json.loads(lines[0])
    assert FIELDS <= fig.keys()
    assert fig["calls"] == 3 and fig["calls_connected"] == 3
    assert fig["dropped_calls"] == 0 and fig["drop_reasons"] == {}
    assert fig["frames_sent"] > 0 and fig["frames_in"] > 0
    assert fig["frames_received"] > 0 and fig["frames_out"] > 0
    assert fig["barge_in_ms"]["n"] >= 1 and fig["barge_in_ms"]["p50"] is not None
    assert fig["end_of_turn_ms"]["n"] >= 1 and fig["end_of_turn_ms"]["p99"] is not None
    assert fig["marks_echoed"] > 0 and fig["protocol_errors"] == 0
    assert set(fig["server_lag_ms"]) == {"p50", "p99"}
    assert fig["vad"] in ("webrtc", "silero") and fig["server_pid"] > 0
    assert isinstance(fig["valid"], bool) and isinstance(fig["generator_bottleneck"], bool)
    for side in ("server_cpu", "generator_cpu"):
        split = fig[side]
        assert split["user_cores"] > 0 and split["system_cores"] >= 0
        assert split["user_ms_per_call_s"] > 0 and split["system_ms_per_call_s"] >= 0


@pytest.mark.e2e
def test_bench_signs_with_the_env_token_like_sim_call(served: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("TWILIO_AUTH_TOKEN")}
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench", "calls", "--url", served, "--calls", "1",
         "--seconds", "0.5", "--ramp-seconds", "0"],
        capture_output=True, text=True, timeout=40, env=env | {"TWILIO_AUTH_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    fig = json.loads(done.stdout)
    assert fig["drop_reasons"] == {} and fig["calls_connected"] == 1


@pytest.mark.e2e
def test_refused_calls_are_dropped_calls(served: str) -> None:
    done = _bench("--url", served, "--calls", "2", "--seconds", "0.5", "--ramp-seconds", "0",
                  "--auth-token", "wrong-token")
    assert done.returncode == 0, done.stderr
    fig = json.loads(done.stdout)
    assert fig["dropped_calls"] == 2 and fig["drop_reasons"] == {"webhook 403": 2}
    assert fig["calls_connected"] == 0 and fig["valid"] is False


def test_unreachable_server_is_an_error_not_figures() -> None:
    done = _bench("--url", f"http://127.0.0.1:{_free_port()}", "--calls", "1", "--seconds", "1")
    assert done.returncode == 1 and done.stdout == ""
    assert "error" in done.stderr


def test_bad_arguments_exit_2() -> None:
    done = _bench("--calls", "0")
    assert done.returncode == 2 and "calls" in done.stderr
