"""The pipeline steps over a run folder: train MEGNet → featurise → fit the GP → evaluate.

A run folder (the shipped one is ``data/default``) holds::

    run.json               data file, split and MEGNet settings, seed
    split.json             material ids of train / pool / test
    megnet.weights.h5      trained MEGNet (+ megnet.settings.json)
    training/              checkpoints and history for resuming training
    latents.npz            32-d latents for every material, keyed by the MEGNet hash
    gp.json                GP hyper-parameters and settings
    al/*.jsonl             active-learning histories (a header with the settings, then a record per cycle),
                           named by Run.al_history_path, listed by Run.al_histories from their headers
    manifest.json          package versions and file hashes

The shipped run is read-only: a ``Run`` of it writes whatever it makes (histories, maps, refits) to a
user folder (:func:`cfgp.artefacts.default_overlay`, ``$CFGP_HOME``) and reads each artefact from
there if present, else from ``data/default``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from cfgp.al import (GZIP_SUFFIX, ActiveLearner, ALSettings, History, HistoryError, history_name, pool_positions,
                     run_history, same_run)
from cfgp.artefacts import (DEFAULT_RUN, ReadOnlyRunError, cache_dir, default_overlay, is_shipped_default, load_npz,
                            read_json, refuse_shipped_write, save_npz, write_json)
from cfgp.data import DEFAULT_DATASET, DEFAULT_ENERGY_WINDOW, Materials, dataset_sha256, load_materials
from cfgp.featurize import MEGNetFeaturizer, MEGNetSettings, TrainState
from cfgp.gp import CFGP, device_label
from cfgp.motifs import MOTIFS_FILE, is_phosphate, material_motifs
from cfgp.splits import Split, SplitSettings, make_split
from cfgp.uncertainty.metrics import regression_metrics

RUN_FILE = "run.json"
SPLIT_FILE = "split.json"
LATENTS_FILE = "latents.npz"
GP_FILE = "gp.json"
#: the saved GP's mean and σ of every material (written by `cfgp fit`; see :func:`predictions`)
PREDICTIONS_FILE = "predictions.npz"


def repo_path(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it (portable in committed settings), else absolute."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(DEFAULT_DATASET.parent.parent))
    except ValueError:
        return str(path.resolve())


def from_repo_path(path: str | Path) -> Path:
    """The inverse of :func:`repo_path`: a path written in committed settings, relative to the repository root."""
    p = Path(path)
    return p if p.is_absolute() else DEFAULT_DATASET.parent.parent / p


def _data_path(run: dict) -> Path:
    return from_repo_path(run["data"])


# the settings blocks of runs made from another run (``cfgp retrain``, ``cfgp family-network``); each names its base
DERIVED_RUN_BLOCKS = ("retrain", "family_network")


def derived_run(base: "Run", out: str | Path, kind: str, block: dict, train: np.ndarray, pool: np.ndarray,
                same: Callable[[dict | None], dict | None] = lambda b: b) -> "Run":
    """Create (or check, when resuming) a run folder made from ``base``: ``train`` and ``pool`` (row positions in
    ``base``'s materials) with ``base``'s test split, and ``base``'s settings plus ``block`` under ``kind`` (one of
    :data:`DERIVED_RUN_BLOCKS`; the block names its base in ``base_run``).

    A folder that already holds ``kind`` with other settings (compared through ``same``) is refused, so that a
    resumed job never mixes two experiments; nothing is written inside the shipped default.
    """
    if kind not in DERIVED_RUN_BLOCKS:
        raise ValueError(f"unknown kind of derived run {kind!r}; one of {', '.join(DERIVED_RUN_BLOCKS)}")
    out = Path(out)
    if (out / RUN_FILE).exists():
        saved = read_json(out / RUN_FILE).get(kind)
        if same(saved) != same(block):
            raise ValueError(f"{out} holds a {kind.replace('_', ' ')} with other settings {saved}; choose another "
                             "--out")
        return Run(out)
    refuse_shipped_write(out)  # before the folder is made: nothing may appear inside data/default
    out.mkdir(parents=True, exist_ok=True)
    m = base.materials
    saved = read_json(base.dir / SPLIT_FILE)
    write_json(out / SPLIT_FILE, {"settings": saved["settings"], "train": m.ids[train].tolist(),
                                  "pool": m.ids[pool].tolist(), "test": m.ids[base.split.test].tolist()})
    write_json(out / RUN_FILE, {**base.settings, kind: block})
    return Run(out)


class Run:
    """A run folder and what it holds; artefacts load lazily and are cached.

    ``dir`` is where the run's artefacts are read from, ``write_dir`` where new ones go: the same
    folder, except for the shipped default, whose new artefacts go to the user's folder
    (``$CFGP_HOME/runs/default``) so that ``data/default`` stays what its manifest says.
    """

    def __init__(self, directory: str | Path = DEFAULT_RUN, write_dir: str | Path | None = None):
        self.dir = Path(directory)
        if not (self.dir / RUN_FILE).exists():
            raise FileNotFoundError(f"{self.dir}: not a cfgp run folder (no {RUN_FILE}); run `cfgp train` first")
        self.shipped = is_shipped_default(self.dir)
        self.write_dir = Path(write_dir) if write_dir else (default_overlay() if self.shipped else self.dir)
        self.settings = read_json(self.dir / RUN_FILE)
        self._materials: Materials | None = None
        self._split: Split | None = None
        self._latents: tuple[str, np.ndarray] | None = None  # (file mtime/size key, array)

    def path(self, name: str) -> Path:
        """Where artefact ``name`` is read from: the user's version in ``write_dir`` if any, else ``dir``."""
        mine = self.write_dir / name
        return mine if mine.exists() else self.dir / name

    def al_history_path(self, settings: "ALSettings") -> Path:
        """Where a run of these AL settings writes its history (the user's folder for the shipped default)."""
        return self.write_dir / AL_DIR / al_history_name(settings)

    def al_histories(self, pattern: str = "*.jsonl", committed_only: bool = False) -> list[SavedHistory]:
        """The saved AL histories, sorted by file name, each with the settings its header records (read from
        the first line alone; never from the file name). For the shipped default a history of the same file name
        in the user's folder (new, or a shipped one extended) takes the place of the shipped one; with
        ``committed_only``, only the run's own folder (``dir``) is listed. Files without a complete header yet
        are left out; a header that is not a history's, or two files holding the same run, raise a
        :class:`cfgp.al.HistoryError` naming the files."""
        folders = (self.dir,) if committed_only else (self.dir, self.write_dir)
        # a gzipped history (as shipped) and a plain one of the same name are the same run: the later folder wins
        paths = {history_name(p.name): p for folder in folders
                 for glob in (pattern, pattern + GZIP_SUFFIX) for p in sorted((folder / AL_DIR).glob(glob))}
        out, seen = [], {}
        for name in sorted(paths):
            settings = History(paths[name]).settings()
            if settings is None:
                continue
            saved = SavedHistory(paths[name], settings)
            if saved.stem in seen:
                raise HistoryError(f"{seen[saved.stem]} and {saved.path} hold the same run ({saved.stem}); "
                                   "remove one")
            seen[saved.stem] = saved.path
            out.append(saved)
        return out

    @property
    def data_path(self) -> Path:
        return _data_path(self.settings)

    @property
    def materials(self) -> Materials:
        if self._materials is None:
            # CIFs were validated when the run was made; skip re-parsing only if the file is unchanged
            trusted = self.settings.get("data_sha256") == dataset_sha256(self.data_path)
            materials = load_materials(
                self.data_path,
                energy_window=tuple(self.settings["energy_window"]) if self.settings["energy_window"] else None,
                parse_structures=not trusted,
            )
            attach_motifs(materials, self.motifs(materials))
            self._materials = materials
        return self._materials

    @property
    def base_run_dir(self) -> Path | None:
        """The run this one was made from (a retrain or a family network names it in run.json), else None."""
        for key in DERIVED_RUN_BLOCKS:
            base = (self.settings.get(key) or {}).get("base_run")
            if base:
                return from_repo_path(base)
        return None

    def motifs(self, materials: Materials | None = None) -> dict[str, dict]:
        """P-site motifs per material id (:mod:`cfgp.motifs`): from the run's motifs.json when it was made from
        this data file, else from its base run's (a retrain or family network shares its base's data), else
        computed here in memory (a reader never writes; ``init_run`` stores them). Computing them takes minutes
        on the 16,394 oxides, so a derived run must not do it again at every load."""
        paths = [self.path(MOTIFS_FILE)]
        base = self.base_run_dir
        if base is not None and (base / RUN_FILE).exists():
            paths.append(Run(base).path(MOTIFS_FILE))
        for path in paths:
            if path.exists():
                saved = read_json(path)
                if saved.get("data_sha256") == self.settings.get("data_sha256"):
                    return saved["motifs"]
        m = materials if materials is not None else self.materials
        return material_motifs(m.structure, m.ids, m.frame["contains_p"].to_numpy(bool))

    @property
    def split(self) -> Split:
        if self._split is None:
            saved = read_json(self.dir / SPLIT_FILE)
            m = self.materials
            parts = {k: np.sort(m.index_of(saved[k])) for k in ("train", "pool", "test")}
            self._split = Split(**parts, settings=SplitSettings(**saved["settings"]))
        return self._split

    def featurizer(self):
        return MEGNetFeaturizer.load(self.dir)

    def latents_hash(self) -> str:
        """The hash of the network (and settings) that made the latents: what every artefact derived from them is
        keyed by."""
        return str(np.load(self.path(LATENTS_FILE), allow_pickle=False)["model_hash"])

    def latents(self) -> np.ndarray:
        """Latents aligned with ``materials`` rows (from latents.npz; cached until the file changes)."""
        path = self.path(LATENTS_FILE)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no latents; run `cfgp featurize`")
        stat = path.stat()
        key = f"{path}-{stat.st_mtime_ns}-{stat.st_size}"
        if self._latents is None or self._latents[0] != key:
            z = np.load(path, allow_pickle=False)
            pos = self.materials.index_of(z["material_id"].tolist())
            X = np.full((len(self.materials), z["X"].shape[1]), np.nan)
            X[pos] = z["X"]
            self._latents = (key, X)
        return self._latents[1]


