"""The `[compliance]` config section: a business's own contact rules on top of the law.

Every knob can only make contact rarer than the law allows, never more frequent: a
window wider than the federal 08:00–21:00, a cap above the statutory 3 per 24 h, or a
list of capped states missing one the law caps is a config error, not a silent clamp,
so a typo cannot look like a legal opinion.
"""

from __future__ import annotations

import msgspec


def _law_capped_states() -> tuple[str, ...]:
    from agents.compliance.rules import load_rules

    return tuple(sorted(load_rules().capped_states))


class ComplianceSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # The business's daily window in the called party's local time, applied on top of
    # the federal and state windows ("HH:MM", end exclusive).
    window_start: str = "08:00"
    window_end: str = "21:00"
    # A reply counts as conversation (not held by quiet hours or caps) when the lead's
    # last message is at most this many minutes old.
    conversation_window_min: int = 15
    # States (number's or lead's) where marketing contacts are capped per rolling 24 h.
    frequency_cap_states: tuple[str, ...] = msgspec.field(default_factory=_law_capped_states)
    cap_per_24h: int = 3

    def __post_init__(self) -> None:
        from agents.compliance.rules import load_rules, parse_hhmm

        rules = load_rules()
        start, end = parse_hhmm(self.window_start), parse_hhmm(self.window_end)
        if start >= end:
            raise ValueError("compliance.window_start must be before window_end")
        if start < rules.federal.start or end > rules.federal.end:
            raise ValueError(
                "compliance window may only narrow the federal "
                f"{rules.federal.start // 60:02d}:{rules.federal.start % 60:02d}–"
                f"{rules.federal.end // 60:02d}:{rules.federal.end % 60:02d} window"
            )
        if not 0 <= self.conversation_window_min <= 240:
            raise ValueError("compliance.conversation_window_min must be between 0 and 240")
        if not 1 <= self.cap_per_24h <= rules.min_cap:
            raise ValueError(f"compliance.cap_per_24h must be between 1 and {rules.min_cap}"
                             " (the strictest statutory cap)")
        bad = [s for s in self.frequency_cap_states if rules.state_code(s) != s]
        if bad:
            raise ValueError(f"compliance.frequency_cap_states: not USPS state codes: {bad}")
        missing = rules.capped_states - set(self.frequency_cap_states)
        if missing:
            raise ValueError("compliance.frequency_cap_states must keep the states the law "
                             f"caps: missing {sorted(missing)}")
