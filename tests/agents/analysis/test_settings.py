"""`[analysis]` at load: unknown keys and bad values fail naming the key; the API key is
masked in `config show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import config as config_mod


def _load(tmp_path: Path, body: str) -> config_mod.Config:
    path = tmp_path / "leadline.toml"
    path.write_text(body, encoding="utf-8")
    return config_mod.load(str(path), environ={})


def test_defaults_and_env(tmp_path: Path) -> None:
    cfg = config_mod.load(None, environ={"LEADLINE_ANALYSIS_SUMMARY_TIMEOUT_S": "2.5"})
    assert cfg.analysis.enabled and cfg.analysis.summary_timeout_s == 2.5
    assert cfg.analysis.notify_channels == ["sms", "email"]
    assert not cfg.analysis.model_configured


@pytest.mark.parametrize(("body", "key"), [
    ("[analysis]\nsumary_model = 'x'\n", "sumary_model"),
    ("[analysis]\nsummary_timeout_s = 0\n", "summary_timeout_s"),
    ("[analysis]\nnotify_channels = ['fax']\n", "notify_channels"),
    ("[analysis]\nnotify_channels = ['sms', 'sms']\n", "notify_channels"),
    ("[analysis]\nsummary_sentences = 50\n", "summary_sentences"),
])
def test_bad_keys_fail_naming_the_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(config_mod.ConfigError, match=key):
        _load(tmp_path, body)


def test_api_key_is_masked(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[analysis]\nsummary_base_url = 'http://127.0.0.1:9/v1'\n"
                          "summary_api_key = 'sk-secret-0123456789'\n")
    assert cfg.analysis.model_configured
    shown = config_mod.masked(cfg)["analysis"]["summary_api_key"]
    assert "secret" not in shown
