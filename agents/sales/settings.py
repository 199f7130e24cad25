"""The `[sales]` section: which script names exist, and which one a job gets by default.

    [sales]
    default = "default"
    scripts = { recall = "scripts/recall.toml" }

Paths are relative to the config file (`anchor_paths` makes them absolute when the file
is loaded). Every script is loaded and checked when the config is, so a bad script fails
the load (or the hot reload, which then keeps the old config), naming the file and key.
The built-in script is always there as "default"; naming "default" in `scripts`
replaces it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import msgspec

from agents.sales.script import SalesScript, ScriptError, builtin_script, load_script

log = logging.getLogger("leadline.sales")
BUILTIN = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class SalesSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Script name → TOML file (relative to the config file). "default" is built in.
    scripts: dict[str, str] = {}
    # The script of a job with no `script`, or a name not listed here.
    default: str = BUILTIN

    def __post_init__(self) -> None:
        for name, path in self.scripts.items():
            if not _NAME.fullmatch(name):
                raise ValueError(f"sales.scripts: bad script name {name[:40]!r} (letters, "
                                 "digits, '_', '.', '-'; at most 100)")
            try:
                load_script(path)
            except ScriptError as exc:
                raise ValueError(f"sales.scripts.{name}: {exc}") from None
        if self.default not in self.names:
            raise ValueError(f"sales.default: {self.default!r} is not one of the scripts "
                             f"({', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a job's `script` may take."""
        return (BUILTIN, *(n for n in self.scripts if n != BUILTIN))

    def resolve(self, name: str | None) -> str:
        """The script name a job gets: its own when known, else `default`."""
        return name if name in self.names else self.default

    def script(self, name: str | None) -> SalesScript:
        """The loaded script for `name` (absent or unknown: the default one)."""
        name = self.resolve(name)
        path = self.scripts.get(name)
        if path is None:
            return builtin_script()
        try:
            return load_script(path)
        except ScriptError as exc:
            # Changed on disk since the config loaded and now broken: the built-in one is
            # better than no script; said in the log, and by the next config reload.
            log.warning("sales script unusable; built-in script used",
                        extra={"script": name, "error": str(exc)[:300]})
            return builtin_script()

    def job_scripts(self, extra: tuple[str, ...] = (),
                    extra_default: str = BUILTIN) -> tuple[tuple[str, ...], str]:
        """(names, default) for the dialer's job check: these scripts, plus names the
        `[dialer]` section still lists (they get the default script)."""
        names = (*self.names, *(n for n in extra if n not in self.names))
        default = self.default
        if default == BUILTIN and extra_default in names:
            default = extra_default
        return names, default


def anchor_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """`data` (a parsed config file) with `[sales] scripts` paths made relative to
    `base`, the config file's directory."""
    sales = data.get("sales")
    if not isinstance(sales, dict) or not isinstance(sales.get("scripts"), dict):
        return data
    base = base.resolve()
    scripts = {name: str(base / path) if isinstance(path, str) and not Path(path).is_absolute()
               else path for name, path in sales["scripts"].items()}
    return {**data, "sales": {**sales, "scripts": scripts}}
