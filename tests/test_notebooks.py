"""Every notebook runs top to bottom on the embedded default (CFGP_QUICK=1 shortens the long cells), shows its
figures, and the numbers it prints are the ones computed here independently: a NumPy reference GP on the shipped
latents and gp.json, the committed active-learning histories, and the fixture's own records."""

import gzip
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from cfgp.artefacts import DEFAULT_RUN
from tests import reference
from tests.conftest import SMALL

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
PLOT_MIME = ("application/vnd.holoviews_exec.v0+json", "application/vnd.bokehjs_exec.v0+json")


def test_notebooks_are_committed_without_outputs():
    assert len(NOTEBOOKS) == 5
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.fixture(scope="module")
def expected():
    """What the notebooks should print, computed without the code paths they use."""
    from cfgp.pipeline import Run

    run = Run(DEFAULT_RUN)
    gp = json.loads((DEFAULT_RUN / "gp.json").read_text())["gp"]
    X, y = run.latents(), run.materials.y
    tr, te = run.split.train, run.split.test
    mu, sd = reference.gp_posterior_from_saved(gp, X[tr], y[tr], X)
    frame = run.materials.frame
    phos = frame.is_phosphate.to_numpy()
    err = mu[te] - y[te]
    histories = {}
    for path in sorted((DEFAULT_RUN / "al").glob("*.jsonl")):
        lines = path.read_text().splitlines()
        histories[path.stem] = [json.loads(line) for line in lines[1:]]
    records = json.load(gzip.open(SMALL, "rt"))[:120]
    rows = run.materials.index_of([r["material_id"] for r in records])
    mine_err = mu[rows] - np.array([r["formation_energy_per_atom"] for r in records])
    return {
        "sigma_phosphates": sd[phos].mean(), "sigma_others": sd[~phos].mean(),
        "test_mae": np.abs(err).mean(), "test_r2": 1 - np.sum(err**2) / np.sum((y[te] - y[te].mean()) ** 2),
        "outside_2sigma": int(np.sum(np.abs(err) > 2 * sd[te])), "n_test": len(te),
        "split": {"train": len(tr), "pool": len(run.split.pool), "test": len(te)},
        "histories": histories, "default_gp_mae_on_fixture": np.abs(mine_err).mean(),
    }


def _run_notebook(path, monkeypatch):
    monkeypatch.setenv("CFGP_QUICK", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
    text = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []) if o.output_type == "stream")
    # a cell that ends in a plot expression displays a plot
    ends_in_plot = [c for c in cells if re.search(r"^(plots\.\w+\(|base \*|hv\.)", c.source.strip().splitlines()[-1])]
    shown = [c for c in ends_in_plot
             if any(set(PLOT_MIME) & set(o.get("data", {})) for o in c.get("outputs", []) if o.output_type in
                    ("display_data", "execute_result"))]
    assert ends_in_plot and len(shown) == len(ends_in_plot), [c.source[:60] for c in ends_in_plot if c not in shown]
    return text


def _number(pattern, text):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not printed in:\n{text[:3000]}"
    return [float(g) if re.fullmatch(r"[-+]?[\d.]+", g) else g for g in m.groups()]


def _close(printed, value, decimals):
    """A number printed with ``decimals`` decimals equals ``value`` rounded the same way (half a unit of slack
    for values on a rounding boundary)."""
    assert abs(printed - value) <= 0.5 * 10**-decimals + 1e-12, (printed, value)


@pytest.mark.skipif(not (DEFAULT_RUN / "gp.json").exists(), reason="the embedded default is not built")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_shows_its_figures_and_prints_the_right_numbers(path, monkeypatch, expected):
    text = _run_notebook(path, monkeypatch)
    sizes = _number(r"split sizes: \{'train': (\d+), 'pool': (\d+), 'test': (\d+)\}", text)
    assert sizes == [expected["split"][k] for k in ("train", "pool", "test")]
    e = expected
    if path.stem.startswith("01"):
        phos, other = _number(r"mean σ: phosphates ([\d.]+), other oxides ([\d.]+)", text)
        _close(phos, e["sigma_phosphates"], 4)
        _close(other, e["sigma_others"], 4)
    elif path.stem.startswith("02"):
        mae, r2, n = _number(r"test MAE ([\d.]+) eV/atom, MSE [\d.]+ \(eV/atom\)², R² ([\d.]+), n = (\d+)", text)
        _close(mae, e["test_mae"], 4)
        _close(r2, e["test_r2"], 4)
        assert n == e["n_test"]
    elif path.stem.startswith("03"):
        outside, n = _number(r"(\d+) of (\d+) test oxides lie outside ±2σ", text)
        assert (outside, n) == (e["outside_2sigma"], e["n_test"])
    elif path.stem.startswith("04"):
        # the summary line of the committed entropy runs: start and final MAE averaged over their seeds
        start, final = _number(r"entropy-b1-pool7195\s+seeds 4\s+MAE ([\d.]+) → ([\d.]+)", text)
        runs = [h for k, h in e["histories"].items() if k.startswith("entropy-b1-pool7195-s")]
        _close(start, np.mean([h[0]["mae"] for h in runs]), 4)
        _close(final, np.mean([h[-1]["mae"] for h in runs]), 4)
        # the live run (entropy, seed 0, 20 cycles) is the committed entropy seed-0 run, pick for pick
        live = re.findall(r"cycle\s+(\d+)\s+picked (\S+)\s+n_train (\d+)\s+test MAE ([\d.]+)", text)
        committed = e["histories"]["entropy-b1-pool7195-s0"]
        assert len(live) >= 4
        for cycle, pick, n_train, mae in live:
            rec = committed[int(cycle)]
            assert rec["picked"] == [pick] and rec["n_train"] == int(n_train)
            _close(float(mae), rec["mae"], 4)
    elif path.stem.startswith("05"):
        assert "broken.cif" in text  # the bad file of the folder is reported by name
        (mae,) = _number(r"default GP on your 120 materials: MAE ([\d.]+)", text)
        _close(mae, e["default_gp_mae_on_fixture"], 3)  # featurised live = the stored latents (same weights)
        # the GP fitted on 90 of them beats predicting their mean energy for the other 30 (the notebook's split)
        (mine,) = _number(r"MAE on the other 30 = ([\d.]+)", text)
        y = np.array([r["formation_energy_per_atom"] for r in json.load(gzip.open(SMALL, "rt"))[:120]])
        order = np.random.default_rng(0).permutation(len(y))
        assert mine < np.abs(y[order[90:]] - y[order[:90]].mean()).mean()
