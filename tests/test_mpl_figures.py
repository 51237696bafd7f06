"""cfgp.mpl_figures: the matplotlib figures behind the CLI's plot and the dashboard's PNG / SVG downloads, on the shipped
run's real data (read only)."""

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from cfgp import mpl_figures
from cfgp.artefacts import DEFAULT_RUN

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: bytes) -> list[str]:
    return ["".join(t.itertext()).strip() for t in ET.fromstring(svg).iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def default():
    from cfgp.embedding import TSNESettings, run_tsne
    from cfgp.pipeline import Run

    run = Run(DEFAULT_RUN)
    return run, np.asarray(run_tsne(run, TSNESettings()), dtype=float)


def test_png_has_the_promised_size_and_svg_keeps_its_text(default):
    run, xy = default
    y = run.materials.y
    def fig():
        return mpl_figures.latent_map_figure(xy, values=y, palette="viridis", clim=(-4, 0), colour_label="DFT E_f (eV/atom)")

    png = mpl_figures.figure_bytes(fig(), "png")
    im = Image.open(io.BytesIO(png))
    im.load()
    assert im.size == (round(mpl_figures.FIGSIZE[0] * mpl_figures.DPI), round(mpl_figures.FIGSIZE[1] * mpl_figures.DPI))
    svg = mpl_figures.figure_bytes(fig(), "SVG")
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "t-SNE of the MEGNet latent space"
    assert {"t-SNE of the MEGNet latent space", "DFT E_f (eV/atom)"} <= set(_texts(svg))
    # 16k points are one embedded image inside the SVG, not 16k paths: the file stays small, the text stays text
    assert len(xy) > mpl_figures.RASTER_POINTS and len(list(root.iter(f"{SVG}image"))) >= 1
    assert len(svg) < 2_000_000
    assert mpl_figures.figure_bytes(fig(), "svg") == svg  # the same view gives the same file (no date, fixed ids)
    with pytest.raises(ValueError, match="unknown figure format 'jpg'"):
        mpl_figures.figure_bytes(fig(), "jpg")


def test_categorical_map_legend_counts_and_background_drawn_first(default):
    run, xy = default
    phos = run.materials.frame["is_phosphate"].to_numpy(bool)
    groups = np.where(phos, "phosphate", "other oxide").astype(object)
    fig = mpl_figures.latent_map_figure(xy, groups=groups, order=["phosphate", "other oxide"],
                                    colours={"phosphate": "#d62728", "other oxide": "#c7c7c7"},
                                    legend_title="phosphates", background=["other oxide"], selected=[0, 5, 9])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"phosphate ({phos.sum():,})", f"other oxide ({(~phos).sum():,})", "selected (3)"]
    assert ax.get_legend().get_title().get_text() == "phosphates"
    # the grey background is drawn first, so the phosphates stay visible on top of it
    assert [len(c.get_offsets()) for c in ax.collections[:2]] == [int((~phos).sum()), int(phos.sum())]


def test_al_curves_from_the_committed_histories(tmp_path):
    from cfgp.pipeline import Run, load_al_histories

    groups = load_al_histories(Run(DEFAULT_RUN))
    series = mpl_figures.strategy_series(groups)
    assert {s["label"] for s in series} >= {"entropy-b1-pool7195 (4 seeds)", "random-b1-pool7195 (4 seeds)"}
    svg = mpl_figures.figure_bytes(mpl_figures.al_curves_figure(series), "svg")
    root = ET.fromstring(svg)
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert {f"series-{k}" for k in range(len(series))} <= ids and {f"band-{k}" for k in range(len(series))} <= ids
    assert "test MAE (eV/atom)" in _texts(svg)
    png = mpl_figures.al_curves_png(groups, tmp_path / "al.png")
    Image.open(png).load()
    assert mpl_figures.al_curves_png(groups, tmp_path / "al.svg").read_bytes().startswith(b"<?xml")


def test_al_series_take_strategy_and_batch_from_the_headers(tmp_path):
    """A committed history copied under a misleading name is drawn as what its header says it is."""
    import shutil

    from cfgp.palette import STRATEGY_COLOURS
    from cfgp.pipeline import AL_DIR, RUN_FILE, Run, load_al_histories

    run_dir = tmp_path / "run"
    (run_dir / AL_DIR).mkdir(parents=True)
    (run_dir / RUN_FILE).write_text("{}")
    for seed in (0, 1):  # entropy batch-10 runs named as random batch-1 ones
        shutil.copy(DEFAULT_RUN / AL_DIR / f"entropy-b10-pool7195-s{seed}.jsonl.gz",
                    run_dir / AL_DIR / f"random-b1-pool7195-s{seed}.jsonl.gz")
    (series,) = mpl_figures.strategy_series(load_al_histories(Run(run_dir)))
    assert series["label"] == "entropy-b10-pool7195 (2 seeds)"
    assert series["colour"] == STRATEGY_COLOURS["entropy"] and series["dashed"]
