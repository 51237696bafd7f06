"""The bad-input corpus (``make_corpus.py``: ~90 inputs made from real records) against ``cfgp predict``,
``cfgp train``'s loading and the app's upload handler.

For every case: no traceback, a message that names the record (or the file) and says why, the good records of
the same call (and of the same data set) still predicted or kept, and a peak resident memory under 2 GB. Each
target runs in ONE child process under the memory limit of :func:`harness.run_limited` (polled resident memory,
killed past the limit; the exact peak from ``ru_maxrss`` when reaped): the predict cases are all files of one
``cfgp predict`` call between two good CIFs, on the shipped default run (only read).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from cfgp.artefacts import DEFAULT_RUN
from tests.bad_inputs.harness import ROOT, run_limited
from tests.bad_inputs.make_corpus import CASES, build

LIMIT_MB = 2048
CFGP = [sys.executable, "-m", "cfgp.cli"]
pytestmark = pytest.mark.skipif(not (DEFAULT_RUN / "gp.json").exists(), reason="the embedded default is not built")


def names(target: str) -> list[str]:
    return [c.name for c in CASES if c.target == target]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bad_inputs")
    build(out)
    table = json.loads((out / "corpus.json").read_text())
    table["dir"] = out
    table["by_name"] = {c["name"]: c for c in table["cases"]}
    return table


def assert_clean(run, what: str) -> None:
    """No traceback, not killed, peak resident memory under the limit."""
    print(f"\n{what}: peak resident memory {run.peak_mb:,.0f} MB, {run.seconds} s, exit {run.returncode}")
    assert not run.killed, f"{what}: {run.killed}\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-5000:]
    assert run.peak_mb < LIMIT_MB, f"{what}: peak {run.peak_mb:.0f} MB"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_corpus_covers_every_target():
    counts = {t: len(names(t)) for t in ("predict", "train", "upload")}
    assert sum(counts.values()) >= 50 and min(counts.values()) >= 10, counts
    assert len({c.name for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------------- cfgp predict
@pytest.fixture(scope="module")
def predicted(corpus):
    """One `cfgp predict` over every predict case, a good real CIF first and last."""
    cases = [c for c in corpus["cases"] if c["target"] == "predict"]
    files = [corpus["good"][0], *(c["path"] for c in cases), corpus["good"][1]]
    run = run_limited([*CFGP, "predict", "--json", *files], LIMIT_MB)
    return run, json_lines(run.stdout)


def test_predict_call_is_clean_and_says_some_were_skipped(predicted, corpus):
    run, lines = predicted
    assert_clean(run, "cfgp predict on the corpus")
    assert run.returncode == 3, run.stderr[-3000:]  # some skipped, some predicted
    for good in corpus["good"]:  # before and after every bad input
        line = next(x for x in lines if x["source"] == good)
        assert line["formula"] == corpus["good_formulas"][good] and math.isfinite(line["e_form"]) and line["sigma"] > 0


@pytest.mark.parametrize("name", names("predict"))
def test_predict_case(name, predicted, corpus):
    _, lines = predicted
    case = corpus["by_name"][name]
    mine = [x for x in lines if x["source"] == case["path"]]
    errors = [x for x in mine if "error" in x]
    assert errors, f"{name}: no error line for {case['path']}: {mine}"
    hit = [x for x in errors if case["expect"].casefold() in x["error"].casefold()]
    assert hit, f"{name}: expected {case['expect']!r} in {[x['error'] for x in errors]}"
    line = hit[0]
    if case["record"]:  # the record is named: as the line's id, or in the file's message
        assert line.get("id") == case["record"] or case["record"] in line["error"], line
    else:  # the file is named
        assert case["path"] in line["error"], line
    for good_id in case["good"]:  # the good records of the same data set are still predicted
        ok = [x for x in mine if x.get("id") == good_id and "e_form" in x]
        assert ok and math.isfinite(ok[0]["e_form"]), f"{name}: good record {good_id} not predicted: {mine}"
    if case["record"]:
        assert not [x for x in mine if x.get("id") == case["record"] and "e_form" in x], "the bad record was predicted"


@pytest.mark.slow
def test_predict_exit_codes(corpus):
    """0 all predicted, 4 nothing predicted, 2 usage error — told apart without reading messages."""
    by = corpus["by_name"]
    good = run_limited([*CFGP, "predict", "--json", *corpus["good"]], LIMIT_MB)
    assert_clean(good, "cfgp predict, good CIFs only")
    assert good.returncode == 0 and len(json_lines(good.stdout)) == 2
    bad = run_limited([*CFGP, "predict", "--json", by["cell_0.1A"]["path"], by["gzip_bomb"]["path"],
                       by["folder_id_prop_fifo"]["path"]], LIMIT_MB)
    assert_clean(bad, "cfgp predict, bad inputs only")
    assert bad.returncode == 4 and all("error" in x for x in json_lines(bad.stdout))
    usage = run_limited([*CFGP, "predict"], LIMIT_MB)
    assert usage.returncode == 2 and "the following arguments are required: files" in usage.stderr
    no_run = run_limited([*CFGP, "predict", "--run", str(corpus["dir"] / "not-a-run"), corpus["good"][0]], LIMIT_MB)
    assert no_run.returncode == 2 and "not a cfgp run folder" in no_run.stderr and "Traceback" not in no_run.stderr
    helptext = run_limited([*CFGP, "predict", "--help"], LIMIT_MB).stdout
    for code, meaning in (("0", "every record was predicted"), ("3", "skipped"), ("4", "nothing was predicted"),
                          ("2", "usage error")):
        assert any(line.strip().startswith(code) and meaning in line for line in helptext.splitlines()), helptext


# ------------------------------------------------------------------------------------------- cfgp train
@pytest.fixture(scope="module")
def trained(corpus):
    run = run_limited([sys.executable, "-m", "tests.bad_inputs.harness", "train", str(corpus["dir"])], LIMIT_MB)
    return run, {x["case"]: x for x in json_lines(run.stdout)}


def test_train_loading_is_clean(trained):
    run, results = trained
    assert_clean(run, "cfgp train's loading on the corpus")
    assert run.returncode == 0 and set(results) == set(names("train"))


@pytest.mark.parametrize("name", names("train"))
def test_train_case(name, trained, corpus):
    case, result = corpus["by_name"][name], trained[1][name]
    assert "unexpected" not in result, result
    if case["record"]:  # a bad record of a data set: reported by name and reason, the good ones kept
        reasons = [reason for record, reason in result["skipped"] if record == case["record"]]
        assert reasons and case["expect"].casefold() in reasons[0].casefold(), result
        assert result["kept"] == len(case["good"]) and set(case["good"]) <= set(result["ids"]), result
    else:  # the data set itself is unusable: the message names the file and why
        assert case["expect"].casefold() in result["error"].casefold() and case["path"] in result["error"], result


# ------------------------------------------------------------------------------------------- upload handler
@pytest.fixture(scope="module")
def uploaded(corpus):
    run = run_limited([sys.executable, "-m", "tests.bad_inputs.harness", "upload", str(corpus["dir"]),
                       str(DEFAULT_RUN)], LIMIT_MB)
    return run, {x["case"]: x for x in json_lines(run.stdout)}


def test_upload_handler_is_clean_and_still_predicts_a_good_upload(uploaded, corpus):
    run, results = uploaded
    assert_clean(run, "the upload handler on the corpus")
    assert run.returncode == 0
    good = results["good_" + Path(corpus["good"][0]).name]
    assert good["formula"] == corpus["good_formulas"][corpus["good"][0]] and math.isfinite(good["e_form"])


@pytest.mark.parametrize("name", names("upload"))
def test_upload_case(name, uploaded, corpus):
    case, result = corpus["by_name"][name], uploaded[1][name]
    assert "unexpected" not in result and "error" in result, result
    assert case["expect"].casefold() in result["error"].casefold(), result
    assert case["record"] in result["error"], result  # the uploaded file is named


# ------------------------------------------------------------------------------------------- CIF folder
@pytest.mark.slow
def test_a_cif_folder_data_set_trains_and_its_hash_follows_its_contents(tmp_path, small_records):
    """The documented CGCNN folder (id_prop.csv + <id>.cif) passes `cfgp train` (it crashed in file_sha256), and
    the run's data hash changes when one CIF changes."""
    from cfgp.data import dataset_sha256
    from cfgp.pipeline import init_run
    from cfgp.splits import SplitSettings

    folder = tmp_path / "folder"
    folder.mkdir()
    records = sorted((r for r in small_records if -5 <= r["formation_energy_per_atom"] <= 1),
                     key=lambda r: r["nsites"])[:12]
    for r in records:
        (folder / f"{r['material_id']}.cif").write_text(r["cif"])
    (folder / "id_prop.csv").write_text("".join(f"{r['material_id']},{r['formation_energy_per_atom']}\n"
                                                for r in records))
    run_dir = tmp_path / "run"
    out = run_limited([*CFGP, "train", "--run", str(run_dir), "--data", str(folder), "--n-train", "8", "--n-test", "2",
                       "--epochs", "1", "--seed", "0"], LIMIT_MB, cwd=ROOT)
    assert_clean(out, "cfgp train on a CIF folder")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json_lines(out.stdout)[-1]["epochs_run"] == 1
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["data_sha256"] == dataset_sha256(folder)
    assert settings["load_report"]["n_kept"] == 12
    split = SplitSettings(seed=0, n_train=8, n_test=2)
    init_run(run_dir, data=folder, split=split)  # same folder: accepted
    first = folder / f"{records[0]['material_id']}.cif"
    first.write_text(first.read_text().replace("generated using pymatgen", "edited"))
    assert dataset_sha256(folder) != settings["data_sha256"]
    with pytest.raises(ValueError, match="data file changed"):
        init_run(run_dir, data=folder, split=split)
