"""Screening (`cfgp predict` streamed in chunks): lazy readers, per-record errors in place, resume after a real
kill, memory that does not grow with the input, and the same lines from a Dask cluster as from one process.

Everything runs on the shipped default (only read; what it makes goes to the session's $CFGP_HOME) and on real
Materials Project oxides of the shipped data set. The model is loaded once in this process for the in-process
cases; subprocesses are used only where a kill or a peak memory is the point.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from cfgp.artefacts import DEFAULT_RUN
from cfgp.data import DEFAULT_DATASET, read_records
from cfgp.record_streams import iter_records
from tests.bad_inputs.harness import ROOT, run_limited

pytestmark = pytest.mark.skipif(not (DEFAULT_RUN / "gp.json").exists(), reason="the embedded default is not built")
CFGP = [sys.executable, "-m", "cfgp.cli"]
FIELDS = ("material_id", "formation_energy_per_atom", "cif")


def real_records(n: int) -> list[dict]:
    """The first ``n`` records of the shipped oxides (id, energy, CIF), read lazily."""
    out = []
    for record in iter_records(DEFAULT_DATASET):
        out.append({k: record[k] for k in FIELDS})
        if len(out) == n:
            return out
    raise AssertionError("not enough records")


def write_jsonl(path: Path, records: list, raw_lines: dict[int, str] | None = None) -> Path:
    """JSON lines; ``raw_lines`` puts a verbatim line before record i (e.g. a line that is not JSON)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            if raw_lines and i in raw_lines:
                fh.write(raw_lines[i] + "\n")
            fh.write(json.dumps(r) + "\n")
    return path


def tiny_cell(record: dict, new_id: str) -> dict:
    """A real record with its cell edges set to 0.1 Å (the atoms overlap): refused by the structure checks."""
    from pymatgen.core import Structure

    s = Structure.from_str(record["cif"], fmt="cif")
    s.scale_lattice(s.volume * (0.1 / s.lattice.a) ** 3)
    return {"material_id": new_id, "formation_energy_per_atom": record["formation_energy_per_atom"],
            "cif": s.to(fmt="cif")}


NUMBERS = ("e_form", "sigma", "sigma_raw", "sigma_emb")


def assert_same_lines(got: list[dict], expected: list[dict]) -> None:
    """The same lines in the same order; the predicted numbers equal up to float32 rounding (a structure's
    MEGNet latent moves by ~1e-8 with the other structures of its forward pass, e.g. when a resume starts a
    chunk at another record; the GP's σ moved by up to 3e-7 eV/atom for that)."""
    assert [{k: v for k, v in x.items() if k not in NUMBERS} for x in got] == \
        [{k: v for k, v in x.items() if k not in NUMBERS} for x in expected]
    for a, b in zip(got, expected):
        for k in NUMBERS:
            if b.get(k) is not None:
                assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), (a, b)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def model():
    from cfgp.screening import ScreeningModel

    return ScreeningModel.load(DEFAULT_RUN)


def screen_lines(model, paths, chunk_size=32) -> tuple[list[dict], object]:
    from cfgp.screening import LocalPredictor, screen

    lines: list[dict] = []
    summary = screen(paths, LocalPredictor(model), lines.extend, chunk_size=chunk_size, progress=False)
    return lines, summary


