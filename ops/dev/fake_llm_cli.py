"""`leadline dev fake-llm`: argparse only, so building the CLI tree never imports aiohttp."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The fake's options, shared by `leadline dev fake-llm` and `python -m ops.dev.fake_llm`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--script", help="reply/fault script, .toml or .json")
    return parser


def _cmd_fake_llm(args: argparse.Namespace) -> int:
    from ops.dev.fake_llm import run

    return run(args)


def register(dev_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `fake-llm` to the `leadline dev` group."""
    parser = add_arguments(dev_sub.add_parser(
        "fake-llm", help="run a fake OpenAI Chat Completions server",
        description="Serve a fake OpenAI Chat Completions API (JSON and SSE) for the SMS "
                    "agent's tests and demos: scripted replies and faults."))
    parser.set_defaults(func=_cmd_fake_llm)
