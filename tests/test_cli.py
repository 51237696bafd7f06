"""The `cfgp` console command, run as a user would (subprocesses)."""

import json
import os
import subprocess
import sys

import pytest

from cfgp.artefacts import DEFAULT_RUN

EVALUATE_KEYS = {"mae", "rmse", "r2", "coverage_2sigma", "miscalibration_area", "sharpness", "nll", "n_test", "device"}


def cfgp(*args, timeout=600):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "cfgp.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_help():
    out = cfgp("--help")
    assert out.returncode == 0
    for command in ("train", "featurize", "fit", "evaluate", "predict"):
        assert command in out.stdout


def test_evaluate_json_on_a_run(tiny_run):
    out = cfgp("evaluate", "--run", tiny_run.dir, "--json")
    assert out.returncode == 0, out.stderr
    result = last_json(out.stdout)
    assert EVALUATE_KEYS <= result.keys()
    assert result["n_test"] == 60 and 0 < result["mae"] < 2 and 0 <= result["coverage_2sigma"] <= 1


@pytest.mark.skipif(not (DEFAULT_RUN / "gp.json").exists(), reason="the embedded default is not built")
def test_evaluate_json_on_the_embedded_default():
    out = cfgp("evaluate", "--json")
    assert out.returncode == 0, out.stderr
    result = last_json(out.stdout)
    assert EVALUATE_KEYS <= result.keys()
    assert result["n_test"] == 1460
    # a model that learned formation energies of oxides (std of the targets is ~0.73 eV/atom)
    assert result["mae"] < 0.25 and result["r2"] > 0.8
    assert 0.85 < result["coverage_2sigma"] <= 1.0


def test_predict_cifs_and_bad_files_reported_per_file(tiny_run, tmp_path, small_records):
    good = small_records[:2]
    paths = []
    for r in good:
        p = tmp_path / f"{r['material_id']}.cif"
        p.write_text(r["cif"])
        paths.append(p)
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 3\nloop_\n junk\n")
    fake = tmp_path / "fake.json.gz"
    fake.write_text("not gzip")
    out = cfgp("predict", "--run", tiny_run.dir, "--json", broken, *paths, fake)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    by_source = {line["source"]: line for line in lines}
    assert "unparsable CIF" in by_source[str(broken)]["error"]
    assert "not gzip" in by_source[str(fake)]["error"]
    for r, p in zip(good, paths):
        line = by_source[str(p)]
        assert line["id"] == r["material_id"] and line["formula"] == r["formula"]
        assert -6 < line["e_form"] < 2 and line["sigma"] > 0
    strict = cfgp("predict", "--run", tiny_run.dir, "--json", "--strict", broken, paths[0])
    assert strict.returncode == 1 and len(strict.stdout.strip().splitlines()) == 2


def test_predict_a_dataset_file(tiny_run):
    from tests.conftest import SMALL

    out = cfgp("predict", "--run", tiny_run.dir, "--json", SMALL)
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert len(lines) == 302 and all("e_form" in line for line in lines)  # no energy window when predicting
    assert all(line["dft"] is not None for line in lines)


def test_bad_data_gives_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"material_id\": \"x\"}]")
    out = cfgp("train", "--run", tmp_path / "run", "--data", bad, "--epochs", "1")
    assert out.returncode == 2
    assert "error:" in out.stderr and "no usable records" in out.stderr and "Traceback" not in out.stderr
    out = cfgp("evaluate", "--run", tmp_path / "nowhere")
    assert out.returncode == 2 and "not a cfgp run folder" in out.stderr
