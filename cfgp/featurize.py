"""MEGNet featuriser: a crystal graph network whose 32-unit readout is a material's latent vector.

Training checkpoints every epoch (weights and optimiser state) and resumes where it stopped.
Weights are saved with ``save_weights`` and reloaded into a model rebuilt from the same
settings, because megnet's own save/from_file round trip fails with tf-keras 2.21.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

import cfgp  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from cfgp.data import DataError, RecordIssue, StageLaps
from cfgp.structure_checks import ImplausibleStructure, check_graph_size, check_structure

LATENT_LAYER = "readout_0"  # the paper's "Dense 32"
WEIGHTS_FILE = "megnet.weights.h5"
SETTINGS_FILE = "megnet.settings.json"


@contextmanager
def _quiet_weight_loading():
    """Silence two messages every model load printed into the server log, both about state the load replaces:
    tf-keras skipping the saved Adam slots (checkpoints keep them for resuming; inference has no optimiser to
    fill) and megnet's layers reusing one unseeded initialiser (its values are overwritten by the weights)."""
    absl = logging.getLogger("absl")

    def drop(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Skipping variable loading for optimizer")

    absl.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The initializer .* is unseeded", category=UserWarning)
            yield
    finally:
        absl.removeFilter(drop)


#: glibc's mallopt parameters (malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_MALLOC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_TOP_PAD: 0, _M_MMAP_MAX: 65536}
#: while training: no block from its own mapping, and up to 1 GiB of free heap kept (256 MiB more taken per growth)
_MALLOC_TRAINING = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 256 << 20}


@functools.lru_cache(maxsize=1)
def libc():
    """The C library (glibc) through ctypes, or None where there is none to tune (macOS, musl)."""
    try:
        lib = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None


@contextmanager
def freed_memory_kept():
    """Keep the memory a training frees in the process, and hand it back when training ends.

    Each training step allocates and frees the same large tensors (a batch's bond Gaussians, activations,
    gradients). glibc gives blocks above its mmap threshold their own mappings and trims the heap's top, so every
    batch took its memory back from the kernel as fresh zeroed pages: 230,000 page faults a second per training and
    a third of its CPU time in the kernel (measured on the paper-scale retrains). With no block mapped on its own
    and 1 GiB of free heap kept, an epoch faults 67 times less and takes 32 % less CPU and wall time, for 0.5 GB
    more peak memory (4 Å network, 600 oxides, one TensorFlow thread: 7.2 against 10.5 CPU s and 9.2 against 13.6 s
    per epoch, 2.18 against 1.68 GB; ``benchmarks/epoch_cost.py --configs 4A-b32-1thread 4A-b32-1thread-kept``,
    docs/measurements/epoch_cost_memory.json). The defaults come back afterwards, with one trim, so a process that
    goes on (a notebook, ``cfgp retrain`` re-featurising) returns the memory. Arithmetic is untouched: the same
    epochs give the same weights. Nothing happens without glibc."""
    lib = libc()
    if lib is None:
        yield
        return
    for param, value in _MALLOC_TRAINING.items():
        lib.mallopt(param, value)
    try:
        yield
    finally:
        for param, value in _MALLOC_DEFAULTS.items():
            lib.mallopt(param, value)
        lib.malloc_trim(0)


#: Neighbour pairs (bonds) per MEGNet forward pass (a screening chunk's passes, the embedding draws' copies). A
#: pass expands each bond distance into 100 Gaussians and holds several 32-64-unit activations per bond (~2-4 kB per
#: bond in all), so the pass, not the chunk, sets the transient memory: 256 real oxides of 50 atoms in one pass took
#: a process from 1.4 to 3.3 GB. A structure is never split; one may have up to ``MAX_BONDS`` (100,000), so a pass
#: is bounded either way.
BATCH_BONDS = 50_000


def bond_batches(bonds: list[int], budget: int) -> Iterator[list[int]]:
    """Consecutive positions grouped so that each group holds at most ``budget`` bonds (or one structure)."""
    batch: list[int] = []
    total = 0
    for i, b in enumerate(bonds):
        if batch and total + b > budget:
            yield batch
            batch, total = [], 0
        batch.append(i)
        total += b
    if batch:
        yield batch


