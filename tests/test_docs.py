"""The documentation: the site builds offline with warnings as errors (broken links, pages missing from the nav),
its command reference is generated from the real parser, and the README stays a short front page."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_site_builds_strictly_with_the_generated_cli_reference(tmp_path):
    exe = Path(sys.executable).with_name("mkdocs")
    out = subprocess.run([str(exe), "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    from cfgp.cli import build_parser

    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    assert all(f"cfgp {name}" in cli for name in sub.choices)  # every subcommand has its generated section
    assert "--families" in cli  # an option added to the parser shows up without editing the page


def test_readme_is_a_short_front_page_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert ".venv/bin/pip install -e \".[test]\"" in text and ".venv/bin/python -m pytest" in text
    for page in ("dashboard", "cli", "results", "domain", "performance", "design"):
        assert f"docs/{page}.md" in text and (ROOT / "docs" / f"{page}.md").exists()
