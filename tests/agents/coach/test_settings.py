"""`[coach]` in the one config: defaults, env overrides, unknown keys named at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import ConfigError, load, masked


def test_defaults_and_env_overrides() -> None:
    cfg = load(environ={})
    assert cfg.coach.enabled is False and cfg.coach.interval_s == 15.0
    cfg = load(environ={"LEADLINE_COACH_ENABLED": "true", "LEADLINE_COACH_INTERVAL_S": "20",
                        "LEADLINE_COACH_OBJECTIVES": '["Say hello", "Book"]',
                        "LEADLINE_COACH_API_KEY": "sk-coach-0123456789"})
    assert cfg.coach.enabled and cfg.coach.interval_s == 20.0
    assert cfg.coach.objectives == ("Say hello", "Book")
    assert masked(cfg)["coach"]["api_key"] == "sk-c…"


def test_an_unknown_or_bad_key_fails_at_load_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "leadline.toml"
    path.write_text("[coach]\nenabled = true\nintervl_s = 10\n")
    with pytest.raises(ConfigError, match="intervl_s"):
        load(path, environ={})
    path.write_text("[coach]\ninterval_s = 0.1\n")
    with pytest.raises(ConfigError, match=r"coach\.interval_s"):
        load(path, environ={})
    with pytest.raises(ConfigError, match="LEADLINE_COACH_TIMEOUT_S"):
        load(environ={"LEADLINE_COACH_TIMEOUT_S": "soon"})
