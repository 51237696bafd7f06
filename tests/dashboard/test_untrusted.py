"""Untrusted text is text, in Chromium: script and event-handler payloads sent through every URL parameter, both
element boxes and an uploaded file's name and content run nothing (no dialog, no script effect), inject no element,
and show up as the characters that were sent (the search box too). Fails on the unescaped dashboard (checked: ``?tab=<script>…`` opened
an alert)."""

from __future__ import annotations

import urllib.parse

import pytest

from cfgp.dashboard.untrusted import QUOTE, text
from cfgp.dashboard.view_state import KEYS
from tests.dashboard.conftest import tab, wait_for

#: each sets window.__xss (or opens a dialog) if it runs, and is short enough to be quoted whole
PAYLOADS = ("<script>window.__xss=1;alert(1)</script>", "<img src=x onerror=alert(2)>", "<svg onload=alert(3)>",
            "[link](javascript:alert(4))", "<b>bold x</b>", '"><img src=x onerror=alert(5)>', "javascript:alert(6)")
#: parameters read by the theme (not in the view state's KEYS)
THEME_KEYS = ("theme", "projector")

#: elements no page of the app has unless a payload became markup (searched through every shadow root)
INJECTED = """() => {
  const hits = [];
  const walk = (root) => {
    root.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload], a[href^="javascript"]').forEach(
      e => hits.push(e.outerHTML.slice(0, 120)));
    root.querySelectorAll('b, strong').forEach(e => { if (e.textContent === 'bold x') hits.push(e.outerHTML); });
    root.querySelectorAll('script').forEach(e => { if (e.textContent.includes('__xss')) hits.push(e.outerHTML); });
    root.querySelectorAll('*').forEach(h => { if (h.shadowRoot) walk(h.shadowRoot); });
  };
  walk(document);
  return hits; }"""

#: every text node of the page, through shadow roots
PAGE_TEXT = """() => {
  const out = [];
  const walk = (n) => { if (n.shadowRoot) walk(n.shadowRoot);
    n.childNodes.forEach(c => { if (c.nodeType === 3) out.push(c.textContent);
      else if (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.nodeName)) walk(c); }); };
  walk(document.body);
  return out.join(' '); }"""


def test_text_escapes_html_and_markdown():
    """Fast check of the one escaping function: no character of markup survives, entities decode to the input."""
    import html
    import re

    for payload in PAYLOADS + ("**bold** _it_ `code` # head | table |", "a & b < c > d ' e \""):
        safe = text(payload)
        assert not set("<>\"'*_`[]()#|") & set(re.sub(r"&(#\d+|[a-z]+);", "", safe)), safe
        assert html.unescape(safe) == payload


def test_names_from_the_data_file_reach_markdown_escaped(tiny_run):
    """A data file is untrusted too: formulas, ids and reasons it holds reach the compare view's and the lesson's
    Markdown as text (fails on the unescaped views: the payload went into the Markdown whole)."""
    from cfgp.dashboard.compare import compare_markdown
    from cfgp.dashboard.lesson import _material_line
    from cfgp.dashboard.shared import ServerData

    data = ServerData(tiny_run.dir)
    row = int(tiny_run.split.test[0])
    nb = data.neighbours.explain(row)
    for i, (col, payload) in enumerate([("formula", PAYLOADS[1]), ("material_id", PAYLOADS[0]),
                                         ("split", PAYLOADS[2])]):
        data.frame.loc[data.frame.index[[nb.row, nb.neighbour][i % 2]], col] = payload
    data.frame.loc[data.frame.index[nb.row], ["in_domain", "domain"]] = [False, PAYLOADS[5]]
    for out in (compare_markdown(data, nb), _material_line(data.frame.iloc[nb.neighbour])):
        assert "<" not in out and ">" not in out.replace("> ", ""), out
    shown = compare_markdown(data, nb)
    for payload in (PAYLOADS[1], PAYLOADS[0], PAYLOADS[2], PAYLOADS[5]):
        assert text(payload) in shown


