"""Active learning whose representation learns: fine-tune MEGNet every ``every`` picks and re-featurise.

With the network frozen (the paper's protocol and :mod:`cfgp.al`), the GP's σ depends only on where the latents
lie, never on the labels, so every strategy is a fixed design chosen before the first label is seen. Here the
network is fine-tuned on the labels every ``every`` picks (warm start from its current weights, a few epochs at
a fine-tuning learning rate, scored on the base network's own validation materials as :mod:`cfgp.retrain` does),
every material is re-featurised, the GP's hyper-parameters are refitted on the new latents, and the strategy
continues from the new posterior. So σ — and what entropy picks next — depends on what has been labelled.

Fine-tuning runs at a tenth of the base training's learning rate (chosen on validation: at 1e-3, five epochs
raised the validation MAE of the default's network from 0.074 to 0.091; at 1e-4 to 0.077–0.081). Every update
is kept by default (``keep="always"``: the representation follows the labels, as the experiment asks);
``keep="if-better"`` keeps one only if it lowers the validation MAE of the network it replaces — on the default
none of five did, since the base network's validation MAE is the minimum its own training selected. Each update's
validation MAE before and after is recorded either way.

A run is a folder::

    out/history.jsonl   header (AL settings, fine-tune settings, base run) and one record per cycle, as a frozen
                        run's history (``cycle``, ``picked``, ``n_train``, ``mae``, ``coverage_2sigma``…) plus
                        ``round``: the network update the cycle was scored with
    out/network/        the latest fine-tuned weights (resumes start from them)
    out/state.json      one entry per network state: picks it was trained on, its best validation MAE, the test
                        MAE and 2σ coverage of the GP refitted on its latents, and the seconds spent; ``finished``

The candidate pool of a seed is the frozen run's (:func:`cfgp.pipeline.al_pool_ids`), so a fine-tuned run pairs
with a frozen history of the same seed and with a fine-tuned random run of the same seed. Interrupted, it resumes
from the last saved network (cycles scored after it are redone).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cfgp.al import ActiveLearner, ALSettings, History
from cfgp.artefacts import read_json, refuse_shipped_write, write_json
from cfgp.featurize import MEGNetFeaturizer
from cfgp.gp import CFGP
from cfgp.pipeline import LATENTS_FILE, Run, al_pool_ids, repo_path
from cfgp.retrain import EARLY_STOPPING, early_stopping_ids

HISTORY_FILE, STATE_FILE, NETWORK_DIR = "history.jsonl", "state.json", "network"


@dataclass(frozen=True)
class FinetuneSettings:
    """How the representation is updated during active learning."""

    every: int = 150  # picks between network updates
    epochs: int = 5  # fine-tuning epochs per update (the best of them on the early-stopping set is kept)
    lr: float = 1e-4  # fine-tuning learning rate (a tenth of the base training's)
    keep: str = "always"  # "always", or "if-better": only an update that lowers the validation MAE

    def __post_init__(self):
        for name in ("every", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"fine-tuned active learning: {name} must be an integer ≥ 1, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise ValueError(f"fine-tuned active learning: lr must be a number in (0, 1), got {self.lr!r}")
        if self.keep not in ("always", "if-better"):
            raise ValueError(f"fine-tuned active learning: keep must be 'always' or 'if-better', got "
                             f"{str(self.keep)[:40]!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class _Graphs:
    """Crystal graphs of every material the run touches, built once (a network update only changes weights)."""

    def __init__(self, feat: MEGNetFeaturizer, base: Run, rows: np.ndarray, progress: bool):
        m = base.materials
        graphs, kept, _ = feat.to_graphs(m.structures(rows, progress=progress), names=m.ids[rows], progress=progress)
        self.rows = rows[kept]  # materials with a graph, in run.materials positions
        self.graphs = graphs
        self.at = {int(r): i for i, r in enumerate(self.rows)}

    def take(self, rows) -> list[dict]:
        return [self.graphs[self.at[int(r)]] for r in rows]

    def latents(self, feat: MEGNetFeaturizer, n: int) -> np.ndarray:
        """Latents of every material (n rows, NaN where no graph)."""
        X = np.full((n, feat.settings.n2), np.nan)
        X[self.rows] = feat.transform_graphs(self.graphs)
        return X


def _val_mae(feat: MEGNetFeaturizer, graphs: list[dict], y: np.ndarray) -> float:
    """MAE of the network's own prediction on the early-stopping materials (what fine-tuning is scored on)."""
    return float(np.mean(np.abs(np.asarray(feat.model.predict_graphs(graphs)).ravel() - y)))