#: the crystal-graph cut-off (Å) of new networks: the shipped default's (data/default/megnet.settings.json) and
#: matgl's formation-energy example's; megnet's own default is 5 Å, with about twice the bonds and time per epoch
DEFAULT_CUTOFF = 4.0


@dataclass(frozen=True)
class MEGNetSettings:
    """Everything that defines the network; saved beside the weights."""

    cutoff: float = DEFAULT_CUTOFF
    n_gaussians: int = 100
    gaussian_width: float = 0.5
    nblocks: int = 3
    n1: int = 64
    n2: int = 32
    n3: int = 16
    embedding_dim: int = 16
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    """What a resumed training run needs to carry on: saved as JSON after every epoch."""

    epoch: int = 0
    best_epoch: int = -1
    best_val_mae: float = float("inf")
    history: list = field(default_factory=list)
    finished: bool = False
    reason: str = ""
    lr: float | None = None
    since_lr_change: int = 0
    # early stopping on *meaningful* progress: the epoch and MAE of the last improvement by at least
    # ``min_rel_improvement`` (the paper trained "until the validation error equilibrated")
    plateau_epoch: int = -1
    plateau_val_mae: float = float("inf")


def training_progress(state: dict, patience: int) -> dict:
    """Where a training stands, from its saved state (``training/train_state.json`` as a dict): the epoch reached,
    the best validation MAE and its epoch, the epoch the stopping rule counts from (``plateau_epoch``: the last
    improvement by the rule's margin) and the earliest epoch at which a rule of ``patience`` can stop it (None once
    finished); read by the reports of jobs still training."""
    plateau = state.get("plateau_epoch")
    return {"epoch": state.get("epoch"), "best_epoch": state.get("best_epoch"),
            "best_val_mae": state.get("best_val_mae"), "plateau_epoch": plateau,
            "earliest_stop": None if state.get("finished") or plateau is None else plateau + patience,
            "finished": state.get("finished"), "reason": state.get("reason")}


def training_seconds(history: list[dict], key: str = "seconds") -> float | None:
    """Seconds of training summed over every sitting of a resumed run: wall-clock (``seconds``, which counts a
    paused process's pause too) or the process's CPU time (``cpu_seconds``, all its threads; not counted while it
    is paused). None if an epoch did not log ``key`` (epochs logged before CPU time was).

    Each epoch logs the seconds since its sitting started, so the count restarts when a run is resumed; a sitting's
    last logged epoch holds its length (a killed sitting loses at most the epoch it was in)."""
    total, last, sitting = 0.0, 0.0, None
    for row in history:
        if key not in row:
            return None
        seconds = float(row[key])
        # a new sitting: its start time changes (logged since); for older logs, the count going back
        if (row.get("sitting_start", sitting) != sitting) if "sitting_start" in row else seconds < last:
            total += last
        sitting, last = row.get("sitting_start"), seconds
    return round(total + last, 1)


def _single_precision(inputs: tuple) -> tuple:
    """A batch's float64 arrays in float32, the network's input type (the cast it would make itself, done before
    the call: the 100-Gaussian bond expansion is the batch's largest array, and this halves it)."""
    return tuple(a.astype(np.float32) if a.dtype == np.float64 else a for a in inputs)


def _quiet_megnet() -> None:
    logging.getLogger("megnet.data.graph").setLevel(logging.ERROR)
    logging.getLogger("megnet").setLevel(logging.ERROR)


def in_place_gaussians(distances: np.ndarray, centers: np.ndarray, width: float) -> np.ndarray:
    """megnet's ``GaussianDistance.convert``, exp(-((d - centres)² / width²)), as the same IEEE operations in one
    bonds × centres array: megnet's expression allocates five such float64 temporaries, which cost 1.8 ms per
    oxide against 0.24 ms here — in every forward pass and in every training epoch's batches. Bit for bit equal."""
    g = np.subtract(np.asarray(distances, dtype=np.float64)[:, None], np.asarray(centers)[None, :])
    np.square(g, out=g)
    np.negative(g, out=g)
    np.divide(g, width**2, out=g)
    np.exp(g, out=g)
    return g