def attach_motifs(materials: Materials, motifs: dict[str, dict]) -> None:
    """Add ``p_motif`` ('PO4', 'HPO3', 'PO3F', 'other P' or '') and ``is_phosphate`` (a phosphate unit) columns."""
    f = materials.frame
    f["p_motif"] = [motifs.get(str(i), {}).get("motif", "") for i in f["material_id"]]
    f["is_phosphate"] = f["p_motif"].map(is_phosphate).astype(bool)


def write_motifs(run: Run, progress: bool = False) -> Path:
    """Compute the run's P-site motifs once and store them (``motifs.json``, keyed by the data file's hash)."""
    m = run.materials
    motifs = material_motifs(m.structure, m.ids, m.frame["contains_p"].to_numpy(bool), progress=progress)
    path = run.write_dir / MOTIFS_FILE
    write_json(path, {"data_sha256": run.settings.get("data_sha256"), "rule": "P site with 4 neighbours: O4, "
                      "HO3 or FO3 (CrystalNN; distance rule above 64 sites)", "motifs": motifs})
    attach_motifs(m, motifs)
    return path


def init_run(
    directory: str | Path,
    data: str | Path = DEFAULT_DATASET,
    split: SplitSettings = SplitSettings(),
    energy_window: tuple[float, float] | None = DEFAULT_ENERGY_WINDOW,
    val_fraction: float = 0.1,
) -> Run:
    """Create (or check) a run folder: validate the data once, fix the split, save settings."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    settings = {
        "data": repo_path(data),
        "energy_window": list(energy_window) if energy_window else None,
        "split": split.to_dict(),
        "val_fraction": val_fraction,
    }
    run_file = directory / RUN_FILE
    if run_file.exists():
        old = read_json(run_file)
        clash = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if old.get("data_sha256") not in (None, dataset_sha256(data)):
            clash["data_sha256"] = "the data file changed since this run was made"
        if clash:
            raise ValueError(f"{directory} was made with other settings {clash}; use another --run folder")
        return Run(directory)
    materials = load_materials(data, energy_window=energy_window, min_records=split.n_train + split.n_test + 1)
    sp = make_split(materials.ids, split)
    ids = materials.ids
    write_json(directory / SPLIT_FILE, {"settings": split.to_dict(), **{k: ids[getattr(sp, k)].tolist()
                                                                      for k in ("train", "pool", "test")}})
    settings["load_report"] = {"n_read": materials.report.n_read, "n_kept": materials.report.n_kept,
                               "skipped": [str(i) for i in materials.report.skipped],
                               "filtered": [str(i) for i in materials.report.filtered]}
    # every CIF parsed and passed validation above: later loads of this exact file skip re-parsing
    settings["data_sha256"] = dataset_sha256(data)  # a file's sha256, or a CIF folder's contents
    write_json(run_file, settings)
    run = Run(directory)
    run._materials, run._split = materials, sp
    write_motifs(run)  # once, while the structures are parsed anyway
    return run


def validation_positions(run: Run, seed: int) -> np.ndarray:
    """Rows of the seeded early-stopping part of the train split (``val_fraction`` of it) that
    :func:`train_megnet` holds out when no ``val_ids`` are given."""
    train = np.random.default_rng(seed).permutation(run.split.train)
    n_val = max(1, int(round(run.settings["val_fraction"] * len(train))))
    return np.sort(train[:n_val])


#: the stopping rule of a base network (`cfgp train`), the one the shipped default was trained by (its
#: training/summary.json): at most this many epochs, stopped after ``TRAIN_PATIENCE`` epochs whose best validation
#: MAE has not dropped by ``TRAIN_MIN_REL_IMPROVEMENT`` (relative; 0 = any drop)
TRAIN_MAX_EPOCHS, TRAIN_PATIENCE, TRAIN_MIN_REL_IMPROVEMENT = 1000, 100, 0.01


def train_megnet(
    run: Run,
    settings=None,
    epochs: int = TRAIN_MAX_EPOCHS,
    patience: int = TRAIN_PATIENCE,
    max_seconds: float | None = None,
    progress: bool = True,
    min_rel_improvement: float = TRAIN_MIN_REL_IMPROVEMENT,
    val_ids=None,
    init_from: str | Path | None = None,
) -> tuple[MEGNetFeaturizer, TrainState]:
    """Train MEGNet on the train split (a seeded validation part of it for early stopping).

    ``val_ids`` fixes the early-stopping materials (a retrain keeps its base model's, which that model never
    fitted, so that a warm start is not stopped on materials it has memorised); ``init_from`` is a folder
    whose weights start the training (a warm start) when there is no checkpoint to resume yet.
    """
    if run.shipped:
        raise ReadOnlyRunError(f"{run.dir} is the shipped default and is not retrained: a new model would "
                               "silently replace every shipped result; train into a folder of your own with "
                               "`cfgp train --run FOLDER`")
    settings = settings or MEGNetSettings(seed=run.settings["split"]["seed"])
    m, sp = run.materials, run.split
    val = validation_positions(run, settings.seed) if val_ids is None else np.sort(m.index_of(val_ids))
    if not np.isin(val, sp.train).all():
        raise ValueError("validation materials must be part of the train split")
    fit = np.setdiff1d(sp.train, val)
    feat = MEGNetFeaturizer(settings)
    if init_from is not None and not (run.dir / "training" / "train_state.json").exists():
        start = MEGNetFeaturizer.load(init_from)
        if start.settings.to_dict() != settings.to_dict():
            raise ValueError(f"{init_from} was trained with other MEGNet settings: {start.settings.to_dict()}")
        feat.model.model.set_weights(start.model.model.get_weights())
    structures = m.structures(np.concatenate([fit, val]), progress=progress)
    feat.fit(
        structures[: len(fit)], m.y[fit], val_structures=structures[len(fit):], val_y=m.y[val],
        epochs=epochs, patience=patience, checkpoint_dir=run.dir / "training", max_seconds=max_seconds,
        progress=progress, min_rel_improvement=min_rel_improvement,
    )
    state = feat.train_state_
    write_json(run.dir / "training" / "summary.json", {
        "n_fit": len(fit), "n_val": len(val), "val_ids": m.ids[val].tolist(),
        "epochs_run": state.epoch, "best_epoch": state.best_epoch, "best_val_mae": state.best_val_mae,
        "finished": state.finished, "reason": state.reason or "time limit (resume with the same command)",
        "epochs": epochs, "patience": patience, "min_rel_improvement": min_rel_improvement,
    })
    feat.save(run.dir)
    return feat, state


def featurize(run: Run, progress: bool = True, batch_size: int = 256) -> np.ndarray:
    """Latents for every material of the run, cached in latents.npz under the MEGNet hash."""
    feat = run.featurizer()
    key = feat.weights_hash()
    path = run.path(LATENTS_FILE)
    m = run.materials
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if str(z["model_hash"]) == key and set(z["material_id"].tolist()) == set(m.ids.tolist()):
            return run.latents()
    X = feat.transform(m.structures(progress=progress), names=m.ids, batch_size=batch_size, progress=progress,
                       on_error="skip")
    save_npz(run.write_dir / LATENTS_FILE, material_id=m.ids.astype(str), X=X, model_hash=np.array(key))
    return X


def _gp_key(run: Run, gp_params: dict) -> dict:
    z = np.load(run.path(LATENTS_FILE), allow_pickle=False)
    return {"gp_params": gp_params, "latents_hash": str(z["model_hash"]), "split": run.settings["split"]}


def _train_data(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Latents and energies of the train split, without materials whose featurisation failed."""
    X, y = run.latents(), run.materials.y
    tr = run.split.train
    ok = np.isfinite(X[tr]).all(axis=1)
    return X[tr][ok], y[tr][ok]