def _rewrite(path: Path, header: dict, records: list[dict]) -> None:
    """Replace a history by its header and first records (a resume drops cycles scored after the last save)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    hist = History(tmp)
    for obj in (header, *records):
        hist.append(obj)
    tmp.replace(path)


def _header(base: Run, settings: ALSettings, ft: FinetuneSettings) -> dict:
    z = np.load(base.path(LATENTS_FILE), allow_pickle=False)
    return {"settings": settings.to_dict(), "finetune": ft.to_dict(), "base_run": repo_path(base.dir),
            "latents_hash": str(z["model_hash"]), "split": base.settings["split"], "early_stopping": EARLY_STOPPING}


def finetune_active_learning(base: Run, settings: ALSettings, out: str | Path,
                             ft: FinetuneSettings = FinetuneSettings(), progress: bool = False,
                             max_seconds: float | None = None, log=None) -> dict:
    """Run (or resume) one seed of active learning with the network fine-tuned every ``ft.every`` picks.

    ``settings.cycles`` picks of ``settings.batch_size`` (1 is the tested case) from the seed's candidate pool;
    returns ``state.json``'s content. ``max_seconds`` stops after the network update that crosses it.
    """
    import tensorflow as tf

    if settings.batch_size != 1:
        raise ValueError("fine-tuned active learning picks one material per cycle (batch size 1)")
    if settings.finetune_every not in (None, ft.every):
        raise ValueError(f"the settings say the network is fine-tuned every {settings.finetune_every} picks, the "
                         f"fine-tuning settings every {ft.every}")
    # how often the network is updated lives in the header's "finetune" block (as in every history so far)
    settings = replace(settings, finetune_every=None)
    log = log or (lambda msg: None)
    t0 = call_start = time.time()
    out = Path(out)
    refuse_shipped_write(out)  # before anything is made: nothing may appear inside data/default
    header = _header(base, settings, ft)
    hist_path, state_path, net_dir = out / HISTORY_FILE, out / STATE_FILE, out / NETWORK_DIR
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    state = {"rounds": [], "picks": 0, "pending": None, "finished": False, "seconds": 0.0}
    if hist_path.exists():
        saved, records = History(hist_path).read()
        if saved != header:
            raise ValueError(f"{out} holds a run with other settings ({hist_path}); choose another folder")
        if state_path.exists():
            state = read_json(state_path)
        if state["finished"]:
            return state
        records = [r for r in records if r["cycle"] <= state["picks"]]
        _rewrite(hist_path, header, records)
    else:
        History(hist_path).append(header)
    feat = MEGNetFeaturizer.load(net_dir if state["picks"] else base.dir)
    m, sp = base.materials, base.split
    candidates = m.index_of(al_pool_ids(base, settings).tolist())
    val = np.sort(m.index_of(early_stopping_ids(base)))
    graphs = _Graphs(feat, base, np.unique(np.concatenate([sp.train, candidates, sp.test])), progress)
    train0, test = (r[np.isin(r, graphs.rows)] for r in (sp.train, sp.test))
    candidates = candidates[np.isin(candidates, graphs.rows)]
    fit0 = np.setdiff1d(train0, val)
    id_row = {str(m.ids[r]): int(r) for r in candidates}
    picked = [id_row[i] for rec in records for i in rec["picked"]]
    if len(picked) != state["picks"]:
        raise ValueError(f"{hist_path}: {len(picked)} picks recorded but {state['picks']} in {state_path}")
    y = m.y
    gp_seed = base.settings["split"]["seed"]
    while True:
        r = len(state["rounds"])
        started = time.time()
        X = graphs.latents(feat, len(y))
        train = np.concatenate([train0, np.asarray(picked, dtype=int)])
        left = candidates[~np.isin(candidates, picked)]
        gp = CFGP(seed=gp_seed).fit(X[train], y[train])
        learner = ActiveLearner(gp, X[train], y[train], X[left], y[left], X[test], y[test],
                                ALSettings(**{**settings.to_dict(), "pool_size": None}),
                                pool_ids=m.ids[left])
        learner.cycle = len(picked)  # global cycle numbers (records, and each cycle's seeded draw)
        rec0 = learner.record()
        entry = {"round": r, "picks": len(picked), **(state["pending"] or {"val_mae": None, "kept": None,
                                                                           "epochs": 0}),
                 "mae": rec0["mae"], "rmse": rec0["rmse"], "coverage_2sigma": rec0["coverage_2sigma"],
                 "length_scale": float(gp.length_scale_), "pool_sigma_mean": rec0["pool_sigma_mean"]}
        if not records:
            records.append({**rec0, "round": r})
            History(hist_path).append(records[-1])
        todo = min(ft.every, settings.cycles - len(picked))
        if todo <= 0:
            entry["seconds"] = round(time.time() - started, 1)
            state["rounds"].append(entry)
            state.update(pending=None, finished=True)
            break
        for rec in learner.steps(todo):
            rec["round"] = r
            records.append(rec)
            History(hist_path).append(rec)
            picked += [id_row[i] for i in rec["picked"]]
        log(f"round {r}: {len(picked)} picks, test MAE {records[-1]['mae']:.4f}; fine-tuning MEGNet")
        # fine-tune on base train (less its early-stopping set) + every pick so far, warm from the current weights
        tf.keras.utils.set_random_seed(int(settings.seed) * 1000 + r)
        fit = np.concatenate([fit0, np.asarray(picked, dtype=int)])
        before, val_before = feat.model.model.get_weights(), _val_mae(feat, graphs.take(val), y[val])
        tf.keras.backend.set_value(feat.model.model.optimizer.learning_rate, ft.lr)
        feat.fit_graphs(graphs.take(fit), y[fit], graphs.take(val), y[val], epochs=ft.epochs,
                        patience=ft.epochs + 1, progress=False)
        val_after = float(feat.train_state_.best_val_mae)
        kept = ft.keep == "always" or val_after < val_before
        if not kept:
            feat.model.model.set_weights(before)
        tmp = out / (NETWORK_DIR + ".tmp")
        feat.save(tmp)
        if net_dir.exists():
            for f in net_dir.iterdir():
                f.unlink()
            net_dir.rmdir()
        tmp.rename(net_dir)
        entry["seconds"] = round(time.time() - started, 1)
        state["rounds"].append(entry)
        state.update(picks=len(picked), pending={"val_mae": val_after if kept else val_before,
                                                 "val_mae_before": val_before, "val_mae_tuned": val_after,
                                                 "kept": kept, "epochs": ft.epochs})
        state["seconds"] = round(state.get("seconds", 0.0) + time.time() - t0, 1)
        t0 = time.time()
        write_json(state_path, state)
        if max_seconds is not None and time.time() - call_start >= max_seconds:
            return state
    state["seconds"] = round(state.get("seconds", 0.0) + time.time() - t0, 1)
    write_json(state_path, state)
    return state
