"""Static figures (matplotlib PNG) for the README and headless runs."""

from __future__ import annotations

from pathlib import Path


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