def open_hostile(context, url: str):
    """A page on ``url`` whose dialogs are recorded from the first byte (``page.dialogs``), fully loaded."""
    page = context.new_page()
    page.dialogs = []

    def on_dialog(d):
        page.dialogs.append(d.message)
        d.dismiss()
    page.on("dialog", on_dialog)
    page.goto(url, timeout=120_000)
    page.wait_for_selector("text=GP device", timeout=120_000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    return page


def assert_inert(page, server, sent=()) -> None:
    page.wait_for_timeout(1500)
    assert not page.dialogs, f"a payload opened a dialog: {page.dialogs}"
    assert page.evaluate("() => window.__xss") is None, "a payload's script ran"
    assert page.evaluate(INJECTED) == [], "a payload became markup"
    for payload in sent:  # the server's answer (a message quoting it) may take a while on a loaded machine
        assert wait_for(page, lambda: payload[:QUOTE] in page.evaluate(PAGE_TEXT), 30), \
            f"{payload!r} is not shown as text.\n{diagnosis(page, server)}"
    server.assert_clean()


#: the browser's copy of the message panes (Bokeh models by class): was the answer sent, and not drawn, or not sent?
MESSAGE_MODELS = """() => { const out = {};
  for (const d of Bokeh.documents) for (const m of d.all_models)
    if ((m.css_classes ?? []).some(c => /alert|message/.test(c)))
      out[m.id] = [(m.css_classes ?? []).join(' '), m.visible, String(m.text ?? '').slice(0, 200)];
  return out; }"""


def diagnosis(page, server) -> str:
    """What a failed quote check needs to tell apart a message never sent, sent and not drawn, or a server error."""
    text = page.evaluate(PAGE_TEXT)
    return (f"url: {page.url}\nmessage models in the browser: {page.evaluate(MESSAGE_MODELS)}\n"
            f"page text, start: {text[:400]!r}\npage text, end: {text[-400:]!r}\n"
            f"server log since the last check: {server.new_log()[-3000:]!r}")


@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    yield ctx
    ctx.close()


@pytest.mark.parametrize("shift", [0, 1])
def test_hostile_link_runs_nothing_and_shows_the_values_as_text(context, server, shift):
    """Every URL parameter at once, each with a payload (two rotations, so each parameter gets two kinds)."""
    keys = list(KEYS) + list(THEME_KEYS)
    query = {k: PAYLOADS[(i + shift) % len(PAYLOADS)] for i, k in enumerate(keys)}
    server.new_log()
    page = open_hostile(context, server.url + "?" + urllib.parse.urlencode(query))
    # the alert names the bad values; those it quotes must read as the characters sent
    assert wait_for(page, lambda: "could not be shown exactly as asked" in page.evaluate(PAGE_TEXT), 60)
    quoted = [v for k, v in query.items() if k in ("tab", "colour", "material")]
    assert_inert(page, server, sent=quoted)
    # the same link not URL-encoded (as a student might paste it): still inert
    raw = server.url + "?" + "&".join(f"{k}={v}" for k, v in list(query.items())[:6])
    page2 = open_hostile(context, raw)
    assert_inert(page2, server)
    page.close()
    page2.close()


def test_hostile_typing_and_file_names_run_nothing(context, server, small_records, tmp_path):
    page = open_hostile(context, server.url)
    server.new_log()
    # the latent map's element box (shown with the 'element' colouring)
    tab(page, "Latent map")
    page.locator("select >> visible=true").first.select_option(label="element")
    for payload in ("<b>bold x</b>", "<img src=x onerror=alert(7)>"):
        box = page.locator(".map-element input >> visible=true").first
        box.fill(payload)
        box.press("Enter")
        page.wait_for_timeout(800)
        assert_inert(page, server, sent=[payload[:20]])
    # the Outliers tab's element filter
    tab(page, "Outliers")
    box = page.locator(".outliers-element input >> visible=true").first
    box.fill("<svg onload=alert(8)>")
    box.press("Enter")
    page.wait_for_timeout(800)
    assert_inert(page, server, sent=["<svg onload=alert(8)>"[:20]])
    # the search box above the tabs (its summary quotes the query back)
    for payload in ("<img src=x onerror=alert(12)>", "<b>bold x</b> P"):
        box = page.locator(".search-box input >> visible=true").first
        box.fill(payload)
        box.press("Enter")
        page.wait_for_timeout(800)
        assert_inert(page, server, sent=[payload[:20]])
    # Predict: a hostile file name with a broken CIF (its content quoted back), then with a good CIF
    tab(page, "Predict")
    file_input = page.locator("input[type=file] >> visible=true")
    bad_name = "<img src=x onerror=alert(9)>.cif"
    file_input.set_input_files({"name": bad_name, "mimeType": "chemical/x-cif",
                                "buffer": b"data_x\n<script>window.__xss=1;alert(10)</script>\n"})
    assert wait_for(page, lambda: "Could not use this file" in page.evaluate(PAGE_TEXT), 120)
    assert_inert(page, server, sent=[bad_name])
    good = sorted(small_records, key=lambda r: r["nsites"])[0]
    good_name = "<svg onload=alert(11)>.cif"
    file_input.set_input_files({"name": good_name, "mimeType": "chemical/x-cif", "buffer": good["cif"].encode()})
    assert wait_for(page, lambda: "Predicted formation energy" in page.evaluate(PAGE_TEXT), 300)
    assert_inert(page, server, sent=[good_name])
    page.close()
