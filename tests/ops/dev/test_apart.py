"""The dev tools stay apart from the product path, and `leadline --help` stays light.

Checked by what gets imported, not by timing: a clock-based assert would flake on a
busy machine, while an import that sneaks in is exactly the regression that makes
`leadline config show` pay for aiohttp, numpy or the fake Realtime server again.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PRODUCT = ("media", "store", "agents", "telephony", "sms")
# What building the whole `leadline` parser tree must not load.
HEAVY = ("aiohttp", "numpy", "msgspec", "onnxruntime", "picows", "openai", "phonenumbers",
         "ops.dev.fake_realtime", "ops.dev.bench", "ops.dev.sim")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_product_package_imports_ops() -> None:
    offenders = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for package in PRODUCT
        for path in (REPO / package).rglob("*.py")
        for name in _imports(path)
        if name == "ops" or name.startswith("ops.")
    )
    assert offenders == []


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             "print('\\n'.join(sorted(m for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    return out


def test_building_the_cli_parser_loads_no_heavy_module() -> None:
    loaded = set(_loaded_after("from ops.cli import build_parser\nbuild_parser()"))
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_the_server_never_loads_the_dev_tools() -> None:
    loaded = _loaded_after("import ops.server")
    assert [m for m in loaded if m.startswith("ops.dev")] == []
