"""Untrusted text as text: the one place where what a link, an input, a file name or a file says becomes page text.

Everything a reader did not write themselves — a query parameter of a shared link, the element box, an uploaded
file's name and content, an error message quoting any of these — reaches the browser through a Panel pane that
renders HTML (``pn.pane.HTML``) or Markdown (``pn.pane.Markdown``, ``pn.pane.Alert``, whose Markdown also passes
raw HTML through). A student's ``?tab=<script>…`` link must show those characters, not run them, so every view
builds such panes' text with :func:`text` from this module and nowhere else. Messages stay plain text (a value
in them quoted by :func:`quoted`, from :mod:`cfgp.quoting`) until the pane that shows them, which escapes the whole message once.

:func:`text` escapes for both renderers at once: HTML's ``& < > " '`` become entities, and so do the characters
Markdown would read as markup (emphasis, links, code, headings, tables, escapes), which a Markdown renderer turns
back into the literal characters without interpreting them.
"""

from __future__ import annotations

from typing import Any

from cfgp.quoting import QUOTE, as_text, quoted  # noqa: F401  (the dashboard's names for them)

#: every character HTML or Markdown would read as markup, as a numeric entity (shown literally by both renderers)
_ENTITIES = {c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-.!|~:="}


def text(value: Any) -> str:
    """``value`` as inert page text for an HTML or a Markdown pane (any markup in it is shown, not obeyed)."""
    return "".join(_ENTITIES.get(c, c) for c in as_text(value))  # one pass: an entity is never escaped again
