"""The README's "Sales scripts" examples are true: the config and script load, the
preview does what its comments say, the errors read as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops import config as config_mod

README = Path(__file__).resolve().parents[3] / "README.md"


def _section() -> str:
    text = README.read_text("utf-8")
    start = text.index("## Sales scripts")
    return text[start:text.index("\n## ", start + 10)]


def _block(first_line: str) -> str:
    for _lang, body in re.findall(r"```(\w*)\n(.*?)```", _section(), re.S):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"no block starting {first_line!r}")


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "leadline.toml").write_text(_block("# leadline.toml"))
    (tmp_path / "scripts" / "recall.toml").write_text(_block("# scripts/recall.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_example_loads_and_the_preview_is_true(demo: Path) -> None:
    cfg = config_mod.load(demo / "leadline.toml", environ={})
    assert cfg.sales.names == ("default", "recall")
    code = _block("from ops.config import load")
    steps = [line for line in code.splitlines() if line.startswith(("f.opening",
                                                                     "f.caller_turn"))]
    namespace: dict[str, object] = {}
    exec(code.split("\nf.opening")[0].replace("print(", "str("), namespace)
    for step in steps:
        call, comment = step.split("#", 1)
        said = eval(call.strip(), namespace)
        expected = re.match(r'\s*"([^"]*)"', comment).group(1)  # type: ignore[union-attr]
        prefix = expected.removesuffix("…").rstrip(", ")
        assert isinstance(said, str) and said.startswith(prefix), (step, said)
    follower = namespace["f"]
    assert follower.done and follower.objections == ["fear"]  # type: ignore[attr-defined]


def test_the_errors_read_as_shown(demo: Path) -> None:
    recall = (demo / "scripts" / "recall.toml").read_text()
    (demo / "scripts" / "bad.toml").write_text(recall.replace("{agentName} from",
                                                              "{agent} from"))
    (demo / "bad.toml").write_text('[sales]\nscripts = { recall = "scripts/bad.toml" }\n')
    (demo / "typo.toml").write_text('[sales]\nscripts = { recall = "scripts/recall.toml" }\n'
                                    'defualt = "recall"\n')
    shown = [line.removeprefix("error: ") for line in _section().splitlines()
             if line.startswith("error: ")]
    for name, line in zip(("bad.toml", "typo.toml"), shown, strict=True):
        with pytest.raises(config_mod.ConfigError) as info:
            config_mod.load(demo / name, environ={})
        message = str(info.value).replace(str(demo.resolve()), "/tmp/salesdemo")
        assert message == line