def predict_rows(gp, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GP mean and σ per row of X; NaN for rows whose latent is missing (failed featurisation)."""
    ok = np.isfinite(X).all(axis=1)
    mean, std = np.full(len(X), np.nan), np.full(len(X), np.nan)
    if ok.any():
        mean[ok], std[ok] = gp.predict(X[ok], return_std=True)
    return mean, std


def held_out_positions(run: Run) -> np.ndarray:
    """Rows of the train split MEGNet held out for early stopping (never fitted): from its training summary,
    else recomputed from its seed as :func:`train_megnet` chose them."""
    summary = run.dir / "training" / "summary.json"
    if summary.exists():
        return np.sort(run.materials.index_of(read_json(summary)["val_ids"]))
    return validation_positions(run, read_json(run.dir / "megnet.settings.json")["seed"])


def fit_gp(run: Run, gp=None, refit: bool = False, held_out: bool = False) -> CFGP:
    """Fit GP hyper-parameters on the train latents (saved to gp.json; reloaded when settings match).

    ``held_out`` fits them instead to predict MEGNet's early-stopping materials from the rest of the train
    split (:meth:`CFGP.fit_held_out`), so that σ is tuned on latents the network did not train on; the test
    split is never used.
    """
    gp = gp if gp is not None else CFGP(seed=run.settings["split"]["seed"])
    key = _gp_key(run, gp.settings())
    if held_out:
        key["objective"] = "held-out predictive density of MEGNet's early-stopping materials"
    mine, base = run.write_dir / GP_FILE, run.dir / GP_FILE
    if not refit:
        if mine.exists() and read_json(mine).get("key") == key:
            return load_gp(run)
        if mine != base and base.exists() and read_json(base).get("key") == key:
            mine.unlink(missing_ok=True)  # the user's refit with other settings no longer hides the shipped fit
            return load_gp(run)
    X, y = _train_data(run)
    if held_out:
        Xa, ya = run.latents(), run.materials.y
        held = held_out_positions(run)
        fit = np.setdiff1d(run.split.train, held)
        held, fit = (p[np.isfinite(Xa[p]).all(axis=1)] for p in (held, fit))
        gp.fit_held_out(Xa[fit], ya[fit], Xa[held], ya[held])
    else:
        gp.fit(X, y)
    write_json(mine, {"key": key, "gp": gp.to_dict(), "n_train": len(y)})
    return gp


def load_gp(run: Run, conditioned: bool = True) -> CFGP:
    """The saved GP, conditioned on the train split (no hyper-parameter fitting)."""
    path = run.path(GP_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no fitted GP; run `cfgp fit`")
    gp = CFGP.from_dict(read_json(path)["gp"])
    if conditioned:
        gp.condition(*_train_data(run))
    return gp


def predictions_key(run: Run) -> str:
    """What the saved GP's predictions of every material depend on: gp.json as written (hyper-parameters,
    scaling, method), the network behind the latents, the train split's rows and labels, and the materials."""
    h = hashlib.sha256(run.path(GP_FILE).read_bytes())
    h.update(run.latents_hash().encode())
    tr = np.asarray(run.split.train, dtype=np.int64)
    h.update(tr.tobytes())
    h.update(np.asarray(run.materials.y, dtype=np.float64)[tr].tobytes())
    h.update("|".join(map(str, run.materials.ids)).encode())
    return h.hexdigest()[:24]


