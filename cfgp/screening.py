"""Screening: E_f ± σ for tens of thousands to millions of structures, streamed in chunks, resumable,
on one process or a Dask cluster.

``cfgp predict`` is a thin layer over :func:`screen`. The job, in input order:

1. :func:`plan` reads the records lazily (:func:`cfgp.record_streams.iter_records`, every read bounded) and
   decides on the spot what needs no model: a record without an id, a duplicate id, an unreadable CIF file,
   a file that cannot be read (each becomes an error line naming the record or file and why);
2. the rest go, ``chunk_size`` at a time, to a :class:`ScreeningModel` — CIF parsing and its checks, MEGNet
   latents, the GP, the domain check and calibrated σ — in this process (:class:`LocalPredictor`) or on Dask
   workers (:class:`DaskPredictor`), each of which loads the model once (:class:`ModelPlugin`);
3. the lines of each chunk are written in input order, whichever worker finished first, and flushed per
   chunk, so memory holds a few chunks whatever the input size, and a killed job leaves whole chunks behind
   (perhaps a torn last line).

Resume (:func:`resume_state`): the output file is read back; its (source, id) pairs are skipped when the
same inputs are read again (counted, so a duplicate id's error line is redone only if it is missing); a torn
last line — a kill in the middle of a write — is cut off, said, and its record redone. Output is JSON lines;
for Parquet (:class:`ParquetSink`) the lines go to a ``.partial.jsonl`` journal beside it, which is what a
resume reads, and become the Parquet file when the job ends.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from cfgp.artefacts import refuse_shipped_write
from cfgp.data import MAX_DATASET_BYTES, DataError, RecordError, StageLaps, check_record, parse_cif
from cfgp.featurize import BATCH_BONDS, bond_batches, libc
from cfgp.pipeline import Run, load_gp
from cfgp.record_streams import iter_records
from cfgp.uncertainty.applicability import load_applicability
from cfgp.uncertainty.embedding_draws import never_trained

DEFAULT_CHUNK_SIZE = 256
NO_PREDICTION = "no prediction (see error)"
#: Longest line a resume reads back from an output file (a real line has ~250 characters).
MAX_LINE_BYTES = 1 << 20
PLUGIN_NAME = "cfgp-screening"
#: Seconds a chunk on a Dask worker waits for that worker's model to load (a replacement worker's, ~20-60 s).
MODEL_LOAD_TIMEOUT = 600


# ------------------------------------------------------------------------------------------------- lines
def error_line(source: str, record: str | None, reason: str) -> dict:
    """An output line without a prediction: it names the file (and the record) and says why."""
    line = {"source": source}
    if record is not None:
        line["id"] = record
    line.update({"error": reason, "in_domain": False, "domain": NO_PREDICTION})
    return line


def _key(line: dict) -> tuple[str, str | None]:
    return line.get("source", ""), line.get("id")


def plan(paths: Iterable[str | Path], max_bytes: int = MAX_DATASET_BYTES) -> Iterator[dict]:
    """Every record of the inputs in order: an error line already decided, or ``{source, id, cif, dft}``
    to predict. Ids are checked per file as :func:`cfgp.data.validate_records` does (no energy needed)."""
    for path in paths:
        source, seen, n = str(path), set(), 0
        try:
            for record in iter_records(path, max_bytes):
                n += 1
                yield _triage(record, n, source, seen)
        except DataError as exc:
            yield error_line(source, None, str(exc))
            continue
        if n == 0:
            yield error_line(source, None, f"{source}: no records (an empty data set)")


def _triage(record, n: int, source: str, seen: set) -> dict:
    try:
        name, dft, cif = check_record(record, seen, require_energy=False)
    except RecordError as exc:
        return error_line(source, exc.label or f"record #{n}", str(exc))
    seen.add(name)
    return {"source": source, "id": name, "cif": cif, "dft": dft}


def chunks_of(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ------------------------------------------------------------------------------------------------ model
def configure_tf_threads(n: int | None) -> None:
    """Let TensorFlow use ``n`` threads per op and between ops (call before the first TF op runs): a Dask
    worker with one thread on a 2-core machine would otherwise start TF pools of 2 and oversubscribe."""
    if not n:
        return
    import tensorflow as tf  # the package (imported above) set TF_USE_LEGACY_KERAS before this

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(n))
        tf.config.threading.set_inter_op_parallelism_threads(int(n))
    except RuntimeError:
        pass  # TF already initialised in this process: it keeps its pools


class ScreeningModel:
    """What predicts one chunk: MEGNet featuriser, GP conditioned on the train split, domain model and σ
    calibration of a run. Loaded once per process (per Dask worker) and warmed up on one real structure, so
    that the first chunk does not pay for building the prediction graph."""

    def __init__(self, featurizer, gp, applicability, batch_bonds: int = BATCH_BONDS, cif_reader: str = "auto"):
        self.featurizer, self.gp, self.applicability = featurizer, gp, applicability
        self.batch_bonds, self.cif_reader = batch_bonds, cif_reader
        self.chunks_done = 0
        #: seconds spent per stage (parse, checks, graph, forward, gp) over the chunks done: where time goes
        self.timings: dict[str, float] = {}

    @classmethod
    def load(cls, run_dir: str | Path, cif_reader: str = "auto") -> "ScreeningModel":
        run = Run(run_dir)
        gp = load_gp(run)
        model = cls(run.featurizer(), gp, load_applicability(run, gp), cif_reader=cif_reader)
        # a warm-up pass on one real structure traces the forward pass (~2 s, once for every graph size), so that
        # no chunk of the job pays it and the chunks' stage timings are the job's own
        cif = run.materials.frame["cif"].iloc[run.split.train[0]]
        model.predict_chunk([{"source": "warm-up", "id": "warm-up", "cif": cif, "dft": float("nan")}])
        model.chunks_done, model.timings = 0, {}
        return model

    def predict_chunk(self, items: list[dict]) -> list[dict]:
        """Output lines for ``items`` (from :func:`plan`), in their order."""
        return self.finish(self.prepare(items))

    def prepare(self, items: list[dict]) -> "PreparedChunk":
        """The Python half of a chunk (CIF parsing, checks, crystal graphs and the network's input arrays,
        compositions): no TensorFlow, so a thread can prepare the next chunk while :meth:`finish` runs this
        one's forward pass."""
        chunk = PreparedChunk(items, list(items))
        structures = []
        for k, item in enumerate(items):
            if "error" in item:
                continue
            try:
                structures.append(parse_cif(item["cif"], self.cif_reader, self.timings))
                chunk.rows.append(k)
            except DataError as exc:
                chunk.out[k] = error_line(item["source"], item["id"], str(exc))
        if structures:
            graphs, chunk.kept, issues = self.featurizer.to_graphs(
                structures, names=[str(j) for j in range(len(structures))], on_error="skip", checked=True,
                timings=self.timings)
            chunk.reasons = {int(i.record): i.reason for i in issues}
            lap = StageLaps(self.timings)
            chunk.batches = [(batch, self.featurizer.graph_inputs([graphs[i] for i in batch]))
                             for batch in bond_batches([len(g["index1"]) for g in graphs], self.batch_bonds)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compositions = [s.composition for s in structures]
                chunk.elements = [tuple(sorted(el.symbol for el in c.elements)) for c in compositions]
                chunk.formulas = [c.reduced_formula for c in compositions]
            # the graphs of materials with an element no training material contains stay for the embedding draws
            known = self.applicability.domain.element_counts_
            chunk.draw_graphs = {int(j): graphs[i] for i, j in enumerate(chunk.kept)
                                 if never_trained([chunk.elements[j]], known)}
            del graphs
            lap("graph")
        return chunk

    def finish(self, chunk: "PreparedChunk") -> list[dict]:
        """MEGNet's forward pass, the GP, the domain check and the output lines of a prepared chunk."""
        out, items = chunk.out, chunk.items
        if chunk.rows:
            feat = self.featurizer
            lap = StageLaps(self.timings)
            X = np.full((len(chunk.rows), feat.settings.n2), np.nan)
            for batch, inputs in chunk.batches:
                X[chunk.kept[batch]] = feat.transform_inputs([inputs])
            chunk.batches = []
            lap("forward")
            pred = self.applicability.predict(self.gp, X, chunk.elements, featurizer=feat,
                                              graphs=[chunk.draw_graphs.get(j) for j in range(len(chunk.rows))])
            chunk.draw_graphs = {}
            lap("gp")
            for j, k in enumerate(chunk.rows):
                item = items[k]
                if not math.isfinite(pred["mean"][j]):
                    out[k] = error_line(item["source"], item["id"], chunk.reasons.get(j, "featurisation failed"))
                    continue
                dft = item["dft"]
                out[k] = {"source": item["source"], "id": item["id"], "formula": chunk.formulas[j],
                          "e_form": float(pred["mean"][j]), "sigma": float(pred["sigma"][j]),
                          "sigma_raw": float(pred["sigma_raw"][j]),
                          "sigma_emb": None if math.isnan(pred["sigma_emb"][j]) else float(pred["sigma_emb"][j]),
                          "dft": None if math.isnan(dft) else float(dft),
                          "in_domain": bool(pred["in_domain"][j]), "domain": str(pred["domain"][j]),
                          # machine-readable reasons: the domain flags raised (e.g. "rare_elements,far_latent")
                          "domain_codes": ",".join(k for k, v in pred["check"].flags.items() if v[j])}
        self.chunks_done += 1
        release_memory()
        return out


@dataclass
class PreparedChunk:
    """A chunk between :meth:`ScreeningModel.prepare` and :meth:`ScreeningModel.finish`: its items, the output
    lines decided so far (errors), and for the parsed structures (``rows``: their positions in the chunk) the
    network's inputs for those whose crystal graph was made (``kept``), why the others have none, elements and
    formulas."""

    items: list[dict]
    out: list[dict]
    rows: list[int] = field(default_factory=list)
    #: the network's inputs, one batch per group of at most ``batch_bonds`` bonds: (positions in ``kept``, arrays)
    batches: list[tuple[list[int], tuple]] = field(default_factory=list)
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    reasons: dict[int, str] = field(default_factory=dict)
    elements: list[tuple[str, ...]] = field(default_factory=list)
    formulas: list[str] = field(default_factory=list)
    #: crystal graphs of the parsed structures (by position in ``rows``) that may need embedding draws
    draw_graphs: dict[int, dict] = field(default_factory=dict)


def release_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``) after a chunk: the large,
    short-lived arrays of a forward pass otherwise leave the resident set at its highest point."""
    lib = libc()
    if lib is not None:
        lib.malloc_trim(0)


class LocalPredictor:
    """Chunks predicted one after the other in this process.

    With ``prepare_ahead`` (the default) chunk k+1 is prepared (parsed, checked, made into the network's inputs)
    in a thread while chunk k's forward pass runs: TensorFlow's pass keeps about 1.35 of 2 cores busy, and the
    preparation is Python and NumPy that run beside TensorFlow's kernels. It holds one more chunk's inputs
    (~45 MB for 256 oxides); ``prepare_ahead=False`` (``cfgp predict --serial``) does one thing at a time.
    """

    def __init__(self, model: ScreeningModel, prepare_ahead: bool = True):
        self.model, self.prepare_ahead = model, prepare_ahead

    def map(self, chunks: Iterable[list[dict]]) -> Iterator[list[dict]]:
        if not self.prepare_ahead:
            for chunk in chunks:
                yield self.model.predict_chunk(chunk)
            return
        from concurrent.futures import ThreadPoolExecutor

        it = iter(chunks)
        first = next(it, None)
        if first is None:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="cfgp-prepare") as pool:
            pending = pool.submit(self.model.prepare, first)
            for chunk in it:
                ready = pending.result()
                pending = pool.submit(self.model.prepare, chunk)
                yield self.model.finish(ready)
            yield self.model.finish(pending.result())

    def stage_seconds(self) -> dict[str, float]:
        return dict(self.model.timings)


# ------------------------------------------------------------------------------------------------- Dask
class _ModelPluginState:
    """Loads the :class:`ScreeningModel` once when a Dask worker starts (or joins later), not per chunk.

    ``loads`` counts the loads in that worker (1 is right); ``tf_threads`` (default: the worker's threads)
    sizes TensorFlow's pools. The worker must see ``run_dir`` at the same path (a shared file system or the
    same installation: the shipped default lives inside the package's data folder). The Dask class is
    :data:`ModelPlugin`, made on first use so that importing this module does not import distributed (and
    its web server, tornado) where no cluster is used.
    """

    name = PLUGIN_NAME

    def __init__(self, run_dir: str | Path, tf_threads: int | None = None, cif_reader: str = "auto"):
        self.run_dir, self.tf_threads, self.cif_reader = str(run_dir), tf_threads, cif_reader
        self.model: ScreeningModel | None = None
        self.loads = 0
        self._ready = threading.Event()  # set once the model is loaded (or its load failed)
        self._error: BaseException | None = None

    def __getstate__(self) -> dict:
        return {"run_dir": self.run_dir, "tf_threads": self.tf_threads, "cif_reader": self.cif_reader}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["run_dir"], state["tf_threads"], state.get("cif_reader", "auto"))

    def _load(self, nthreads: int) -> None:
        try:
            configure_tf_threads(self.tf_threads or nthreads)
            self.model = ScreeningModel.load(self.run_dir, self.cif_reader)
            self.loads += 1
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()

    async def setup(self, worker) -> None:
        import asyncio

        # in a thread, so that the worker keeps answering the scheduler while TensorFlow loads (~20-60 s)
        await asyncio.get_running_loop().run_in_executor(None, self._load, worker.state.nthreads)

    def predict(self, items: list[dict]) -> list[dict]:
        # a worker that replaces a lost one may be given chunks while its model still loads: they wait for it
        if not self._ready.wait(MODEL_LOAD_TIMEOUT) or self.model is None:
            raise RuntimeError(f"the {PLUGIN_NAME} plugin has no model on this worker "
                               f"({self._error or f'not loaded within {MODEL_LOAD_TIMEOUT} s'})")
        return self.model.predict_chunk(items)  # a worker with several threads runs chunks side by side


def _model_plugin_class() -> type:
    from distributed import WorkerPlugin

    return type("ModelPlugin", (_ModelPluginState, WorkerPlugin), {"__module__": __name__,
                                                                   "__doc__": _ModelPluginState.__doc__})


def __getattr__(name: str):
    if name == "ModelPlugin":  # built once, then a module attribute: workers unpickle it by this name
        cls = globals()["ModelPlugin"] = _model_plugin_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _predict_on_worker(items: list[dict]) -> list[dict]:
    from distributed import get_worker

    return get_worker().plugins[PLUGIN_NAME].predict(items)


class DaskPredictor:
    """Chunks predicted on a Dask cluster; results come back in input order. At most ``in_flight`` chunks
    are submitted and not yet written, so the client's memory does not grow with the input."""

    def __init__(self, client, in_flight: int | None = None):
        self.client = client
        threads = sum(client.nthreads().values()) or 1
        self.in_flight = in_flight or max(2, 2 * threads)

    @classmethod
    def start(cls, run_dir: str | Path, scheduler: str | None = None, workers: int | None = None,
              threads_per_worker: int = 1, tf_threads: int | None = None,
              cif_reader: str = "auto") -> "DaskPredictor":
        """Connect to ``scheduler`` (``tcp://host:8786``) or start a ``LocalCluster`` of ``workers``
        processes, and load the model on every worker (now, and on any worker that joins later)."""
        from distributed import Client, LocalCluster

        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=threads_per_worker,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        client.register_plugin(__getattr__("ModelPlugin")(run_dir, tf_threads, cif_reader))
        return cls(client)

    def loads(self) -> dict[str, int]:
        """Model loads per worker address (each should be 1)."""
        return self.client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].loads)

    def chunks_done(self) -> dict[str, int]:
        return self.client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].model.chunks_done)

    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage summed over the workers now in the cluster (a lost worker's share is lost)."""
        total: dict[str, float] = {}
        per_worker = self.client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].model.timings)
        for timings in per_worker.values():
            for stage, sec in timings.items():
                total[stage] = total.get(stage, 0.0) + sec
        return total

    def map(self, chunks: Iterable[list[dict]]) -> Iterator[list[dict]]:
        pending: collections.deque = collections.deque()
        for chunk in chunks:
            if all("error" in item for item in chunk):  # nothing to predict: no round trip
                pending.append(chunk)
            else:
                pending.append(self.client.submit(_predict_on_worker, chunk, pure=False))
            while len(pending) >= self.in_flight:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    @staticmethod
    def _result(entry) -> list[dict]:
        if isinstance(entry, list):
            return entry
        lines = entry.result()
        entry.release()
        return lines

    def close(self) -> None:
        import logging

        cluster = getattr(self.client, "cluster", None)
        self.client.close()
        if cluster is not None:
            # a worker that holds TensorFlow takes more than the nanny's 4 s to exit and is then killed, with
            # a warning per worker: expected at shutdown, not worth the user's attention
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            nanny.setLevel(logging.ERROR)
            try:
                cluster.close()
            finally:
                nanny.setLevel(level)


