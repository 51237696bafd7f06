"""Static figures (matplotlib PNG) for the README and headless runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfgp.al import curves

COLOURS = {"entropy": "#d62728", "random": "#7f7f7f", "batch-diverse": "#1f77b4", "batch-distance": "#2ca02c",
           "ucb": "#9467bd", "ei": "#8c564b"}


def al_curves_png(groups: dict[str, list[list[dict]]], path: str | Path, title: str = "") -> Path:
    """MAE vs number of labels added, mean ± 2σ over seeds, one band per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, hists in groups.items():
        c = curves(hists)
        colour = COLOURS.get(name.split("-b")[0], None)
        style = "-" if "-b1-" in name or "-b1" == name[-3:] else "--"  # batches dashed
        ax.plot(c["labels"], c["mean"], label=f"{name} ({len(hists)} seeds)", color=colour, lw=1.5, ls=style)
        ax.fill_between(c["labels"], c["mean"] - 2 * c["std"], c["mean"] + 2 * c["std"], color=colour, alpha=0.2)
    ax.set_xlabel("materials labelled by active learning")
    ax.set_ylabel("test MAE (eV/atom)")
    ax.set_title(title or "CFGP active learning: test MAE (mean ± 2σ over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def parity_png(y_true, mean, std, path: str | Path, n_bars: int = 100, seed: int = 0, title: str = "") -> Path:
    """GP vs DFT formation energy; ±2σ bars on a random subset as in the paper's Fig. 4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true, mean, std = map(np.asarray, (y_true, mean, std))
    fig, ax = plt.subplots(figsize=(4.8, 4.6), dpi=120)
    ax.scatter(y_true, mean, s=4, alpha=0.35, color="#1f77b4", label="test materials")
    pick = np.random.default_rng(seed).choice(len(y_true), min(n_bars, len(y_true)), replace=False)
    ax.errorbar(y_true[pick], mean[pick], yerr=2 * std[pick], fmt="o", ms=2.5, color="#d62728", elinewidth=0.8,
                alpha=0.8, label=f"{len(pick)} random with ±2σ")
    lo, hi = float(min(y_true.min(), mean.min())), float(max(y_true.max(), mean.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.set_xlabel("DFT formation energy (eV/atom)")
    ax.set_ylabel("CFGP prediction (eV/atom)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
