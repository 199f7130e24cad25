from __future__ import annotations

import pytest

from ops import config
from ops.cli import main


def test_defaults_need_nothing():
    cfg = config.load(environ={})
    assert cfg.server.port == 8080
    assert cfg.brain_kind == "scripted"
    assert cfg.twilio.validate_signatures is True
    assert cfg.vad.engine == "webrtc"


def test_env_overrides_are_typed():
    cfg = config.load(environ={
        "LEADLINE_SERVER_PORT": "9000",
        "LEADLINE_VAD_ENGINE": "silero",
        "LEADLINE_VAD_STOP_MS": "650",
        "LEADLINE_TWILIO_VALIDATE_SIGNATURES": "false",
        "LEADLINE_SCRIPTED_MENU": '{"1" = "message", "9" = "repeat"}',
    })
    assert cfg.server.port == 9000
    assert cfg.vad.engine == "silero"
    assert cfg.vad.stop_ms == 650
    assert cfg.twilio.validate_signatures is False
    assert cfg.scripted.menu == {"1": "message", "9": "repeat"}


def test_well_known_variables_are_honoured_and_prefixed_ones_win():
    cfg = config.load(environ={"TWILIO_AUTH_TOKEN": "a" * 32, "OPENAI_API_KEY": "sk-test"})
    assert cfg.twilio.auth_token == "a" * 32
    assert cfg.brain_kind == "openai"
    cfg = config.load(environ={"TWILIO_AUTH_TOKEN": "a", "LEADLINE_TWILIO_AUTH_TOKEN": "b"})
    assert cfg.twilio.auth_token == "b"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LEADLINE_SERVER_PORT": "eighty"}, "server.port"),
        ({"LEADLINE_SERVER_PORT": "70000"}, "server"),
        ({"LEADLINE_VAD_ENGINE": "magic"}, "vad.engine"),
        ({"LEADLINE_VAD_BOGUS": "1"}, "vad_bogus"),
        ({"LEADLINE_TWILIO_VALIDATE_SIGNATURES": "maybe"}, "twilio.validate_signatures"),
    ],
)
def test_bad_env_values_name_the_key(env, needle):
    with pytest.raises(config.ConfigError, match=needle.replace(".", r"\.")):
        config.load(environ=env)


def test_file_unknown_key_and_bad_value(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[vad]\nstop_ms = 700\nsilence = 3\n")
    with pytest.raises(config.ConfigError, match="silence"):
        config.load(path, environ={})
    path.write_text("[media]\nmark_interval_ms = 'often'\n")
    with pytest.raises(config.ConfigError, match=r"media\.mark_interval_ms"):
        config.load(path, environ={})
    path.write_text("[nosuchsection]\nx = 1\n")
    with pytest.raises(config.ConfigError, match="nosuchsection"):
        config.load(path, environ={})
    path.write_text("[vad\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(path, environ={})
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "missing.toml", environ={})


def test_file_then_env(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 9100\nenvironment = 'staging'\n[vad]\nstop_ms = 700\n")
    cfg = config.load(path, environ={"LEADLINE_VAD_STOP_MS": "800"})
    assert (cfg.server.port, cfg.server.environment, cfg.vad.stop_ms) == (9100, "staging", 800)


def test_config_show_masks_secrets(capsys, monkeypatch):
    monkeypatch.setenv("LEADLINE_TWILIO_AUTH_TOKEN", "supersecrettoken123456")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdefghijklmnopqrstuvwxyz")
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert "supersecrettoken123456" not in out
    assert "abcdefghijklmnopqrstuvwxyz" not in out
    assert '"effective_kind": "openai"' in out


def test_config_show_reports_errors(capsys, monkeypatch):
    monkeypatch.setenv("LEADLINE_VAD_ENGINE", "magic")
    assert main(["config", "show"]) == 2
    assert "vad.engine" in capsys.readouterr().err
