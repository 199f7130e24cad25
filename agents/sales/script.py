"""A sales script: stages, objections, scheduling rule, forbidden claims — as data.

A script is a TOML file (the built-in one is `scripts/default.toml`) checked in full
when it is loaded, so a typo in a key or a placeholder fails at config load, naming
it, instead of being spoken to a prospect. Lines are templates over the contact's
fields; `render_line` fills them so that a field the job did not carry is left out
cleanly ("Hi, this is Alex") or replaced by the script's fallback ("your practice"),
never spoken as "{firstName}" or "None".

Pure: loading reads one file; nothing else here does I/O.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from agents.nlu.intents import normalise

# The stages, in the order a call goes through them.
STAGES = ("greeting", "intro", "qualify", "pitch", "schedule", "close")
# Contact fields (the BullMQ job's camelCase names) and the script's own names.
CONTACT_FIELDS = ("firstName", "lastName", "practiceName", "state", "email", "phone")
PLACEHOLDERS = (*CONTACT_FIELDS, "company", "agentName")
# What JavaScript producers send for "nothing": never spoken.
_EMPTY_VALUES = frozenset({"", "none", "null", "undefined", "nan", "n/a"})
_PLACEHOLDER = re.compile(r"\{([^{}\s]*)\}")
MAX_SCRIPT_BYTES = 256 * 1024
MAX_LINE_CHARS = 1_000


class ScriptError(ValueError):
    """A script that cannot be used; the message names the file and the key."""


class Stage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Said on entering the stage (joined with a space).
    lines: list[str] = []
    # Words in the callee's reply that move the call to the next stage; empty: any reply.
    advance: list[str] = []
    # Said when a reply does not move the call on (default: the stage's last line again).
    retry: str = ""


class Stages(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    greeting: Stage
    intro: Stage = Stage()
    qualify: Stage = Stage()
    pitch: Stage = Stage()
    schedule: Stage = Stage()
    close: Stage = Stage()

    def get(self, name: str) -> Stage:
        return getattr(self, name)  # type: ignore[no-any-return]


class Objection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # The tag recorded on the call and in the dialer's outcome (`objections`).
    key: str
    # What the agent answers.
    handling: str
    # Phrases (normalised words) that raise it; empty: the built-in script's for this key.
    triggers: list[str] = []


class ScheduleWhen(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # The earliest stage from which an interest signal jumps straight to scheduling.
    after: str = "pitch"
    # The callee's words that show interest.
    signals: list[str] = []
    # The rule in words, for the realtime model.
    note: str = ""


class Objectives(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    items: list[str] = []


class Forbidden(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    claims: list[str] = []


class _ScriptFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    stages: Stages
    disclosure: str
    company: str = ""
    agent_name: str = ""
    declined: str = "Thank you for your time. Goodbye."
    fallbacks: dict[str, str] = {}
    schedule_when: ScheduleWhen = ScheduleWhen()
    objectives: Objectives = Objectives()
    forbidden: Forbidden = Forbidden()
    objections: list[Objection] = []


class SalesScript(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded, checked script. `objectives` is the coach's checklist."""

    name: str
    stages: Stages
    disclosure: str
    company: str
    agent_name: str
    declined: str
    fallbacks: dict[str, str]
    schedule_when: ScheduleWhen
    objectives: list[str]
    forbidden: list[str]
    objections: list[Objection]
    # Normalised trigger phrases per objection key, in the script's order.
    triggers: dict[str, tuple[str, ...]]
    source: str = ""

    def objection(self, key: str) -> Objection | None:
        return next((o for o in self.objections if o.key == key), None)

    def stage(self, name: str) -> Stage:
        return self.stages.get(name)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in the file with its location, for the placeholder check."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


# Strings that are spoken (and may hold placeholders); the rest are matched words.
def _spoken(where: str) -> bool:
    parts = re.sub(r"\[\d+\]", "", where).split(".")
    if parts[0] == "stages":
        return len(parts) >= 3 and parts[2] in ("lines", "retry")
    if parts[0] == "objections":
        return parts[-1] == "handling"
    return parts[0] in ("disclosure", "declined", "fallbacks", "name", "company",
                        "agent_name")