def predictions(run: Run, gp=None, saved: bool | None = None, reader: bool = True) -> dict[str, np.ndarray]:
    """GP mean and σ for every material of the run (NaN where a latent is missing).

    The run's own GP (``gp`` None, or ``saved=True`` for that GP already loaded with :func:`load_gp`) predicts the
    same numbers until gp.json, the latents, the train split or its labels change, so they are kept
    (:func:`predictions_key`): ``predictions.npz`` in the run folder, which `cfgp fit` writes and the shipped
    default carries, else — for a ``reader``, who never writes into a run — the user cache. An app start on the
    default then skips the GP algebra for 16,388 materials (4.3 s on one core). Any other GP (refitted, or
    conditioned on other data) is always computed.
    """
    saved = gp is None if saved is None else saved
    if not saved:
        return _predict_all(run, gp)
    key = predictions_key(run)
    cached = cache_dir() / f"predictions-{key}.npz"
    ids = np.asarray(run.materials.ids).astype(str)
    pred = None
    for path in (run.path(PREDICTIONS_FILE), cached):
        z = load_npz(path) if path.exists() else None  # None: torn or foreign, predicted anew
        if z is None or str(z.get("key")) != key or not np.array_equal(z.get("material_id"), ids):
            continue  # made by another GP, network, split or data set
        pred = {"mean": z["mean"], "std": z["std"]}
        if reader or path != cached:
            return pred
        break  # a writer keeps in the run folder what a reader of it computed
    if pred is None:
        pred = _predict_all(run, gp if gp is not None else load_gp(run))
    out = cached if reader else run.write_dir / PREDICTIONS_FILE
    try:
        save_npz(out, key=np.array(key), material_id=ids, mean=pred["mean"], std=pred["std"])
    except OSError:
        if not reader:
            raise  # a reader's cache that cannot be written only costs the computation next time
    return pred


