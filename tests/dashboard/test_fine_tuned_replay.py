"""A run with the network fine-tuned during active learning replays in the Active-learning tab like any committed
run, drawn against random picks fine-tuned alike, and says so; a frozen run keeps the frozen random band. The run is
real: `cfgp al-finetune`'s code on the tiny run (two network updates of one epoch), its history put into the run's
al/ folder as the shipped default's were."""

from __future__ import annotations

import shutil

import pytest

from cfgp.al import ALSettings, History
from cfgp.al_finetune import HISTORY_FILE, FinetuneSettings, finetune_active_learning
from cfgp.pipeline import Run, al_history_stem, run_active_learning
from tests.dashboard.conftest import column, model_js, open_watched, serving, tab, text_of, wait_for

pytestmark = pytest.mark.slow
FT = FinetuneSettings(every=2, epochs=1, lr=1e-3)


@pytest.fixture(scope="module")
def tuned_run(tiny_run, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("tuned")
    run = Run(shutil.copytree(tiny_run.dir, root / "run", ignore=shutil.ignore_patterns("al", "*.log")))
    run_active_learning(run, ALSettings(strategy="random", cycles=4, seed=0, pool_size=None), progress=False)
    for strategy in ("entropy", "random"):
        settings = ALSettings(strategy=strategy, cycles=4, seed=0, pool_size=None)
        out = root / f"ft-{strategy}"
        finetune_active_learning(run, settings, out, FT)
        stem = al_history_stem(History(out / HISTORY_FILE).settings())
        shutil.copy(out / HISTORY_FILE, run.dir / "al" / f"{stem}.jsonl")
    return run


@pytest.fixture(scope="module")
def tuned_server(tuned_run):
    yield from serving(tuned_run.dir, tuned_run.dir / "panel.log")


def _shown_legend(page) -> list[str]:
    return model_js(page, "al-curve-legend",
                    "m.items.filter(i => i.visible).map(i => (i.label.value ?? i.label))")


def test_a_fine_tuned_run_replays_against_fine_tuned_random(browser, tuned_server, tuned_run):
    tuned, frozen = "random-b1-poolall-ft2", "random-b1-poolall"
    _, records = History(tuned_run.dir / "al" / "entropy-b1-poolall-ft2-s0.jsonl").read()
    assert History(tuned_run.dir / "al" / f"{tuned}-s0.jsonl").settings().finetune_every == 2
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = open_watched(ctx, tuned_server.url)
        tab(page, "Active learning")
        page.locator(".al-cycle").first.wait_for(timeout=30_000)
        # a live run (the network frozen) is drawn against frozen random
        assert wait_for(page, lambda: _shown_legend(page)[:1] == [f"committed {frozen}: mean ± 2σ (1 seed)"], 20), \
            _shown_legend(page)
        page.locator(".al-run select").first.select_option(label="replay entropy-b1-poolall-ft2-s0")
        assert wait_for(page, lambda: "fine-tuned" in text_of(page, ".al-status"), 20), text_of(page, ".al-status")
        assert "every 2 picks" in text_of(page, ".al-status")
        shown = _shown_legend(page)
        assert shown[0] == f"committed {tuned}: mean ± 2σ (1 seed)" and not any(frozen + ":" in x for x in shown), \
            shown
        assert model_js(page, f"al-band-area-{tuned}", "m.visible") is True
        assert model_js(page, f"al-band-area-{frozen}", "m.visible") is False
        assert wait_for(page, lambda: column(page, "al-curve-source", "mae") == [records[0]["mae"]], 20)
        # the link holds the network's updates: opened elsewhere it replays the same fine-tuned run
        assert wait_for(page, lambda: "finetune=2" in page.url, 20), page.url
        other = open_watched(ctx, page.url)
        assert wait_for(other, lambda: "fine-tuned" in text_of(other, ".al-status"), 60), text_of(other, ".al-status")
        assert other.locator(".al-run select").input_value() == "replay entropy-b1-poolall-ft2-s0"
        # a link without it means the network frozen: this run has no frozen entropy run, so it says so
        bad = open_watched(ctx, f"{tuned_server.url}?tab=al&al=replay&strategy=entropy&seed=0&finetune=x")
        assert wait_for(bad, lambda: "no committed entropy run with seed 0" in text_of(bad, ".view-message"), 60)
        shown = text_of(bad, ".view-message")
        assert "finetune: “x” is not a number of picks" in shown and "entropy batch 1 fine-tuned every 2: seed 0" \
            in shown, shown
        assert bad.locator(".al-run select").input_value() == "live run"
        page.locator(".al-run select").first.select_option(label=f"replay {frozen}-s0")
        assert wait_for(page, lambda: _shown_legend(page)[:1] == [f"committed {frozen}: mean ± 2σ (1 seed)"], 20), \
            _shown_legend(page)
        assert "fine-tuned" not in text_of(page, ".al-status")
        assert model_js(page, f"al-band-area-{tuned}", "m.visible") is False
        assert len(records) == 5  # cycle 0 and the four picks, as al-finetune wrote them
        tuned_server.assert_clean()
        assert page.console_errors == []
    finally:
        ctx.close()