def _check(raw: _ScriptFile, data: dict[str, Any], origin: str,
           builtin: SalesScript | None) -> SalesScript:
    for where, text in _strings(data, ""):
        if not _spoken(where):
            continue
        if len(text) > MAX_LINE_CHARS:
            raise ScriptError(f"{origin}: {where} is longer than {MAX_LINE_CHARS} characters")
        for name in _PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                raise ScriptError(f"{origin}: unknown placeholder {{{name}}} in {where} "
                                  f"(known: {', '.join(PLACEHOLDERS)})")
    for key in raw.fallbacks:
        if key not in PLACEHOLDERS:
            raise ScriptError(f"{origin}: unknown placeholder {key!r} in fallbacks")
    if not raw.name.strip():
        raise ScriptError(f"{origin}: name must not be empty")
    if not raw.stages.greeting.lines:
        raise ScriptError(f"{origin}: stages.greeting needs at least one line")
    if not raw.disclosure.strip():
        raise ScriptError(f"{origin}: disclosure must not be empty (the AI disclosure line)")
    if raw.schedule_when.after not in STAGES[:STAGES.index("schedule")]:
        raise ScriptError(f"{origin}: schedule_when.after must be one of "
                          f"{', '.join(STAGES[:4])}, got {raw.schedule_when.after!r}")
    triggers: dict[str, tuple[str, ...]] = {}
    for i, objection in enumerate(raw.objections):
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", objection.key):
            raise ScriptError(f"{origin}: objections[{i}].key must be lower_snake_case, "
                              f"got {objection.key!r}")
        if objection.key in triggers:
            raise ScriptError(f"{origin}: objections[{i}].key {objection.key!r} is repeated")
        phrases = tuple(p for p in (normalise(t) for t in objection.triggers) if p)
        if not phrases and builtin is not None:
            phrases = builtin.triggers.get(objection.key, ())
        if not phrases:
            raise ScriptError(f"{origin}: objections[{i}] ({objection.key!r}) has no triggers "
                              "and the built-in script has none for that key")
        if not objection.handling.strip():
            raise ScriptError(f"{origin}: objections[{i}].handling must not be empty")
        triggers[objection.key] = phrases
    return SalesScript(
        name=raw.name.strip(), stages=raw.stages, disclosure=raw.disclosure.strip(),
        company=raw.company, agent_name=raw.agent_name, declined=raw.declined,
        fallbacks=dict(raw.fallbacks), schedule_when=raw.schedule_when,
        objectives=list(raw.objectives.items), forbidden=list(raw.forbidden.claims),
        objections=list(raw.objections), triggers=triggers, source=origin)


def _validation_message(exc: msgspec.ValidationError) -> str:
    msg = str(exc)
    match = re.match(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?", msg)
    if match:
        where = f" in {match.group(2)}" if match.group(2) else ""
        return f"unknown key {match.group(1)!r}{where}"
    return msg.replace("$.", "")


def parse_script(text: str, origin: str = "<script>", *,
                 builtin: SalesScript | None = None, inherit: bool = True) -> SalesScript:
    """A script from TOML text; ScriptError names what is wrong and where. Objections
    without triggers take the built-in script's for their key (`inherit`)."""
    if builtin is None and inherit:
        builtin = builtin_script()
    if len(text.encode("utf-8", "replace")) > MAX_SCRIPT_BYTES:
        raise ScriptError(f"{origin}: larger than {MAX_SCRIPT_BYTES} bytes")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{origin}: not valid TOML: {exc}") from None
    try:
        raw = msgspec.convert(data, _ScriptFile)
    except msgspec.ValidationError as exc:
        raise ScriptError(f"{origin}: {_validation_message(exc)}") from None
    return _check(raw, data, origin, builtin)


@cache
def builtin_script() -> SalesScript:
    """The script every server has under the name "default" (unless config replaces it)."""
    text = resources.files(__package__).joinpath("scripts/default.toml").read_text("utf-8")
    return parse_script(text, "agents/sales/scripts/default.toml", inherit=False)


_loaded: dict[str, tuple[tuple[int, int], SalesScript]] = {}


def load_script(path: str | os.PathLike[str]) -> SalesScript:
    """The script at `path`, re-read only when the file changed (config hot reload)."""
    p = Path(path)
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        cached = _loaded.get(str(p))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScriptError(f"sales script not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{p}: cannot read: {exc}") from None
    script = parse_script(text, str(p))
    if len(_loaded) > 256:
        _loaded.clear()
    _loaded[str(p)] = (stamp, script)
    return script


# -- rendering lines ------------------------------------------------------------------


def _present(value: object) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return "" if text.lower() in _EMPTY_VALUES else text


def contact_values(script: SalesScript, contact: Mapping[str, object]) -> dict[str, str]:
    """Placeholder → text for one call: the contact's fields, the script's own names."""
    values = {name: _present(contact.get(name)) for name in CONTACT_FIELDS}
    values["company"] = _present(script.company) or "our team"
    values["agentName"] = _present(script.agent_name)
    for name, fallback in script.fallbacks.items():
        if not values.get(name):
            values[name] = _present(fallback)
    return values


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:])")
_REPEATED_PUNCT = re.compile(r"([,;:])(\s*[,;:.!?])+")
_LEADING_PUNCT = re.compile(r"^[\s,;:.]+")


def render_line(text: str, values: Mapping[str, str]) -> str:
    """`text` with its placeholders filled; an empty field is dropped with its dangling
    space and comma ("Hi {firstName}, this is" → "Hi, this is"). Single pass: a value
    holding braces is spoken as it is, never interpolated again."""
    out = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)
    if out == text:
        return " ".join(out.split())
    out = " ".join(out.split())
    out = _SPACE_BEFORE_PUNCT.sub(r"\1", out)
    out = _REPEATED_PUNCT.sub(lambda m: m.group(0)[-1] if m.group(0)[-1] in ".!?"
                              else m.group(1), out)
    out = _LEADING_PUNCT.sub("", out)
    return out.strip()


def render_lines(lines: list[str] | tuple[str, ...], values: Mapping[str, str]) -> str:
    return " ".join(r for r in (render_line(line, values) for line in lines) if r)