def _predict_all(run: Run, gp) -> dict[str, np.ndarray]:
    mean, std = predict_rows(gp, run.latents())
    return {"mean": mean, "std": std}


def evaluate(run: Run, gp=None) -> dict:
    """Test-split metrics of the GP conditioned on the train split."""
    t0 = time.time()
    gp = gp if gp is not None else load_gp(run)
    X, y = run.latents(), run.materials.y
    te = run.split.test
    ok = np.isfinite(X[te]).all(axis=1)
    mean, std = gp.predict(X[te][ok], return_std=True)
    out = regression_metrics(mean, std, y[te][ok])
    out.update({"n_test": int(ok.sum()), "n_train": gp.n_train_, "device": device_label(),
                "hyperparameters": gp.hyperparameters_, "seconds": round(time.time() - t0, 2)})
    return out


AL_DIR = "al"


def al_label(settings) -> str:
    """What the histories of one AL run across seeds share (strategy, batch size, pool, refit, network updates),
    e.g. ``entropy-b1-pool7195`` or ``entropy-b1-pool7195-ft150`` (MEGNet fine-tuned every 150 picks): the group a
    report or a band averages over. Built from settings, never parsed."""
    s = settings
    refit = f"-refit{s.refit_every}" if s.refit_every else ""
    pool = f"-pool{s.pool_size}" if s.pool_size else "-poolall"
    finetune = f"-ft{s.finetune_every}" if getattr(s, "finetune_every", None) else ""
    return f"{s.strategy}-b{s.batch_size}{pool}{refit}{finetune}"


