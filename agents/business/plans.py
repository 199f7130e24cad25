"""Plan tiers and what each one allows, read from `plans.toml`.

The gates are data because they are the price list: changing what BASIC includes
is a product decision, not a code change. Everything that asks "may this business
do X?" goes through `gates(plan)`, so the answer is the same at config load (where
a business that enables more than its plan allows is refused) and on a live call.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Literal

import msgspec

Plan = Literal["FREE", "BASIC", "PRO"]
PLANS: tuple[str, ...] = ("FREE", "BASIC", "PRO")


class PlanGates(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`max_questions` < 0 means no limit."""

    max_questions: int
    branding: bool
    voice_agent: bool
    emergency_voice_alerts: bool
    analysis: bool

    def allows_questions(self, count: int) -> bool:
        return self.max_questions < 0 or count <= self.max_questions


class _Branding(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    line: str


class _PlansFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    plans: dict[str, PlanGates]
    branding: _Branding


@cache
def _table() -> _PlansFile:
    text = resources.files("agents.business").joinpath("plans.toml").read_text("utf-8")
    table = msgspec.convert(tomllib.loads(text), _PlansFile)
    missing = set(PLANS) - set(table.plans)
    if missing:
        raise RuntimeError(f"plans.toml lacks plans {sorted(missing)}")
    return table


def gates(plan: str) -> PlanGates:
    """The gates of `plan` (one of `PLANS`); KeyError for anything else."""
    return _table().plans[plan]


def branding_line() -> str:
    """The system branding line a plan with `branding` adds to the end-call message."""
    return _table().branding.line
