"""A value from outside — a link, a typed box, a file — quoted back in an error message, the same way everywhere:
as the text a link holds, in curly quotes, cut at ``QUOTE`` characters (a link or a file can hold anything, and a
message must stay a line). Where a message reaches a page it is escaped there, once
(:func:`cfgp.dashboard.untrusted.text`); this module only shapes the plain text."""

from __future__ import annotations

import json
from typing import Any

#: the longest value quoted back in a message
QUOTE = 40


def as_text(value: Any) -> str:
    """A value as the text a link holds (Panel parses '3' to 3 and 'true' to True; undo that)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def quoted(value: Any, limit: int = QUOTE) -> str:
    """``value`` quoted in a plain-text message: at most ``limit`` characters, an ellipsis when cut."""
    s = as_text(value)
    return f"“{s[:limit]}{'…' if len(s) > limit else ''}”"