def random_twin(settings: ALSettings) -> str:
    """The label of random picks under the same settings as ``settings`` (batch, pool, refit, network updates):
    the group a run is fairly measured against."""
    return al_label(replace(settings, strategy="random"))


def default_baseline(frozen_of: Mapping[str, bool]) -> str:
    """The paper's baseline among random groups (label → whether the network stayed frozen in it): the first
    frozen one, else the first; what :func:`al_baselines` and the Active learning tab's band fall back on."""
    if not frozen_of:
        raise ValueError("no groups to choose a baseline from")
    return next((k for k, frozen in frozen_of.items() if frozen), next(iter(frozen_of)))


def al_baselines(settings_of: Mapping[str, ALSettings], baseline: str | None = None) -> tuple[str, dict[str, str]]:
    """What each AL group (label → its settings) is compared with: its twin — random picks under the same
    settings (batch size, pool, refit, network updates) — where one is saved, so that a run with the network
    fine-tuned is measured against random with the network fine-tuned alike; else ``baseline``, by default the
    first random group with the network frozen (the paper's baseline). Returns (baseline, label → label)."""
    if not settings_of:
        raise ValueError("no active-learning groups to compare")
    randoms = [k for k, s in settings_of.items() if s.strategy == "random"] or list(settings_of)
    baseline = baseline or default_baseline({k: settings_of[k].finetune_every is None for k in randoms})
    against = {}
    for label, s in settings_of.items():
        twin = random_twin(s)
        against[label] = twin if twin in settings_of and twin != label else baseline
    return baseline, against


