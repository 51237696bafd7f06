"""cfgp's fixes of Panel's server races (cfgp/dashboard/panel_fixes.py), replayed deterministically in Python."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import panel.io.document as panel_document
from bokeh.document import Document

from cfgp.dashboard import panel_fixes


class _Socket:  # a socket type Panel writes to through ``extra_socket_handlers``
    pass


class _Protocol:
    def create(self, kind, events):
        return f"{kind}:{events}"


class _Connection:
    def __init__(self):
        self._socket, self.protocol = _Socket(), _Protocol()


def test_a_change_queued_while_an_earlier_write_finishes_is_sent():
    """The interleaving seen in a server log when the map's "not an element symbol" alert never showed: a dispatch
    (B) that is awaiting its own write resumes after a new change was queued (starting dispatch A) and clears the
    write block; A then found no block and returned, leaving the alert's message queued for good. With the fix it
    is sent (without it: sent ['colour column'] only, and the message stranded in ``_WRITE_MSGS``)."""
    assert panel_fixes._install_write_fix()
    sent, pending = [], []

    async def replay():
        loop = asyncio.get_running_loop()

        def write(conn, msg=None):
            sent.append(msg)
            future = loop.create_future()
            pending.append(future)
            return [future]

        panel_document.extra_socket_handlers[_Socket] = write
        doc, conn = Document(), _Connection()
        try:
            panel_document.schedule_write_events(doc, [conn], ["colour column"])  # B: sends, awaits its write
            for _ in range(3):
                await asyncio.sleep(0)
            pending[0].set_result(None)  # B's write completes: its wake-up is queued ...
            panel_document.schedule_write_events(doc, [conn], ["map-message text"])  # ... before A starts
            for _ in range(10):
                await asyncio.sleep(0)
            for future in pending:
                if not future.done():
                    future.set_result(None)
            for _ in range(10):
                await asyncio.sleep(0)
            return dict(panel_document._WRITE_MSGS.get(doc, {})).get(conn), doc in panel_document._WRITE_BLOCK
        finally:
            panel_document.extra_socket_handlers.pop(_Socket, None)
            panel_document._WRITE_MSGS.pop(doc, None)
            panel_document._WRITE_BLOCK.pop(doc, None)

    # its own event loop in its own thread: a browser test on the same worker may leave Playwright's loop running here
    with ThreadPoolExecutor(1) as pool:
        stranded, blocked = pool.submit(asyncio.run, replay()).result(timeout=60)
    assert sent == ["PATCH-DOC:['colour column']", "PATCH-DOC:['map-message text']"], sent
    assert not stranded and not blocked