# ------------------------------------------------------------------------------------------------ readers
def test_every_format_streams_the_same_records_as_the_whole_file_reader(tmp_path):
    """JSON array, JSON lines, CSV (each also gzipped) and both kinds of CIF folder give the records that
    cfgp.data.read_records gives for the JSON file, in the same order."""
    import pandas as pd

    records = real_records(40)
    (tmp_path / "a.json").write_text(json.dumps(records))
    with gzip.open(tmp_path / "a.json.gz", "wt") as fh:
        json.dump(records, fh)
    write_jsonl(tmp_path / "a.jsonl", records)
    write_jsonl(tmp_path / "a.jsonl.gz", records)
    pd.DataFrame(records).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(records).to_csv(tmp_path / "a.csv.gz", index=False, compression="gzip")
    for folder, with_id_prop in (("folder", True), ("cifs", False)):
        (tmp_path / folder).mkdir()
        for r in records:
            (tmp_path / folder / f"{r['material_id']}.cif").write_text(r["cif"])
        if with_id_prop:
            (tmp_path / folder / "id_prop.csv").write_text(
                "".join(f"{r['material_id']},{r['formation_energy_per_atom']}\n" for r in records))
    expected = [(r["material_id"], r["cif"]) for r in read_records(tmp_path / "a.json")]
    for name in ("a.json", "a.json.gz", "a.jsonl", "a.jsonl.gz", "a.csv", "a.csv.gz", "folder"):
        got = [(r["material_id"], r["cif"]) for r in iter_records(tmp_path / name)]
        assert got == expected, name
    energies = [float(r["formation_energy_per_atom"]) for r in iter_records(tmp_path / "folder")]
    assert energies == pytest.approx([r["formation_energy_per_atom"] for r in records])
    # a folder of CIFs without id_prop.csv is read in file-name order
    assert [r["material_id"] for r in iter_records(tmp_path / "cifs")] == sorted(r["material_id"] for r in records)


def test_the_first_record_of_the_shipped_data_set_costs_megabytes_not_the_file():
    """Lazy: the first record of the 48.5 MB (decompressed) shipped JSON array is had with a few MB allocated;
    reading the file whole allocates more than the file."""
    tracemalloc.start()
    try:
        first = next(iter(iter_records(DEFAULT_DATASET)))
        _, peak_lazy = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = read_records(DEFAULT_DATASET)
        _, peak_whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first["material_id"] == whole[0]["material_id"]
    assert peak_lazy < 12 * 2**20, f"{peak_lazy / 2**20:.1f} MB for one record"
    assert peak_whole > 48 * 2**20