# ------------------------------------------------------------------------------------------ output, resume
@dataclass
class ResumeState:
    """What an output file already holds: lines per (source, id), counts, and whether a torn line was cut."""

    done: collections.Counter = field(default_factory=collections.Counter)
    n_ok: int = 0
    n_bad: int = 0
    dropped: str = ""


def resume_state(path: Path) -> ResumeState:
    """Read back an output file (JSON lines) of an earlier run of the same job.

    A last line without its newline or not JSON is a write cut by a kill: it is removed from the file (the
    job owns its output) and its record is done again. A garbled line before the last one is not something
    a kill makes: :class:`DataError` naming the file and line, and the file is left as it is.
    """
    state = ResumeState()
    path = Path(path)
    if not path.exists():
        return state
    good_end = 0
    with open(path, "rb") as fh:
        number = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            number += 1
            line = None
            if raw.endswith(b"\n"):
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = None
            if not isinstance(line, dict) or "source" not in line:
                if fh.read(1):  # not the last line
                    raise DataError(f"{path}: line {number} is not an output line of cfgp predict "
                                    f"({raw[:80]!r}); not resuming into it")
                state.dropped = raw.decode("utf-8", "replace")
                break
            good_end = fh.tell()
            state.done[_key(line)] += 1
            if "error" in line:
                state.n_bad += 1
            else:
                state.n_ok += 1
    if state.dropped:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    return state