@functools.lru_cache(maxsize=1)
def _in_place_gaussian_class() -> type:
    from megnet.data.graph import GaussianDistance

    class InPlaceGaussianDistance(GaussianDistance):
        """megnet's GaussianDistance with :func:`in_place_gaussians` as ``convert`` (same numbers, less memory)."""

        def convert(self, d: np.ndarray) -> np.ndarray:
            return in_place_gaussians(d, self.centers, self.width)

    return InPlaceGaussianDistance


def gaussian_distance(centers: np.ndarray, width: float):
    """megnet's GaussianDistance converter whose ``convert`` is :func:`in_place_gaussians` (same numbers)."""
    return _in_place_gaussian_class()(centers, width)


def build_model(settings: MEGNetSettings):
    """A fresh megnet MEGNetModel with a CrystalGraph (cutoff, Gaussian bond expansion)."""
    import tensorflow as tf
    from megnet.data.crystal import CrystalGraph
    from megnet.models import MEGNetModel

    _quiet_megnet()
    tf.keras.utils.set_random_seed(settings.seed)
    centers = np.linspace(0, settings.cutoff, settings.n_gaussians)
    graph = CrystalGraph(cutoff=settings.cutoff, bond_converter=gaussian_distance(centers, settings.gaussian_width))
    return MEGNetModel(
        nfeat_edge=settings.n_gaussians,
        nfeat_global=2,
        nblocks=settings.nblocks,
        n1=settings.n1,
        n2=settings.n2,
        n3=settings.n3,
        embedding_dim=settings.embedding_dim,
        lr=settings.lr,
        graph_converter=graph,
        metrics=["mae"],
    )