def al_history_stem(settings) -> str:
    """The name of one seed's history without its suffix, e.g. ``entropy-b1-pool7195-s0`` (a run's id in the app)."""
    return f"{al_label(settings)}-s{settings.seed}"


def al_history_name(settings) -> str:
    """The file name a history of ``settings`` is written under (:meth:`Run.al_history_path`); listings read
    the settings back from each file's header (:meth:`Run.al_histories`), never from this name."""
    return al_history_stem(settings) + ".jsonl"


@dataclass(frozen=True)
class SavedHistory:
    """One saved AL history of a run: its file and the settings its header records."""

    path: Path
    settings: "ALSettings"

    @property
    def label(self) -> str:
        return al_label(self.settings)

    @property
    def stem(self) -> str:
        return al_history_stem(self.settings)

    def read(self) -> tuple[dict | None, list[dict]]:
        return History(self.path).read()


class ALGroup(list):
    """The histories (record lists, one per seed) of one :func:`al_label`, with the settings they share (of the
    first seed, as read from its header): what :func:`cfgp.al.compare` and the figures take."""

    def __init__(self, settings: "ALSettings", histories=()):
        super().__init__(histories)
        self.settings = settings


def active_learner(run: Run, settings, gp=None, backend: str = "auto") -> ActiveLearner:
    """An ActiveLearner on the run's split: GP hyper-parameters from gp.json, fixed during the run."""
    gp = gp if gp is not None else load_gp(run, conditioned=False)
    X, y = run.latents(), run.materials.y
    sp = run.split
    ok = np.isfinite(X).all(axis=1)
    tr, po, te = (p[ok[p]] for p in (sp.train, sp.pool, sp.test))
    learner = ActiveLearner(gp, X[tr], y[tr], X[po], y[po], X[te], y[te], settings, pool_ids=run.materials.ids[po])
    learner.pool_index = po[learner.pool_positions]  # positions of the AL pool in run.materials
    return learner


def al_pool_ids(run: Run, settings) -> np.ndarray:
    """Material ids of the candidate pool an AL run of ``settings`` draws from (as :func:`active_learner`)."""
    X = run.latents()
    pool = run.split.pool
    pool = pool[np.isfinite(X[pool]).all(axis=1)]
    return run.materials.ids[pool][pool_positions(len(pool), settings)]


def al_header(run: Run, settings, gp_dict: dict) -> dict:
    z = np.load(run.path(LATENTS_FILE), allow_pickle=False)
    return {"settings": settings.to_dict(), "gp": gp_dict["hyperparameters"], "latents_hash": str(z["model_hash"]),
            "split": run.settings["split"]}


