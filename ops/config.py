"""The one config: a TOML file, then `LEADLINE_<SECTION>_<KEY>` environment overrides.

Every section is a msgspec struct declared by the layer that reads it; this
module only composes them, applies overrides and turns msgspec's validation
errors into messages that name the offending key. Unknown keys are errors, so
a typo never silently keeps a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from agents.analysis.settings import AnalysisSettings
from agents.booking.settings import BookingSettings
from agents.business.settings import AlertSettings, BusinessSettings, validate_businesses
from agents.chat.settings import SmsSettings
from agents.coach.settings import CoachSettings
from agents.compliance.settings import ComplianceSettings
from agents.nlu.settings import NluSettings
from agents.sales.settings import SalesSettings, anchor_paths
from agents.settings import BrainSettings, OpenAISettings, ScriptedSettings
from media.settings import MediaSettings, RecordingSettings, VadSettings
from ops.api.settings import ApiSettings
from sms.campaigns.settings import CampaignSettings
from sms.email.settings import EmailSettings
from sms.settings import OutboxSettings
from store.artifacts import ArtifactSettings
from store.settings import SessionsSettings, StoreSettings
from telephony.dialer.settings import DialerSettings
from telephony.livekit.settings import LiveKitSettings
from telephony.settings import TwilioSettings

ENV_PREFIX = "LEADLINE_"
# Well-known variables honoured as well, below their LEADLINE_ spelling.
ENV_ALIASES = {
    "TWILIO_AUTH_TOKEN": ("twilio", "auth_token"),
    "TWILIO_ACCOUNT_SID": ("twilio", "account_sid"),
    "OPENAI_API_KEY": ("openai", "api_key"),
}
SECRET_KEYS = {("twilio", "auth_token"), ("openai", "api_key"), ("sms", "llm_api_key"),
               ("email", "password"), ("livekit", "api_secret"), ("email", "unsubscribe_secret"),
               ("artifacts", "secret_access_key"), ("coach", "api_key"),
               ("booking", "link_secret"), ("analysis", "summary_api_key")}


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key."""


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "0.0.0.0"
    port: int = 8080
    environment: str = "development"
    # Hard cap on concurrent calls; more get a polite TwiML rejection.
    max_calls: int = 2000
    # Seconds between checks of the config file's mtime (0 = only SIGHUP).
    reload_poll_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.max_calls < 1:
            raise ValueError("max_calls must be at least 1")


class LogSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    twilio: TwilioSettings = msgspec.field(default_factory=TwilioSettings)
    vad: VadSettings = msgspec.field(default_factory=VadSettings)
    media: MediaSettings = msgspec.field(default_factory=MediaSettings)
    recording: RecordingSettings = msgspec.field(default_factory=RecordingSettings)
    brain: BrainSettings = msgspec.field(default_factory=BrainSettings)
    scripted: ScriptedSettings = msgspec.field(default_factory=ScriptedSettings)
    openai: OpenAISettings = msgspec.field(default_factory=OpenAISettings)
    sessions: SessionsSettings = msgspec.field(default_factory=SessionsSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    sms: SmsSettings = msgspec.field(default_factory=SmsSettings)
    compliance: ComplianceSettings = msgspec.field(default_factory=ComplianceSettings)
    nlu: NluSettings = msgspec.field(default_factory=NluSettings)
    sms_outbox: OutboxSettings = msgspec.field(default_factory=OutboxSettings)
    dialer: DialerSettings = msgspec.field(default_factory=DialerSettings)
    livekit: LiveKitSettings = msgspec.field(default_factory=LiveKitSettings)
    campaigns: CampaignSettings = msgspec.field(default_factory=CampaignSettings)
    email: EmailSettings = msgspec.field(default_factory=EmailSettings)
    artifacts: ArtifactSettings = msgspec.field(default_factory=ArtifactSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    # `[[businesses]]`: one table per business; the called number picks one per call.
    businesses: list[BusinessSettings] = msgspec.field(default_factory=list)
    owner_alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    # `[sales]`: named sales scripts (TOML files) and the default one.
    sales: SalesSettings = msgspec.field(default_factory=SalesSettings)
    coach: CoachSettings = msgspec.field(default_factory=CoachSettings)
    booking: BookingSettings = msgspec.field(default_factory=BookingSettings)
    # `[analysis]`: the end-of-call record and the owner's new-lead notice.
    analysis: AnalysisSettings = msgspec.field(default_factory=AnalysisSettings)

    def __post_init__(self) -> None:
        validate_businesses(self.businesses)

    @property
    def brain_kind(self) -> Literal["scripted", "openai"]:
        """The brain new calls get (`agents.selection` decides what `auto` means)."""
        from agents.selection import resolve_kind

        return resolve_kind(self.brain, self.openai)


def _section_fields() -> dict[str, dict[str, Any]]:
    """section → {key: field type} from the structs, for typing env overrides."""
    out: dict[str, dict[str, Any]] = {}
    for section in msgspec.structs.fields(Config):
        if not isinstance(section.type, type) or not issubclass(section.type, msgspec.Struct):
            continue  # a list of tables ([[businesses]]) has no single env key
        out[section.name] = {f.name: f.type for f in msgspec.structs.fields(section.type)}
    return out


def _parse_env_value(raw: str, type_: Any) -> Any:
    """Env values are strings; coerce them with the field's own type (TOML syntax for lists)."""
    if type_ is str:
        return raw
    origin = getattr(type_, "__origin__", None)
    if type_ in (int, float, bool) or origin is Literal or str(type_).startswith("typing.Literal"):
        if type_ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected a boolean, got {raw!r}")
        if type_ is int:
            return int(raw)
        if type_ is float:
            return float(raw)
        return raw
    # dicts/lists: accept a TOML inline value.
    return tomllib.loads(f"v = {raw}")["v"]


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    fields = _section_fields()
    merged: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, raw: str, var: str) -> None:
        try:
            value = _parse_env_value(raw, fields[section][key])
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{var}: bad value for {section}.{key}: {exc}") from None
        merged.setdefault(section, {})[key] = value

    for var, (section, key) in ENV_ALIASES.items():
        if environ.get(var):
            put(section, key, environ[var], var)
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var.startswith("LEADLINE_TEST_"):
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        for section in sorted(fields, key=len, reverse=True):
            if rest.startswith(section + "_") and rest[len(section) + 1 :] in fields[section]:
                put(section, rest[len(section) + 1 :], raw, var)
                break
        else:
            if rest.split("_", 1)[0] in fields and rest not in ("require_services",):
                raise ConfigError(f"{var}: unknown config key {rest!r}")
    return merged


def _merge(base: dict[str, Any], extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        current = out.get(section)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"[{section}] must be a table")
        out[section] = {**(current or {}), **values}
    return out


def build(data: Mapping[str, Any]) -> Config:
    try:
        return msgspec.convert(dict(data), Config)
    except msgspec.ValidationError as exc:
        # msgspec names the path, e.g. "Expected `int`, got `str` - at `$.server.port`".
        msg = str(exc).replace("$.", "")
        raise ConfigError(f"invalid config: {msg}") from None
    except ValueError as exc:  # __post_init__ checks
        raise ConfigError(f"invalid config: {exc}") from None


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Defaults ← file (if given) ← environment. Raises ConfigError naming the key."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            # Script paths count from the config file, not the working directory.
            data = anchor_paths(data, Path(path).parent)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return build(_merge(data, env_overrides(environ)))


def masked(config: Config) -> dict[str, Any]:
    """The effective config as plain data with secrets masked (for `config show`, /health)."""
    data = msgspec.to_builtins(config)
    for section, key in SECRET_KEYS:
        value = data[section][key]
        if value:
            data[section][key] = value[:4] + "…" if len(value) > 12 else "***"
    google = data["booking"]["google"]  # a nested table: its secrets by name
    for key in ("client_secret", "refresh_token"):
        if google[key]:
            google[key] = "***"
    return data