class JsonLinesSink:
    """JSON lines appended to a file (or written to a text stream), flushed once per chunk."""

    def __init__(self, path: Path | None = None, stream=None):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            refuse_shipped_write(self.path)  # `cfgp predict --out data/default/…` is refused, not appended to
        self._fh = open(self.path, "a", encoding="utf-8") if self.path is not None else stream

    def write(self, lines: list[dict]) -> None:
        self._fh.write("".join(json.dumps(line, default=float) + "\n" for line in lines))
        self._fh.flush()

    def close(self) -> None:
        if self.path is not None:
            self._fh.close()

    def finish(self) -> None:
        self.close()


PARQUET_COLUMNS = {"source": "string", "id": "string", "formula": "string", "e_form": "float64",
                   "sigma": "float64", "sigma_raw": "float64", "sigma_emb": "float64", "dft": "float64",
                   "in_domain": "bool",
                   "domain": "string", "domain_codes": "string", "error": "string"}


def parquet_journal(path: Path) -> Path:
    """Where the lines of a Parquet output wait, as JSON lines, until the job ends (what a resume reads)."""
    return path.with_name(path.name + ".partial.jsonl")


class ParquetSink(JsonLinesSink):
    """Parquet output: lines are journalled as JSON lines (resumable), converted when the job ends."""

    def __init__(self, path: Path):
        self.final = Path(path)
        super().__init__(parquet_journal(self.final))

    def finish(self, rows_per_group: int = 50_000) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.close()
        types = {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_()}
        schema = pa.schema([(k, types[v]) for k, v in PARQUET_COLUMNS.items()])
        tmp = self.final.with_name(self.final.name + f".{os.getpid()}.tmp")
        with pq.ParquetWriter(tmp, schema) as writer, open(self.path, encoding="utf-8") as fh:
            batch: list[dict] = []
            for raw in fh:
                line = json.loads(raw)
                batch.append({k: line.get(k) for k in PARQUET_COLUMNS})
                if len(batch) >= rows_per_group:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        os.replace(tmp, self.final)
        self.path.unlink()


