"""Fixes for two races in Panel's server event handling: controls that failed when clicked quickly, and changes
that never reached the browser.

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

The second race loses a change for good. A change Panel makes while the socket is busy (Bokeh still writing
an earlier message, e.g. a map's colour column) is queued in ``panel.io.document._WRITE_MSGS`` by
``schedule_write_events``, which sets ``_WRITE_BLOCK[doc]`` and starts a ``_dispatch_msgs`` task. An earlier
``_dispatch_msgs`` that is still awaiting its own writes deletes ``_WRITE_BLOCK[doc]`` when it resumes, without
looking at what was queued meanwhile; the new task then finds no block and returns at once, and the queued
messages stay in ``_WRITE_MSGS`` until some later change happens to be queued the same way. In the classroom:
the latent map's "not an element symbol" alert, set right after the 'element' colouring was chosen, never
showed (tests/dashboard/test_untrusted.py, one run in 5 to 10 of the suite). :func:`install` makes
``_dispatch_msgs`` send what is queued whether or not the block is still set.
"""

from __future__ import annotations

import functools

import panel.io.document as panel_document
from panel.io.state import state
from panel.reactive import Syncable

_MARK = "_cfgp_locks_document"


def install() -> bool:
    """Patch ``Syncable._server_event`` and ``panel.io.document._dispatch_msgs`` once per process; ``False`` when
    this Panel lacks the event method or the coroutine it schedules (a later release reworked it: nothing to
    patch)."""
    _install_write_fix()
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


def _install_write_fix() -> bool:
    """Make ``panel.io.document._dispatch_msgs`` send messages queued after an earlier dispatch cleared the write
    block (see the module's docstring); ``False`` when this Panel queues its writes some other way."""
    original = getattr(panel_document, "_dispatch_msgs", None)
    if original is None or not all(hasattr(panel_document, n) for n in ("_WRITE_BLOCK", "_WRITE_MSGS")):
        return False
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    async def _dispatch_msgs(doc):
        if doc in panel_document._WRITE_MSGS and doc not in panel_document._WRITE_BLOCK:
            panel_document._WRITE_BLOCK[doc] = True  # queued, and the block cleared under them: send them now
        await original(doc)

    setattr(_dispatch_msgs, _MARK, True)
    panel_document._dispatch_msgs = _dispatch_msgs  # the name schedule_write_events and its retries call
    return True