# --------------------------------------------------------------------------------- errors in place, formats
def test_a_bad_record_in_the_middle_is_reported_with_its_id_and_the_others_predicted(model, tmp_path):
    """Bad records in the middle of a JSON-lines file (overlapping atoms, a line that is not JSON, a duplicate
    id) each get an error line in their place naming them and why; every other record is predicted, with the
    value the run's GP gives to the latent that the featuriser computes for it on its own."""
    import numpy as np

    from cfgp.data import parse_cif
    from cfgp.pipeline import predict_rows

    records = real_records(60)
    bad = tiny_cell(records[10], "bad-tiny-cell")
    items = records[:30] + [bad] + records[30:45] + [dict(records[5])] + records[45:]
    path = write_jsonl(tmp_path / "mixed.jsonl", items, raw_lines={40: "{this is not json"})
    lines, summary = screen_lines(model, [path], chunk_size=16)
    assert summary.exit_code == 3 and summary.n_ok == 60 and summary.n_bad == 3
    assert [x.get("id") for x in lines] == ([r["material_id"] for r in records[:30]] + ["bad-tiny-cell"]
                                            + [r["material_id"] for r in records[30:39]] + ["line 41"]
                                            + [r["material_id"] for r in records[39:45]]
                                            + [records[5]["material_id"]] + [r["material_id"] for r in records[45:]])
    errors = {i: x for i, x in enumerate(lines) if "error" in x}
    assert set(errors) == {30, 40, 47}
    assert "volume per atom" in errors[30]["error"] and errors[30]["id"] == "bad-tiny-cell"
    assert "line 41 is not valid JSON" in errors[40]["error"] and str(path) in errors[40]["error"]
    assert "duplicate material id" in errors[47]["error"]
    assert all(x["in_domain"] is False and x["domain"] == "no prediction (see error)" for x in errors.values())
    # the predictions, recomputed without the screening code: parse, featurise, GP
    good = [x for x in lines if "error" not in x]
    structures = [parse_cif(r["cif"]) for r in records]
    X = model.featurizer.transform(structures, on_error="raise")
    mean, std = predict_rows(model.gp, X)
    np.testing.assert_allclose([x["e_form"] for x in good], mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([x["sigma_raw"] for x in good], std, rtol=1e-5, atol=1e-6)
    assert [x["dft"] for x in good] == pytest.approx([r["formation_energy_per_atom"] for r in records])
    assert all(x["sigma"] > 0 and x["sigma_raw"] > 0 for x in good)


def test_oxides_with_a_never_trained_element_get_their_drawn_sigma_in_any_chunk(model, tmp_path):
    """HeSiO2 and AcClO (He and Ac are in no training material) screened among other materials, in chunks of 2
    and of 8, get the σ_emb the shipped domain.json holds for them and σ = sqrt((τ_out·σ_GP)² + σ_emb²) (as
    2σ-equivalent), AcClO the mean over its draws as E_f; MgO and the non-oxide Fe (outside the training
    composition: it keeps the floor) get none."""
    import numpy as np

    from tests.conftest import FIXTURES

    recs = json.load(gzip.open(FIXTURES / "domain_records.json.gz", "rt"))
    items = [{k: r[k] for k in FIELDS} for r in recs["oxides"] + recs["nonoxides"][:1]]  # ... Ti6O, Fe
    path = write_jsonl(tmp_path / "unseen.jsonl", items)
    app, cal = model.applicability, model.applicability.sigma
    for chunk in (2, 8):
        lines = {x["id"]: x for x in screen_lines(model, [path], chunk_size=chunk)[0]}
        for mid in ("mp-1019742", "mp-30273"):
            x = lines[mid]
            assert x["sigma_emb"] == pytest.approx(app.material_spread([mid])[0], rel=1e-4), (chunk, x)
            assert x["sigma"] == pytest.approx(np.hypot(cal.tau_out_ * x["sigma_raw"], x["sigma_emb"])
                                               * cal.two_sigma_factor, rel=1e-6)
            assert "unseen_elements" in x["domain_codes"]
        assert lines["mp-30273"]["e_form"] == pytest.approx(app.drawn_mean_ids["mp-30273"], abs=1e-4)
        assert lines["mp-1265"]["sigma_emb"] is None and lines["mp-13"]["sigma_emb"] is None
        assert lines["mp-13"]["sigma"] == pytest.approx(cal.floor_ * cal.two_sigma_factor)


def test_gzip_and_cif_folder_inputs_give_the_same_lines(model, tmp_path):
    """The same real records as .jsonl.gz, as a CIF folder (id_prop.csv, one CIF missing, one unreadable)
    and as the shipped JSON array's format: the same predictions, and the folder's bad entries named."""
    records = real_records(24)
    gz = write_jsonl(tmp_path / "recs.jsonl.gz", records)
    folder = tmp_path / "cifs"
    folder.mkdir()
    for r in records:
        (folder / f"{r['material_id']}.cif").write_text(r["cif"])
    (folder / "gone.cif").unlink(missing_ok=True)
    os.mkfifo(folder / "fifo.cif")
    (folder / "id_prop.csv").write_text("".join(f"{r['material_id']},{r['formation_energy_per_atom']}\n"
                                                for r in records[:12])
                                        + "gone,-1.0\nfifo,-1.0\n"
                                        + "".join(f"{r['material_id']},{r['formation_energy_per_atom']}\n"
                                                  for r in records[12:]))
    array = tmp_path / "recs.json.gz"
    with gzip.open(array, "wt") as fh:
        json.dump(records, fh)
    by_format = {p.name: screen_lines(model, [p], chunk_size=10)[0] for p in (gz, folder, array)}
    strip = lambda lines: [{k: v for k, v in x.items() if k != "source"} for x in lines if "error" not in x]  # noqa: E731
    assert strip(by_format["recs.jsonl.gz"]) == strip(by_format["recs.json.gz"])  # same records, same chunks
    assert_same_lines(strip(by_format["cifs"]), strip(by_format["recs.json.gz"]))  # two error lines: other chunks
    assert len(strip(by_format["cifs"])) == 24
    folder_lines = by_format["cifs"]
    assert [x["id"] for x in folder_lines[12:14]] == ["gone", "fifo"]
    assert "no file gone.cif" in folder_lines[12]["error"]
    assert "not a regular file (a named pipe" in folder_lines[13]["error"]


def test_parquet_output_holds_the_lines_and_its_journal_resumes(model, tmp_path):
    """--out FILE.parquet: the lines go to a JSON-lines journal (what a resume reads), which becomes the
    Parquet file at the end: one row per line, same values, error rows with their message."""
    pq = pytest.importorskip("pyarrow.parquet")
    from cfgp.screening import LocalPredictor, ParquetSink, parquet_journal, resume_state, screen

    records = real_records(20)
    records.insert(7, tiny_cell(records[0], "bad"))
    src = write_jsonl(tmp_path / "p.jsonl", records)
    target = tmp_path / "p.parquet"
    sink = ParquetSink(target)
    screen([src], LocalPredictor(model), sink.write, chunk_size=8, progress=False)
    sink.close()
    journal = parquet_journal(target)
    state = resume_state(journal)  # what `--resume` would skip
    assert sum(state.done.values()) == 21 and (state.n_ok, state.n_bad) == (20, 1)
    lines = read_lines(journal)
    sink.finish()
    assert not journal.exists()
    rows = pq.read_table(target).to_pylist()
    assert [r["id"] for r in rows] == [r["material_id"] for r in records]
    for row, line in zip(rows, lines):
        assert {k: v for k, v in row.items() if v is not None} == {k: v for k, v in line.items() if v is not None}
    assert "volume per atom" in rows[7]["error"] and rows[7]["e_form"] is None


# --------------------------------------------------------------------------------------- kill and resume
@pytest.mark.slow
def test_resume_after_a_real_kill_completes_the_output_without_duplicates(model, tmp_path):
    """`cfgp predict --out` is killed (SIGKILL) in the middle of a job; the file it left is then also cut in
    the middle of its last line, as a kill during a write leaves it; `--resume` completes it: every record
    once, in input order, the same lines as an uninterrupted run, and the torn line said and redone."""
    records = real_records(360)
    records.insert(200, tiny_cell(records[3], "bad-in-the-middle"))
    src = write_jsonl(tmp_path / "screen.jsonl.gz", records)
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [*CFGP, "predict", "--json", "--quiet", "--chunk-size", "32", "--out", str(out), str(src)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 96:  # three chunks written
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the job ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    written = out.read_text()
    n_before = written.count("\n")
    assert 96 <= n_before < len(records)
    last = written.splitlines()[-1]
    out.write_text(written[: len(written) - 1 - len(last) // 2])  # the last line torn in the middle
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    assert resumed.returncode == 3, resumed.stderr[-3000:]  # the bad record: some skipped, others predicted
    assert "removed a torn last line" in resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["resumed"] == n_before - 1 and summary["predicted"] == len(records) - 1 and summary["errors"] == 1
    lines = read_lines(out)
    assert [x["id"] for x in lines] == [r["material_id"] for r in records]  # complete, in order, no duplicates
    reference, _ = screen_lines(model, [src], chunk_size=32)  # an uninterrupted run of the same input
    assert_same_lines(lines, reference)
    assert "volume per atom" in lines[200]["error"]


def test_resume_refuses_an_output_garbled_before_its_last_line(tmp_path):
    from cfgp.data import DataError
    from cfgp.screening import resume_state

    out = tmp_path / "out.jsonl"
    out.write_text('{"source": "a", "id": "x", "e_form": 1}\nnot json\n{"source": "a", "id": "y", "e_form": 2}\n')
    with pytest.raises(DataError, match="line 2 is not an output line"):
        resume_state(out)
    assert out.read_text().count("\n") == 3  # left as it was


# ------------------------------------------------------------------------------------------------- speed
def test_the_fast_path_and_preparing_ahead_change_no_line_and_report_their_stages(model, tmp_path, monkeypatch):
    """The same 300 real oxides (and a bad cell) through the shipped path (fast CIF reader, next chunk prepared in a
    thread), serially, and with pymatgen's parser: the very same lines; each job's time split by stage."""
    import cfgp.data
    from cfgp.screening import LocalPredictor, screen

    fast_reads = []
    original = cfgp.data.read_plain_p1

    def counting(text):
        structure = original(text)
        fast_reads.append(structure is not None)
        return structure
    monkeypatch.setattr(cfgp.data, "read_plain_p1", counting)
    records = real_records(300)
    records.insert(40, tiny_cell(records[0], "bad-cell"))
    src = write_jsonl(tmp_path / "speed.jsonl", records)
    outputs, stages = {}, {}
    reads = {}
    for name, reader, ahead in (("shipped", "auto", True), ("serial", "auto", False),
                                ("pymatgen", "pymatgen", True)):
        model.cif_reader, model.timings = reader, {}
        fast_reads.clear()
        lines: list[dict] = []
        try:
            summary = screen([src], LocalPredictor(model, prepare_ahead=ahead), lines.extend, chunk_size=64,
                             progress=False)
        finally:
            model.cif_reader = "auto"
        outputs[name], stages[name], reads[name] = lines, summary.stages, list(fast_reads)
    assert outputs["shipped"] == outputs["serial"] == outputs["pymatgen"]
    assert "volume per atom" in outputs["shipped"][40]["error"] and len(outputs["shipped"]) == 301
    for name, by_stage in stages.items():
        assert set(by_stage) == {"read", "parse", "checks", "graph", "forward", "gp", "write"}, name
        assert all(v > 0 for v in by_stage.values()), (name, by_stage)
    # the shipped path read all 301 CIFs with the fast reader (the bad cell too; pymatgen then says why), the
    # pymatgen path never called it (times are in the summary, not asserted here: the CI machine is shared)
    assert reads["shipped"] == reads["serial"] == [True] * 301 and reads["pymatgen"] == []


# ------------------------------------------------------------------------------------------------ memory
@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_structures(tmp_path):
    """Peak resident memory of `cfgp predict` (a child's ru_maxrss) on 1,200 real structures is that of 300:
    reading the whole input and featurising it at once (the old predict) grew by ~0.5 MB per structure, ~450 MB
    here."""
    records = real_records(1200)
    small = write_jsonl(tmp_path / "small.jsonl.gz", records[:300])
    big = write_jsonl(tmp_path / "big.jsonl.gz", records)
    peaks = {}
    for name, path in (("small", small), ("big", big)):
        out = tmp_path / f"{name}.out.jsonl"
        run = run_limited([*CFGP, "predict", "--quiet", "--chunk-size", "128", "--out", str(out), str(path)],
                          limit_mb=2048, timeout=2400)
        assert not run.killed and run.returncode == 0, (run.killed, run.stderr[-3000:])
        assert out.read_text().count("\n") == int(name == "big") * 900 + 300
        peaks[name] = run.peak_mb
    print(f"\npeak resident memory: 300 structures {peaks['small']:.0f} MB, 1,200 structures {peaks['big']:.0f} MB")
    assert peaks["big"] < 2048
    assert peaks["big"] - peaks["small"] < 150, peaks


# -------------------------------------------------------------------------------------------------- Dask
@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_lines_and_loads_the_model_once_per_worker(model, tmp_path):
    """Two worker processes of one thread: the output (predictions and error lines, in input order) is the
    single-process output (its numbers up to float32 rounding: a one-thread worker sums in another order, 1e-7
    eV/atom apart on an AVX2 CPU); each worker loaded the model once however many chunks it ran."""
    pytest.importorskip("distributed")
    from cfgp.screening import DaskPredictor, screen

    records = real_records(200)
    records.insert(70, tiny_cell(records[1], "bad-cell"))
    src = write_jsonl(tmp_path / "dask.jsonl", records, raw_lines={150: "[unclosed"})
    missing = tmp_path / "missing.json"
    single, single_summary = screen_lines(model, [src, missing], chunk_size=16)
    predictor = DaskPredictor.start(DEFAULT_RUN, workers=2, threads_per_worker=1)
    try:
        lines: list[dict] = []
        summary = screen([src, missing], predictor, lines.extend, chunk_size=16, progress=False)
        loads = predictor.loads()
        chunks = predictor.chunks_done()
    finally:
        predictor.close()
    assert_same_lines(lines, single)
    assert (summary.n_ok, summary.n_bad, summary.exit_code) == (single_summary.n_ok, single_summary.n_bad, 3)
    assert summary.n_ok == 200 and summary.n_bad == 3  # the bad cell, the line that is not JSON, the missing file
    assert "no such file" in lines[-1]["error"] and "id" not in lines[-1]
    assert len(loads) == 2 and set(loads.values()) == {1}, loads
    assert sum(chunks.values()) == math.ceil(len(single) / 16) and min(chunks.values()) >= 1, chunks


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_and_repeats_no_line(model, tmp_path):
    """A Dask worker process is killed (SIGKILL) while the job runs, with chunks on it: Dask runs them again on
    the other worker (and the restarted one, which loads the model again), and the output is, line for line,
    that of an undisturbed run (its numbers up to float32 rounding)."""
    pytest.importorskip("distributed")
    from cfgp.screening import DaskPredictor, screen

    records = real_records(240)
    src = write_jsonl(tmp_path / "kill.jsonl", records)
    undisturbed, _ = screen_lines(model, [src], chunk_size=8)
    predictor = DaskPredictor.start(DEFAULT_RUN, workers=2, threads_per_worker=1)
    killed: list[int] = []
    lines: list[dict] = []

    def emit(chunk_lines: list[dict]) -> None:
        lines.extend(chunk_lines)
        if not killed:  # after the first chunk is written, with the others in flight on both workers
            pids = predictor.client.run(os.getpid)
            processing = predictor.client.processing()
            victim = max(pids, key=lambda address: len(processing.get(address, ())))
            assert processing.get(victim), processing  # the killed worker holds chunks of this job
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(pids[victim])

    try:
        summary = screen([src], predictor, emit, chunk_size=8, progress=False)
        pids_after = set(predictor.client.run(os.getpid).values())
    finally:
        predictor.close()
    assert killed and killed[0] not in pids_after  # the process is gone; the job finished without it
    assert summary.n_ok == len(records) and summary.n_bad == 0
    assert [x["id"] for x in lines] == [r["material_id"] for r in records]  # none lost, none twice, in order
    assert_same_lines(lines, undisturbed)


@pytest.mark.slow
def test_a_killed_client_resumes_its_dask_job(model, tmp_path):
    """`cfgp predict --workers 1 --out` is killed with its whole process group (client, scheduler, nanny and
    worker: a lost shell or batch job); `--resume` on a new cluster completes the file as an undisturbed run
    writes it."""
    pytest.importorskip("distributed")
    records = real_records(160)
    src = write_jsonl(tmp_path / "client.jsonl.gz", records)
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [*CFGP, "predict", "--json", "--quiet", "--chunk-size", "16", "--workers", "1", "--out", str(out), str(src)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        deadline = time.time() + 900
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 32:  # two chunks written
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"the job ended before it could be killed: {proc.stderr.read()[-2000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    n_before = out.read_text().count("\n")
    assert 32 <= n_before < len(records)
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["resumed"] >= n_before - 1 and summary["predicted"] == len(records)
    # the summary says where this call's time went, per structure (the worker's stages summed over its cores)
    assert summary["cif_reader"] == "auto" and set(summary["stage_ms"]) == \
        {"read", "parse", "checks", "graph", "forward", "gp", "write"}
    assert summary["stage_ms"]["forward"] > 0
    lines = read_lines(out)
    assert [x["id"] for x in lines] == [r["material_id"] for r in records]
    reference, _ = screen_lines(model, [src], chunk_size=16)
    assert_same_lines(lines, reference)
