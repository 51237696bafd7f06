"""A fix for a race in Panel's server event handling that made controls fail when clicked quickly.

Panel handles a Bokeh event (a button click, a table cell click) that reaches the server while a widget
change from the same browser is still debounced (~50 ms) by scheduling ``Syncable._event_coroutine`` as a
bare coroutine. That coroutine runs the pending widget change and then the click outside Bokeh's document
lock, and the first raw Bokeh edit made there (a plot's data, a selection) raises "_pending_writes should
be non-None": the control does nothing and the rest of the handler is lost. In the classroom this is a
click on "Clear selection" right after a tab change or a radio button (reproduced in
tests/dashboard/test_calibration.py).

:func:`install` schedules that coroutine as a Bokeh next-tick callback instead, which Bokeh runs under the
document lock, as it runs the debounced widget changes themselves: the pending change and then the click
are handled exactly as on the usual path, in order. (Running it inside Panel's ``unlocked()`` was tried
first; it also ended the error, but the lock is what Panel's own path for widget changes runs under.)
"""

from __future__ import annotations

import functools

from panel.io.state import state
from panel.reactive import Syncable

_MARK = "_cfgp_locks_document"


def install() -> bool:
    """Patch ``Syncable._server_event`` once per process; ``False`` when this Panel lacks the method or the
    coroutine it schedules (a later release reworked it: nothing to patch)."""
    original = getattr(Syncable, "_server_event", None)
    if original is None or not hasattr(Syncable, "_event_coroutine"):
        return False
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def _server_event(self, doc, event):
        if doc.session_context and (not state._unblocked(doc) or doc in state._change_callbacks):
            doc.add_next_tick_callback(functools.partial(self._event_coroutine, doc, event))
        else:
            original(self, doc, event)

    setattr(_server_event, _MARK, True)
    Syncable._server_event = _server_event
    return True
