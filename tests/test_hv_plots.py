"""Plot builders: results in, HoloViews objects out (the app and notebooks share them)."""

import holoviews as hv
import numpy as np
import pytest

from cfgp import hv_plots
from cfgp.al import ALSettings
from cfgp.pipeline import ALGroup, predictions


@pytest.fixture(scope="module")
def frame(tiny_run):
    pred = predictions(tiny_run)
    m = tiny_run.materials
    return hv_plots.predictions_frame(m.frame, pred["mean"], pred["std"], tiny_run.split.labels(len(m)))


def test_parity_has_points_bars_and_diagonal(frame):
    p = hv_plots.parity(frame, n_bars=25)
    kinds = [type(e).__name__ for e in p]
    assert kinds == ["Curve", "Points", "ErrorBars"]
    assert len(p.get(1)) == len(frame) and len(p.get(2)) == 25
    bars = p.get(2).dframe()
    np.testing.assert_allclose(np.sort(bars.yerr.to_numpy()), np.sort(2 * frame.set_index("dft").loc[bars.dft].sigma))


def test_residual_vs_sigma_colours_by_excess(frame):
    p = hv_plots.residual_vs_sigma(frame)
    pts = p.get(0)
    assert "excess" in [d.name for d in pts.vdims]
    np.testing.assert_allclose(pts.dframe()["abs_residual"], frame.residual.abs())
    hv.render(p)  # renders with bokeh without error


def test_calibration_and_al_curves(frame):
    cal = hv_plots.calibration_plot(frame)
    curve = cal.get(2).dframe()
    assert curve["expected proportion"].iloc[0] == 0 and curve["observed proportion"].iloc[-1] == 1
    groups = {"entropy-b1": ALGroup(ALSettings(strategy="entropy"),
                                    [[{"n_train": 10 + i, "mae": 1 / (i + 1)} for i in range(5)]] * 2),
              "random-b1": ALGroup(ALSettings(strategy="random"),
                                   [[{"n_train": 10 + i, "mae": 1 - i / 10} for i in range(5)],
                                    [{"n_train": 10 + i, "mae": 1 - i / 20} for i in range(5)]])}
    al = hv_plots.al_curves(groups)
    assert len(al) == 4
    hv.render(al)
    table = hv_plots.metrics_table({"mae": 0.1, "nll": -1.0, "unknown": 3})
    assert table.metric.tolist() == ["MAE (eV/atom)", "mean NLL"]


@pytest.mark.parametrize("colour", ["dft", "sigma", "residual", "split", "phosphate", "element"])
def test_latent_map_colourings(frame, colour):
    xy = np.random.default_rng(0).normal(size=(len(frame), 2))
    m = hv_plots.latent_map(frame, xy, color_by=colour, element="Li")
    hv.render(m)
    shown = m.dframe()
    np.testing.assert_allclose(shown["x"], xy[:, 0])
    np.testing.assert_allclose(shown["y"], xy[:, 1])
    coloured_by = m.opts.get().kwargs["color"]
    if colour in ("dft", "sigma", "residual"):  # each point carries its own value of the field it is coloured by
        assert coloured_by == colour
        np.testing.assert_allclose(shown[colour], frame[colour])
        return
    assert coloured_by == "group"
    groups = shown["group"]
    if colour == "element":
        assert (groups == "contains Li").sum() == frame.formula.str.contains(r"Li(?![a-z])").sum() > 0
        assert set(groups) == {"contains Li", "other"}
    elif colour == "split":
        assert groups.value_counts().to_dict() == frame.split.value_counts().to_dict()
    else:
        assert (groups == "phosphate").sum() == frame.is_phosphate.sum() > 0



def test_split_colouring_marks_active_learning_picks(frame):
    xy = np.zeros((len(frame), 2))
    picks = frame[frame.split == "pool"].material_id.iloc[:5].tolist()
    groups = hv_plots.latent_map(frame, xy, color_by="split", picked=picks).dframe()["group"]
    assert (groups == "picked by AL").sum() == 5
    assert (groups == "test").sum() == (frame.split == "test").sum()
