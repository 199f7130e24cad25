"""The `[sms]` section: defaults, validation, env overrides and secret masking."""

from __future__ import annotations

import msgspec
import pytest

from agents.chat.settings import TEMPLATE_INTENTS, SmsSettings
from ops import config


def test_defaults_cover_every_template_intent() -> None:
    settings = SmsSettings()
    for intent in TEMPLATE_INTENTS:
        assert settings.template(intent) == settings.templates[intent]
    assert settings.llm_base_url == ""
    assert settings.max_reply_chars == 320


def test_partial_templates_keep_defaults_for_the_rest() -> None:
    settings = msgspec.convert({"templates": {"question": "Ask away"}}, SmsSettings)
    assert settings.template("question") == "Ask away"
    assert "{booking_url}" in settings.template("booking")
    assert settings.template("no_such_intent") == SmsSettings().template("unknown")


@pytest.mark.parametrize("data, needle", [
    ({"templates": {"greeting": "hi"}}, "unknown intent"),
    ({"llm_timeout_s": 0}, "llm_timeout_s"),
    ({"max_mps": -1}, "max_mps"),
    ({"max_reply_chars": 5}, "max_reply_chars"),
    ({"no_such_key": 1}, "no_such_key"),
])
def test_bad_values_are_config_errors_naming_the_key(data: dict, needle: str) -> None:
    with pytest.raises(config.ConfigError, match=needle):
        config.build({"sms": data})


def test_env_overrides_and_masking() -> None:
    cfg = config.load(None, {
        "LEADLINE_SMS_LLM_API_KEY": "sk-0123456789abcdef",
        "LEADLINE_SMS_MAX_MPS": "2.5",
        "LEADLINE_SMS_TEMPLATES": '{ unknown = "Got it" }',
    })
    assert cfg.sms.max_mps == 2.5
    assert cfg.sms.template("unknown") == "Got it"
    assert config.masked(cfg)["sms"]["llm_api_key"] == "sk-0…"
