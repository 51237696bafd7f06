"""cfgp.dashboard.shared: posting work back to a session from a worker thread."""

import threading
from types import SimpleNamespace

from bokeh.document import Document
from tornado.ioloop import IOLoop

from cfgp.dashboard.shared import on_session_tick


class _Served:
    """A real Bokeh Document and a real tornado loop in its own thread, wired the way a Bokeh server wires them
    (``doc.session_context.server_context.application_context.io_loop``)."""

    def __init__(self):
        ready = threading.Event()
        self.posted_from: list[str] = []

        def serve():
            self.loop = IOLoop(make_current=False)
            ready.set()
            self.loop.start()

        self.thread = threading.Thread(target=serve, name="test-loop", daemon=True)
        self.thread.start()
        ready.wait(5)
        self.doc = Document()
        app = SimpleNamespace(io_loop=self.loop)
        self.doc._session_context = lambda: SimpleNamespace(server_context=SimpleNamespace(application_context=app))
        real = self.doc.add_next_tick_callback

        def record(cb):  # which thread touches the document's callbacks (and so its hold list)
            self.posted_from.append(threading.current_thread().name)
            return real(cb)

        self.doc.add_next_tick_callback = record

    def stop(self):
        self.loop.add_callback(self.loop.stop)
        self.thread.join(5)


def test_a_worker_thread_never_touches_the_documents_callbacks():
    """A worker appending to the hold's list while the loop drains it lost the callback (a live AL step that
    never landed in CI): the post must happen on the loop's own thread."""
    served = _Served()
    try:
        ran = threading.Event()
        worker = threading.Thread(target=on_session_tick, args=(served.doc, ran.set), name="al-step-test")
        worker.start()
        worker.join(5)
        for _ in range(100):
            if served.posted_from:
                break
            ran.wait(0.05)
        assert served.posted_from == ["test-loop"], served.posted_from
    finally:
        served.stop()


def test_without_a_server_the_function_runs_at_once():
    ran = []
    on_session_tick(None, lambda: ran.append(1))
    assert ran == [1]
