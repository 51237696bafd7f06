"""MkDocs hook: the command-line reference is generated from cfgp's own argparse parser at build time, so the
docs cannot drift from the code (``<!-- cli-reference -->`` in docs/cli.md is replaced)."""

from __future__ import annotations

MARKER = "<!-- cli-reference -->"


def _reference() -> str:
    import argparse

    from cfgp.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = ["## Reference (generated from `cfgp --help`)", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        out += [f"### cfgp {name}", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 — the MkDocs hook signature
    return markdown.replace(MARKER, _reference()) if MARKER in markdown else markdown