def run_active_learning(run: Run, settings, progress: bool = True, path: Path | None = None,
                        log=None) -> list[dict]:
    """Run, resume, extend or look up one seed of active learning (``al/<strategy>-...-s<seed>.jsonl``).

    A saved history of the same run (same header but for the cycle count) that already holds the
    cycles asked for answers from its records, with nothing computed or written: a shorter run is a
    prefix of a longer one, since every cycle depends only on the cycles before it. A longer run
    resumes the saved one and extends it. For the shipped default the saved history may be the
    shipped one; it is then copied to the user's folder and extended there.
    """
    import os
    import shutil
    import sys


    log = log or (lambda msg: print(msg, file=sys.stderr))
    gp = load_gp(run, conditioned=False)
    header = al_header(run, settings, gp.to_dict())
    target = Path(path) if path is not None else run.al_history_path(settings)
    shipped = shipped_history(run, target.name) if path is None and run.write_dir != run.dir else None
    for source in (target, shipped):
        if source is None or not source.exists():
            continue
        saved, records = History(source).read()
        if saved is None or not same_run(saved, header):
            continue
        if len(records) > settings.cycles:
            return records[: settings.cycles + 1]  # looked up: nothing computed or written
        if source == shipped and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            with History(shipped).open_binary() as src, open(tmp, "wb") as dst:  # the shipped file may be gzipped
                shutil.copyfileobj(src, dst)
            try:
                os.link(tmp, target)  # never replaces a history another run has started meanwhile
                log(f"extending the shipped {shipped} in {target}")
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
    # the one resume path: run_history replays the saved picks (ActiveLearner.replay) and extends the file
    learner = active_learner(run, settings, gp)
    return run_history(learner, target, header, progress=progress, log=log)


def up_to_labels(records: list[dict], labels: int | None) -> list[dict] | None:
    """The records of one history up to ``labels`` new labels (all of them for None); None when the history
    stops before. A shorter run is a prefix of a longer one, so histories of different lengths (1,500 picks for
    most strategies, 6,000 for entropy and random in the default) compare at equal labels this way."""
    if labels is None:
        return records
    new = np.array([r["n_train"] for r in records]) - records[0]["n_train"]
    if new[-1] < labels:
        return None
    return records[: int(np.searchsorted(new, labels, side="right"))]


#: a run's saved histories read once: each listed history (:meth:`Run.al_histories`) with its records, those with
#: at least one cycle; :func:`shared_labels`, :func:`load_al_histories` and :func:`cfgp.al_metrics.runs_by_seed`
#: take it so that one command reads every file once
ReadHistories = list[tuple["SavedHistory", list[dict]]]


def read_al_histories(run: Run, pattern: str = "*.jsonl") -> ReadHistories:
    """Every saved history of the run with at least one cycle, read once, in :meth:`Run.al_histories` order."""
    out = []
    for saved in run.al_histories(pattern):
        header, records = saved.read()
        if header is not None and len(records) >= 2:
            out.append((saved, records))
    return out


def shared_labels(run: Run, pattern: str = "*.jsonl", read: ReadHistories | None = None) -> int | None:
    """The most new labels every saved history of the run holds (what ``cfgp al-compare`` compares at by
    default); None without histories. ``read``: the histories already read (:func:`read_al_histories`)."""
    read = read_al_histories(run, pattern) if read is None else read
    ends = [records[-1]["n_train"] - records[0]["n_train"] for _, records in read]
    return int(min(ends)) if ends else None


def shipped_history(run: Run, name: str) -> Path:
    """The run's own history file of ``name`` (``x.jsonl``): plain, or gzipped as the shipped default holds them."""
    plain, packed = run.dir / AL_DIR / name, run.dir / AL_DIR / (name + GZIP_SUFFIX)
    return packed if packed.exists() and not plain.exists() else plain


def load_al_histories(run: Run, pattern: str = "*.jsonl", labels: int | None = None,
                      read: ReadHistories | None = None) -> dict[str, ALGroup]:
    """Saved AL histories with at least one cycle (:meth:`Run.al_histories`), grouped by :func:`al_label` of their
    headers' settings, seeds in file-name order; with ``labels``, each cut after that many new labels and those
    that stop before it left out (:func:`up_to_labels`). ``read``: the histories already read
    (:func:`read_al_histories`)."""
    groups: dict[str, ALGroup] = {}
    for saved, records in read_al_histories(run, pattern) if read is None else read:
        records = up_to_labels(records, labels)
        if records is not None:
            groups.setdefault(saved.label, ALGroup(saved.settings)).append(records)
    return groups