# --------------------------------------------------------------------------------------------------- job
@dataclass
class Summary:
    n_ok: int = 0
    n_bad: int = 0
    n_resumed: int = 0
    dropped: str = ""
    seconds: float = 0.0
    #: seconds by stage: "read" and "write" in this process, the predictor's (parse, checks, graph, forward, gp)
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 every record predicted, 3 some skipped, 4 none predicted (``cfgp predict``'s codes)."""
        return 0 if not self.n_bad else 3 if self.n_ok else 4


def screen(paths: Iterable[str | Path], predictor, emit: Callable[[list[dict]], None], *,
           chunk_size: int = DEFAULT_CHUNK_SIZE, resume: ResumeState | None = None,
           max_bytes: int = MAX_DATASET_BYTES, progress: bool | None = None) -> Summary:
    """Predict every record of ``paths`` in chunks and hand each chunk's lines, in input order, to ``emit``.

    ``resume`` (from :func:`resume_state`) skips what an earlier run wrote; the summary counts those too,
    so its exit code is the whole job's. ``progress``: a tqdm bar on stderr (None: only on a terminal).
    """
    from tqdm.auto import tqdm

    t0 = time.time()
    state = resume or ResumeState()
    done = collections.Counter(state.done)
    summary = Summary(n_ok=state.n_ok, n_bad=state.n_bad, dropped=state.dropped)
    bar = tqdm(desc="cfgp predict", unit="struct", disable=None if progress is None else not progress,
               file=sys.stderr, dynamic_ncols=True)

    io_seconds = {"read": 0.0, "write": 0.0}

    def todo() -> Iterator[dict]:
        records = plan(paths, max_bytes)
        while True:
            t = time.perf_counter()
            item = next(records, None)
            io_seconds["read"] += time.perf_counter() - t
            if item is None:
                return
            key = _key(item)
            if done[key] > 0:
                done[key] -= 1
                summary.n_resumed += 1
                continue
            yield item

    try:
        for lines in predictor.map(chunks_of(todo(), chunk_size)):
            t = time.perf_counter()
            emit(lines)
            io_seconds["write"] += time.perf_counter() - t
            bad = sum("error" in line for line in lines)
            summary.n_bad += bad
            summary.n_ok += len(lines) - bad
            bar.update(len(lines))
            bar.set_postfix(errors=summary.n_bad, refresh=False)
    finally:
        bar.close()
    summary.seconds = time.time() - t0
    stage_seconds = getattr(predictor, "stage_seconds", None)
    summary.stages = {"read": io_seconds["read"], **(stage_seconds() if stage_seconds else {}),
                      "write": io_seconds["write"]}
    return summary