class MEGNetFeaturizer:
    """Structures in, (n, 32) latent vectors out.

    >>> feat = MEGNetFeaturizer.load("data/default")        # doctest: +SKIP
    >>> X = feat.transform(structures)                       # doctest: +SKIP
    """

    def __init__(self, settings: MEGNetSettings = MEGNetSettings(), model=None):
        self.settings = settings
        self.model = model if model is not None else build_model(settings)
        self._latent_model = self._forward_fn = None

    # ---------------------------------------------------------------- graphs
    def to_graphs(
        self, structures: Sequence, names: Sequence[str] | None = None, on_error: str = "skip", progress: bool = False,
        checked: bool = False, timings: dict[str, float] | None = None,
    ) -> tuple[list[dict], np.ndarray, list[RecordIssue]]:
        """Crystal graphs for the structures that convert; returns (graphs, kept positions, issues).

        ``checked``: the structures already passed :func:`~cfgp.structure_checks.check_structure` (e.g. from
        :func:`~cfgp.data.parse_cif`), so only the graph-size check runs. ``timings`` accumulates seconds
        under "checks" and "graph"."""
        _quiet_megnet()
        lap = StageLaps(timings)
        names = names if names is not None else [f"structure #{i + 1}" for i in range(len(structures))]
        graphs, kept, issues = [], [], []
        it = enumerate(structures)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(structures), desc="crystal graphs", unit="struct")
        for i, s in it:
            try:
                # bounded checks before megnet's unbounded neighbour search (a 0.1 Å cell took >8 GB)
                if not checked:
                    check_structure(s)
                bonds = check_graph_size(s, self.settings.cutoff)
                lap("checks")
                if bonds == 0:  # e.g. Cs or Rb metal at 4 Å (neighbours ~5 Å)
                    raise ImplausibleStructure(f"no two atoms within this MEGNet's {self.settings.cutoff:g} Å cut-off, "
                                               "so it has no crystal graph to predict from")
                g = self.model.graph_converter.convert(s)
                lap("graph")
            except ImplausibleStructure as exc:
                issue = RecordIssue(str(names[i]), str(exc))
                if on_error == "raise":
                    raise DataError(str(issue)) from None
                issues.append(issue)
                continue
            except Exception as exc:  # megnet raises assorted errors for odd cells
                issue = RecordIssue(str(names[i]), f"crystal graph failed ({exc})")
                if on_error == "raise":
                    raise DataError(str(issue)) from None
                issues.append(issue)
                continue
            graphs.append(g)
            kept.append(i)
        return graphs, np.asarray(kept, dtype=int), issues

    def _generator(self, graphs: list[dict], targets=None, shuffle: bool = False, batch_size: int | None = None):
        inputs = self.model.graph_converter.get_flat_data(graphs, targets)
        return self.model._create_generator(
            *inputs, batch_size=batch_size or self.settings.batch_size, is_shuffle=shuffle
        )

    # -------------------------------------------------------------- training
    def fit(
        self,
        structures: Sequence,
        y: Sequence[float],
        *,
        val_structures: Sequence,
        val_y: Sequence[float],
        epochs: int = 500,
        patience: int = 60,
        checkpoint_dir: str | Path | None = None,
        max_seconds: float | None = None,
        progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None,
        min_rel_improvement: float = 0.0,
    ) -> "MEGNetFeaturizer":
        """Train on (structures, y), early-stopping on the validation MAE.

        With ``checkpoint_dir`` every epoch is checkpointed and a later call resumes
        (same settings) from the last epoch; at the end the best weights are restored.
        """
        graphs, kept, issues = self.to_graphs(structures, progress=progress)
        val_graphs, val_kept, val_issues = self.to_graphs(val_structures, progress=progress)
        if len(graphs) == 0 or len(val_graphs) == 0:
            raise DataError("no trainable structures (graph conversion failed for all)")
        y = np.asarray(y, dtype=float)[kept]
        val_y = np.asarray(val_y, dtype=float)[val_kept]
        return self.fit_graphs(
            graphs, y, val_graphs, val_y, epochs=epochs, patience=patience, checkpoint_dir=checkpoint_dir,
            max_seconds=max_seconds, progress=progress, on_epoch=on_epoch, min_rel_improvement=min_rel_improvement,
        )

    def fit_graphs(
        self, graphs, y, val_graphs, val_y, *, epochs=500, patience=60, checkpoint_dir=None,
        max_seconds=None, progress=True, on_epoch=None, lr_patience: int = 20, min_lr: float = 1e-5,
        min_rel_improvement: float = 0.0,
    ) -> "MEGNetFeaturizer":
        """Train on graphs; stop after ``patience`` epochs in which the best validation MAE has not improved
        by at least ``min_rel_improvement`` (relative; 0 means any improvement), or after ``epochs``."""
        import tensorflow as tf

        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        state = TrainState()
        ckpt = tf.train.Checkpoint(model=self.model.model, optimizer=self.model.model.optimizer)
        manager = None
        if ckpt_dir is not None:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            settings_path = ckpt_dir / SETTINGS_FILE
            if settings_path.exists():
                saved = json.loads(settings_path.read_text())
                if saved != self.settings.to_dict():
                    raise ValueError(f"{ckpt_dir} holds a run with other settings: {saved}")
            else:
                settings_path.write_text(json.dumps(self.settings.to_dict(), indent=1))
            manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir / "last"), max_to_keep=1)
            state_path = ckpt_dir / "train_state.json"
            if state_path.exists() and manager.latest_checkpoint:
                state = TrainState(**json.loads(state_path.read_text()))
                ckpt.restore(manager.latest_checkpoint).expect_partial()
                if state.finished and state.reason.startswith("reached") and state.epoch < epochs:
                    state.finished, state.reason = False, ""  # asked for more epochs than last time
        if state.plateau_epoch < 0 and state.best_epoch >= 0:  # a state saved before plateau tracking existed
            state.plateau_epoch, state.plateau_val_mae = state.best_epoch, state.best_val_mae
        if (state.finished and state.reason.startswith("early stop")
                and state.epoch - state.plateau_epoch < patience and state.epoch < epochs):
            state.finished, state.reason = False, ""  # resumed with a longer patience or a finer criterion
        if state.finished:
            self.train_state_ = state
            self._restore_best(ckpt_dir)
            return self
        if state.lr is not None:
            tf.keras.backend.set_value(self.model.model.optimizer.learning_rate, state.lr)

        train_gen = self._generator(graphs, list(y), shuffle=True)
        val_gen = self._generator(val_graphs, list(val_y), shuffle=False)
        featurizer = self
        start, cpu_start = time.time(), time.process_time()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, initial=state.epoch, desc="MEGNet epochs", unit="epoch")

        class _Checkpoint(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                val_mae = float(logs.get("val_mae", np.nan))
                state.epoch = epoch + 1
                state.history.append(
                    {"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)), "mae": float(logs.get("mae", np.nan)),
                     "val_mae": val_mae, "seconds": round(time.time() - start, 1),
                     "cpu_seconds": round(time.process_time() - cpu_start, 1), "sitting_start": round(start, 1)}
                )
                if val_mae < state.best_val_mae:
                    state.best_val_mae, state.best_epoch = val_mae, epoch + 1
                    if val_mae < state.plateau_val_mae * (1.0 - min_rel_improvement):
                        state.plateau_val_mae, state.plateau_epoch = val_mae, epoch + 1
                    if ckpt_dir is not None:
                        featurizer.model.model.save_weights(str(ckpt_dir / ("best." + WEIGHTS_FILE)))
                    else:
                        featurizer._best_weights = featurizer.model.model.get_weights()
                # plateau schedule: halve the learning rate after lr_patience epochs without progress
                opt = featurizer.model.model.optimizer
                state.lr = float(tf.keras.backend.get_value(opt.learning_rate))
                state.since_lr_change += 1
                if (state.epoch - state.best_epoch >= lr_patience and state.since_lr_change >= lr_patience
                        and state.lr > min_lr):
                    state.lr = max(state.lr * 0.5, min_lr)
                    tf.keras.backend.set_value(opt.learning_rate, state.lr)
                    state.since_lr_change = 0
                if np.isnan(val_mae):
                    state.finished, state.reason = True, "validation MAE is NaN"
                elif state.epoch - state.plateau_epoch >= patience:
                    by = f" by {100 * min_rel_improvement:g} %" if min_rel_improvement else ""
                    state.finished, state.reason = True, f"early stop: no improvement{by} for {patience} epochs"
                elif state.epoch >= epochs:
                    state.finished, state.reason = True, f"reached {epochs} epochs"
                if manager is not None:
                    manager.save(checkpoint_number=state.epoch)
                    tmp = ckpt_dir / "train_state.json.tmp"
                    tmp.write_text(json.dumps(asdict(state), indent=1))
                    tmp.replace(ckpt_dir / "train_state.json")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(val_mae=f"{val_mae:.4f}", best=f"{state.best_val_mae:.4f}")
                if on_epoch is not None:
                    on_epoch(state.history[-1])
                if state.finished or (max_seconds is not None and time.time() - start > max_seconds):
                    self.model.stop_training = True

        with freed_memory_kept():
            self.model.model.fit(
                train_gen, steps_per_epoch=len(train_gen), validation_data=val_gen, validation_steps=len(val_gen),
                epochs=epochs, initial_epoch=state.epoch, verbose=0, callbacks=[_Checkpoint()],
            )
        if bar is not None:
            bar.close()
        self.train_state_ = state
        self._restore_best(ckpt_dir)
        return self

    def _restore_best(self, ckpt_dir: Path | None) -> None:
        if ckpt_dir is not None and (ckpt_dir / ("best." + WEIGHTS_FILE)).exists():
            self.model.model.load_weights(str(ckpt_dir / ("best." + WEIGHTS_FILE)))
        elif getattr(self, "_best_weights", None) is not None:
            self.model.model.set_weights(self._best_weights)

    # -------------------------------------------------------------- latents
    @property
    def latent_model(self):
        """Keras model from the graph inputs to the 32-unit readout, built once. It shares the network's layers,
        so new weights (training, ``load_weights``) reach it without rebuilding."""
        if self._latent_model is None:
            import tensorflow as tf

            m = self.model.model
            self._latent_model = tf.keras.Model(m.inputs, m.get_layer(LATENT_LAYER).output)
        return self._latent_model

    def _forward(self):
        """The latent model's forward pass as one ``tf.function`` for graphs of any size, and the input dtypes.

        Keras's ``predict_on_batch`` traces its function for the first input shapes, traces again for the
        second and only then relaxes the shapes: two traces of ~2-3 s each. An input signature with every graph
        dimension free is traced once, at the first call, whatever the sizes that follow."""
        if self._forward_fn is None:
            import tensorflow as tf

            model = self.latent_model
            specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]
            fn = tf.function(lambda *x: model(list(x), training=False), input_signature=specs)
            self._forward_fn = fn, [s.dtype.as_numpy_dtype for s in specs]
        return self._forward_fn

    def transform_graphs(self, graphs: list[dict], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        if not graphs:
            return np.zeros((0, self.settings.n2))
        gen = self._generator(graphs, None, shuffle=False, batch_size=batch_size)
        it = range(len(gen))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="MEGNet latents", unit="batch")
        return self.transform_inputs([_single_precision(gen[i]) for i in it])

    def graph_inputs(self, graphs: list[dict]) -> tuple:
        """The network's input arrays for ``graphs`` as one batch (atoms, Gaussian-expanded bonds in float32 as the
        network reads them, state, indices), from megnet's own batch generator (whose bond expansion is
        :func:`in_place_gaussians`). NumPy only, so it may run in another thread than the forward pass."""
        return _single_precision(self._generator(graphs, None, shuffle=False, batch_size=len(graphs))[0])

    def transform_inputs(self, batches: list[tuple]) -> np.ndarray:
        """Latents (n, 32) from batches of :meth:`graph_inputs`: MEGNet's forward pass to the readout."""
        if not batches:
            return np.zeros((0, self.settings.n2))
        fn, dtypes = self._forward()
        out = [fn(*(np.asarray(a, dtype=d) for a, d in zip(inputs, dtypes))).numpy()[0] for inputs in batches]
        return np.concatenate(out, axis=0).astype(np.float64)

    def transform(
        self, structures: Sequence, names: Sequence[str] | None = None, batch_size: int = 256,
        progress: bool = False, on_error: str = "raise",
    ) -> np.ndarray:
        """Latent vectors (n, 32). With ``on_error='skip'`` failed structures get NaN rows."""
        graphs, kept, issues = self.to_graphs(structures, names=names, on_error=on_error, progress=progress)
        self.last_issues_ = issues
        latents = np.full((len(structures), self.settings.n2), np.nan)
        if len(kept):
            latents[kept] = self.transform_graphs(graphs, batch_size=batch_size, progress=progress)
        return latents

    def predict(self, structures: Sequence) -> np.ndarray:
        """MEGNet's own formation-energy prediction (eV/atom), for comparison with the GP."""
        graphs, kept, _ = self.to_graphs(structures, on_error="raise")
        return np.asarray(self.model.predict_graphs(graphs)).ravel()

    # ----------------------------------------------------------- save / load
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.model.save_weights(str(directory / WEIGHTS_FILE))
        (directory / SETTINGS_FILE).write_text(json.dumps(self.settings.to_dict(), indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "MEGNetFeaturizer":
        directory = Path(directory)
        weights = directory / WEIGHTS_FILE
        if not weights.exists():
            raise FileNotFoundError(f"{weights}: no MEGNet weights (train one with `cfgp train`)")
        settings = MEGNetSettings(**json.loads((directory / SETTINGS_FILE).read_text()))
        with _quiet_weight_loading():
            feat = cls(settings)
            feat.model.model.load_weights(str(weights))
        return feat

    def weights_hash(self) -> str:
        """Content hash of the weights and settings: the cache key for latents."""
        h = hashlib.sha256(json.dumps(self.settings.to_dict(), sort_keys=True).encode())
        for w in self.model.model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        return h.hexdigest()[:16]
