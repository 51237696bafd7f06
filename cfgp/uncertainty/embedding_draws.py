"""σ from not knowing an element: draw the never-trained elements' embeddings and watch the GP's mean move.

MEGNet reads each atom through an embedding row per element (the layer ``atom_embedding``, indexed by atomic
number). A row is learnt only from training materials that contain the element; the row of an element no training
material contains keeps its random initial value, and a material's latent — so the GP's mean and σ — rests on it as
if it were known. What the model does not know is which element this is. Drawing that element's row from the rows
of the elements the network did train, many times, and predicting again gives the spread of the GP's mean over what
the element might be (σ_emb). On networks trained without a chemical family it follows the family's errors
(correlation 0.50–0.82 on four families; ``docs/domain.md``, "A σ from not knowing the element").

Materials whose elements were all trained keep their latent under the draws: their spread is 0 (up to the round-off
of predicting them in one batch with the others, ~1e-16 eV/atom). Draw k of element Z comes from a generator seeded
by (seed, k, Z) alone, so a material's σ_emb is the same whether it is predicted alone (the Predict tab), in a
screening chunk, or with the run's other materials.

The shipped σ uses it for oxides with a never-trained element (:meth:`cfgp.uncertainty.sigma_calibration.SigmaCalibrator.scale`):
on four networks trained without a chemical family, sqrt((τ_out·σ_GP)² + σ_emb²) had a mean pool NLL of 1.12 against
1.29 for the floor it replaces (``docs/domain.md``).

Where the rows are drawn from (:func:`draw_candidates`): a never-trained lanthanoid or actinoid resembles its
trained neighbours in the periodic table, so its rows come from those, and the material is predicted by the mean
over its draws; any other never-trained element draws from every trained element and keeps the GP's mean on its
untrained row. Chosen on pool data: on the networks trained without the lanthanides and without the actinides the
pool MAE of their members falls from 0.900 and 0.963 to 0.180 and 0.298 eV/atom, while for S and the halogens
drawing from neighbours made it worse (0.269 → 0.519 and, with the mean over all draws, 0.452 → 0.533); on the
shipped default's 7 Ac and Pm pool oxides, which suggested nothing, from 2.26 to 0.38 (``docs/domain.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
from pymatgen.core import Element

from cfgp.featurize import BATCH_BONDS, bond_batches

#: the network's per-element embedding layer (megnet's MEGNetModel)
EMBEDDING_LAYER = "atom_embedding"
#: draws per material: the fewest of 16, 32, 64 and 128 for which σ_emb of the default's 15 pool oxides with a
#: never-trained element varies by under 10 % across seeds (largest relative SD over 5 seeds: 16 %, 13 %, 7 %, 5 %;
#: ``benchmarks/embedding_draws.py``, docs/measurements/embedding_draws.json)
DRAWS = 64
#: where an unseen element's row is drawn from: atomic numbers of trained elements, or per unseen element its own
#: (Z → atomic numbers)
Candidates = np.ndarray | Mapping[int, np.ndarray]


def training_counts(train_elements: Iterable[Sequence[str]]) -> Counter:
    """How many training materials contain each element."""
    return Counter(e for els in train_elements for e in set(els))


def trained_elements(counts: Mapping[str, int], more_than: int) -> np.ndarray:
    """Atomic numbers, sorted, of the elements in more than ``more_than`` training materials (the rare-chemistry
    count: their rows were learnt from more than a handful of materials)."""
    return np.array(sorted(Element(e).Z for e, c in counts.items() if c > more_than), dtype=int)


def never_trained(elements: Iterable[Sequence[str]], counts: Mapping[str, int]) -> list[int]:
    """Atomic numbers, sorted, of the elements of ``elements`` that no training material contains (``counts``:
    training materials per element, as :func:`training_counts` or a domain model's ``element_counts_``)."""
    return sorted({Element(e).Z for els in elements for e in els if counts.get(e, 0) == 0})


def f_block(z: int) -> bool:
    """A lanthanoid or actinoid (La–Lu, Ac–Lr)."""
    e = Element.from_Z(int(z))
    return bool(e.is_lanthanoid or e.is_actinoid)


def table_distance(a: int, b: int) -> int:
    """|Δrow| + |Δgroup| between two elements in pymatgen's periodic table (which puts the f-block in group 3)."""
    ea, eb = Element.from_Z(int(a)), Element.from_Z(int(b))
    return abs(ea.row - eb.row) + abs(ea.group - eb.group)


def draw_candidates(unseen: Sequence[int], trained: np.ndarray) -> dict[int, np.ndarray]:
    """Where each never-trained element's row is drawn from: for a lanthanoid or actinoid, the ``trained``
    elements nearest to it by :func:`table_distance` (for Pm the trained lanthanoids, for Ac the trained
    actinoids); for any other element, every trained element."""
    out = {}
    for z in unseen:
        if f_block(z):
            d = np.array([table_distance(z, t) for t in trained])
            out[int(z)] = trained[d == d.min()]
        else:
            out[int(z)] = trained
    return out


def predicted_by_draws(graphs: list[dict], unseen: Sequence[int]) -> np.ndarray:
    """Which graphs are predicted by the mean over their draws rather than on the untrained row: those with a
    never-trained lanthanoid or actinoid (see the module's docstring)."""
    f_unseen = [int(z) for z in unseen if f_block(z)]
    return np.array([bool(np.isin(np.asarray(g["atom"]).ravel(), f_unseen).any()) for g in graphs], dtype=bool)


def draw_means(featurizer, gp, graphs: list[dict], unseen: Sequence[int], trained: Candidates,
               draws: int = DRAWS, seed: int = 0, lock: AbstractContextManager | None = None,
               batch_bonds: int = BATCH_BONDS) -> np.ndarray:
    """(draws, n) GP means of ``graphs`` with the rows of the ``unseen`` elements drawn, each independently, from the
    rows of the ``trained`` elements (atomic numbers; or, per unseen element, its own candidates: Z → atomic numbers).

    Several draws share one forward pass: draw k's copy of a graph reads each unseen element's atoms through a spare
    embedding row (one that no atom of the pass uses), set to draw k's row for that element. A latent depends on an
    atom's element only through its row, so this gives the latents of setting the element's own row draw by draw —
    to float32 round-off (at most 1.2e-6 eV/atom in the GP's mean), faster: on the default's 15 pool oxides with a
    never-trained element, 0.27 s per crystal alone (the Predict tab) against 1.48 s with one pass per draw, and
    0.21 s against 0.34 s per material in one batch (``benchmarks/embedding_draws.py``,
    docs/measurements/embedding_draws.json). A pass holds at most ``batch_bonds`` bonds (its memory, as in
    screening). Graphs without an unseen element are passed once: their mean is the same in every
    draw. Each pass sets the spare rows, runs and restores the network's weights (also on error) while holding
    ``lock``, and lets it go between passes: a server that shares one network between sessions (the dashboard)
    keeps another session's prediction waiting one pass.
    """
    lock = lock if lock is not None else nullcontext()
    layer = featurizer.model.model.get_layer(EMBEDDING_LAYER)
    unseen = [int(z) for z in unseen]
    atoms = [np.asarray(g["atom"]).ravel() for g in graphs]
    hit = np.array([bool(np.isin(a, unseen).any()) for a in atoms], dtype=bool)
    means = np.empty((draws, len(graphs)))
    plain = np.flatnonzero(~hit)
    if len(plain):  # no unseen element: the trained network's mean, the same in every draw
        with lock:
            means[:, plain] = gp.predict(featurizer.transform_graphs([graphs[i] for i in plain]))
    drawn = np.flatnonzero(hit)
    for part in bond_batches([len(graphs[i]["index1"]) for i in drawn], batch_bonds):
        rows = drawn[part]
        _draw_part(featurizer, gp, layer, [graphs[i] for i in rows], [atoms[i] for i in rows], rows, unseen,
                   trained, draws, seed, lock, batch_bonds, means)
    return means


def _draw_part(featurizer, gp, layer, graphs: list[dict], atoms: list[np.ndarray], rows: np.ndarray,
               unseen: list[int], trained: Candidates, draws: int, seed: int, lock: AbstractContextManager,
               batch_bonds: int, means: np.ndarray) -> None:
    """:func:`draw_means` for graphs whose bonds fit one pass: as many draws per pass as spare rows and the bond
    budget allow; fills ``means[:, rows]``."""
    used = set(np.concatenate(atoms).tolist())
    unseen = [z for z in unseen if z in used]  # a spare row each for the unseen elements these graphs hold
    n_rows = layer.input_dim
    spare = [r for r in range(n_rows) if r not in used]
    per_pass = min(len(spare) // len(unseen), max(1, batch_bonds // max(1, sum(len(g["index1"]) for g in graphs))))
    if per_pass < 1:  # more elements in these graphs than spare rows for their unseen ones: split them
        if len(graphs) == 1:
            raise ValueError(f"{len(used)} elements in one crystal leave no spare embedding row of {n_rows}")
        half = len(graphs) // 2
        for sl in (slice(None, half), slice(half, None)):
            _draw_part(featurizer, gp, layer, graphs[sl], atoms[sl], rows[sl], unseen, trained, draws, seed, lock,
                       batch_bonds, means)
        return
    for k0 in range(0, draws, per_pass):
        ks = range(k0, min(draws, k0 + per_pass))
        copies, fill = [], {}  # fill: spare row → the trained element whose row it takes in this pass
        for j, k in enumerate(ks):
            slots = {z: spare[j * len(unseen) + u] for u, z in enumerate(unseen)}
            for z, r in slots.items():  # one generator per (seed, draw, element): a material's draws ignore its batch
                source = trained[z] if isinstance(trained, Mapping) else trained
                fill[r] = int(np.random.default_rng([seed, k, z]).choice(source))
            for g, a in zip(graphs, atoms):
                moved = a.copy()
                for z, r in slots.items():
                    moved[a == z] = r
                copies.append({**g, "atom": moved})
        with lock:
            w0 = layer.get_weights()[0]
            w = w0.copy()
            for r, source in fill.items():
                w[r] = w0[source]
            layer.set_weights([w])
            try:
                X = featurizer.transform_graphs(copies, batch_size=len(copies))
            finally:
                layer.set_weights([w0])
        means[k0:k0 + len(ks), rows] = gp.predict(X).reshape(len(ks), len(graphs))


def embedding_spread(featurizer, gp, graphs: list[dict], unseen: Sequence[int], trained: Candidates,
                     draws: int = DRAWS, seed: int = 0, lock: AbstractContextManager | None = None) -> np.ndarray:
    """σ_emb (eV/atom) per graph: the standard deviation of the GP's mean over :func:`draw_means`."""
    if len(graphs) == 0 or len(unseen) == 0:
        return np.zeros(len(graphs))
    return draw_means(featurizer, gp, graphs, unseen, trained, draws, seed, lock).std(axis=0)


def embedding_estimates(featurizer, gp, graphs: list[dict], unseen: Sequence[int], trained: np.ndarray,
                        draws: int = DRAWS, seed: int = 0,
                        lock: AbstractContextManager | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, σ_emb) per graph over :func:`draw_means` with :func:`draw_candidates` from ``trained``: the mean over
    the draws where :func:`predicted_by_draws` (NaN elsewhere: the GP's mean on the untrained row stands), and
    their standard deviation."""
    mean = np.full(len(graphs), np.nan)
    if len(graphs) == 0 or len(unseen) == 0:
        return mean, np.zeros(len(graphs))
    means = draw_means(featurizer, gp, graphs, unseen, draw_candidates(unseen, trained), draws, seed, lock)
    by_draws = predicted_by_draws(graphs, unseen)
    mean[by_draws] = means.mean(axis=0)[by_draws]
    return mean, means.std(axis=0)


def draw_settings(draws: int = DRAWS, seed: int = 0) -> dict:
    """What a saved σ_emb and mean over draws must match to be reused (the draw scheme and candidates, the number
    of draws and the seed)."""
    return {"scheme": "per-element-seed", "candidates": "nearest for f-block, else every trained element",
            "draws": int(draws), "seed": int(seed)}


def spread_text(sigma_emb: float, mean_from_draws: bool = False) -> str:
    """What a reader is told of a material's σ_emb, and whether E_f is the mean over the draws (plain text: the
    views escape and style it)."""
    text = (f"σ includes σ_emb = {sigma_emb:.3f} eV/atom: how far the prediction moves over {DRAWS} draws of what the "
            "unseen element might be")
    if mean_from_draws:
        text = ("E_f is the mean over its draws from the unseen lanthanoid's or actinoid's trained neighbours in the "
                "periodic table; " + text)
    return text
