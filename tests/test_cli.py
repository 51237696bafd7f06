"""The `cfgp` console command, run as a user would (subprocesses)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cfgp.artefacts import DEFAULT_RUN
from tests import reference

EVALUATE_KEYS = {"mae", "rmse", "r2", "coverage_2sigma", "miscalibration_area", "sharpness", "nll", "n_test", "device"}


def cfgp(*args, timeout=600):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "cfgp.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _reference_test_predictions(run):
    """Mean and σ of the run's saved GP on its test split, from the NumPy reference (not from cfgp)."""
    saved = json.loads((run.dir / "gp.json").read_text())["gp"]
    X, y = run.latents(), run.materials.y
    tr, te = run.split.train, run.split.test
    mu, sd = reference.gp_posterior_from_saved(saved, X[tr], y[tr], X[te])
    return mu, sd, y[te]


def test_evaluate_json_on_a_run(tiny_run):
    out = cfgp("evaluate", "--run", tiny_run.dir, "--json")
    assert out.returncode == 0, out.stderr
    result = last_json(out.stdout)
    assert EVALUATE_KEYS <= result.keys()
    mu, sd, y = _reference_test_predictions(tiny_run)
    assert result["n_test"] == 60
    assert result["mae"] == pytest.approx(np.mean(np.abs(mu - y)), rel=1e-6)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((mu - y) ** 2)), rel=1e-6)
    assert result["r2"] == pytest.approx(1 - np.sum((mu - y) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-6)


@pytest.mark.slow
def test_every_step_of_the_pipeline_on_a_copy_of_a_run(tiny_run, tmp_path):
    """featurize, fit, tsne, al, al-compare and manifest as a user runs them on a run folder of their own:
    cached artefacts are reused byte for byte, missing ones are made again and equal, and manifest --check
    names a file that changed."""
    import shutil

    run_dir = tmp_path / "mine"
    shutil.copytree(tiny_run.dir, run_dir, ignore=shutil.ignore_patterns("al", "tsne-*", "manifest.json"))
    latents = run_dir / "latents.npz"
    before = latents.read_bytes()
    out = last_json(cfgp("featurize", "--run", run_dir, "--quiet").stdout)
    assert out["n"] == len(tiny_run.materials) and out["failed"] == 0 and out["dim"] == 32
    assert latents.read_bytes() == before  # same weights: reloaded, not recomputed
    latents.unlink()
    assert cfgp("featurize", "--run", run_dir, "--quiet").returncode == 0
    np.testing.assert_allclose(np.load(latents)["X"], np.load(tiny_run.dir / "latents.npz")["X"], rtol=1e-5,
                               atol=1e-5)
    saved = json.loads((run_dir / "gp.json").read_text())["gp"]["hyperparameters"]
    fit = last_json(cfgp("fit", "--run", run_dir).stdout)
    assert {k: fit[k] for k in saved} == saved  # same settings and latents: the saved fit
    out = last_json(cfgp("tsne", "--run", run_dir, "--perplexity", "5", "--n-iter", "50", "--quiet").stdout)
    xy = np.load(run_dir / out["file"])["xy"]
    assert out["n"] == len(xy) == len(tiny_run.materials) and np.isfinite(xy).all()
    al = last_json(cfgp("al", "--run", run_dir, "--strategy", "random", "--cycles", "5", "--pool-size", "0",
                        "--json", "--quiet").stdout)
    history = [json.loads(line) for line in (run_dir / "al" / "random-b1-poolall-s0.jsonl").read_text().splitlines()]
    assert [r["cycle"] for r in history[1:]] == list(range(6)) and al["labels"] == 5
    assert al["final_mae_mean"] == history[-1]["mae"]
    compare = last_json(cfgp("al-compare", "--run", run_dir, "--json").stdout)
    assert compare["strategies"]["random-b1-poolall"]["final_mae_mean"] == history[-1]["mae"]
    assert last_json(cfgp("manifest", "--run", run_dir).stdout)["files"] >= 8
    assert last_json(cfgp("manifest", "--run", run_dir, "--check").stdout)["ok"] is True
    (run_dir / "gp.json").write_text((run_dir / "gp.json").read_text() + " ")
    out = cfgp("manifest", "--run", run_dir, "--check")
    assert out.returncode == 1 and last_json(out.stdout)["changed"] == ["gp.json"]


@pytest.mark.skipif(not (DEFAULT_RUN / "gp.json").exists(), reason="the embedded default is not built")
def test_evaluate_json_on_the_embedded_default():
    out = cfgp("evaluate", "--json")
    assert out.returncode == 0, out.stderr
    result = last_json(out.stdout)
    assert EVALUATE_KEYS <= result.keys()
    assert result["n_test"] == 1460
    from cfgp.pipeline import Run

    mu, sd, y = _reference_test_predictions(Run(DEFAULT_RUN))  # the shipped GP, recomputed in NumPy
    assert result["mae"] == pytest.approx(np.mean(np.abs(mu - y)), rel=1e-6)
    assert result["r2"] == pytest.approx(1 - np.sum((mu - y) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-6)
    # the results page's row for the default reports what the shipped files give
    readme = (DEFAULT_RUN.parent.parent / "docs" / "results.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| **CFGP default**"))
    cells = [c.strip().strip("*") for c in row.split("|")[2:]]
    assert (cells[0], cells[2]) == (f"{result['mae']:.4f}", f"{result['r2']:.3f}")


@pytest.mark.slow
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
    assert out.returncode == 3, out.stderr  # some inputs skipped, the others predicted
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    by_source = {line["source"]: line for line in lines}
    assert "unparsable CIF" in by_source[str(broken)]["error"]
    assert "not gzip" in by_source[str(fake)]["error"]
    for r, p in zip(good, paths):
        line = by_source[str(p)]
        assert line["id"] == r["material_id"] and line["formula"] == r["formula"]
        assert line["sigma"] > 0
        # the structure from a CIF file gets the prediction of the same material's stored latent (reference GP)
        row = int(tiny_run.materials.index_of([r["material_id"]])[0])
        mu, _ = reference.gp_posterior_from_saved(json.loads((tiny_run.dir / "gp.json").read_text())["gp"],
                                                  tiny_run.latents()[tiny_run.split.train],
                                                  tiny_run.materials.y[tiny_run.split.train],
                                                  tiny_run.latents()[[row]])
        assert line["e_form"] == pytest.approx(mu[0], abs=1e-4)
    strict = cfgp("predict", "--run", tiny_run.dir, "--json", "--strict", broken, paths[0])
    assert strict.returncode == 3 and len(strict.stdout.strip().splitlines()) == 2  # --strict: kept, no effect


@pytest.mark.slow
def test_predict_a_dataset_file(tiny_run):
    from tests.conftest import SMALL

    out = cfgp("predict", "--run", tiny_run.dir, "--json", SMALL)
    assert out.returncode == 0, out.stderr  # every record predicted
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert len(lines) == 302 and all("e_form" in line for line in lines)  # no energy window when predicting
    assert all(line["dft"] is not None for line in lines)
    # --serial and pymatgen's reader: the very same lines; --serial with Dask workers is refused, saying why
    same = cfgp("predict", "--run", tiny_run.dir, "--json", "--serial", "--cif-reader", "pymatgen", SMALL)
    assert same.returncode == 0 and same.stdout == out.stdout
    refused = cfgp("predict", "--run", tiny_run.dir, "--serial", "--workers", "2", SMALL)
    assert refused.returncode == 2 and "--serial is for one process" in refused.stderr


def test_bad_data_gives_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"material_id\": \"x\"}]")
    out = cfgp("train", "--run", tmp_path / "run", "--data", bad, "--epochs", "1")
    assert out.returncode == 2
    assert "error:" in out.stderr and "no usable records" in out.stderr and "Traceback" not in out.stderr
    out = cfgp("evaluate", "--run", tmp_path / "nowhere")
    assert out.returncode == 2 and "not a cfgp run folder" in out.stderr


@pytest.mark.slow
def test_predict_json_says_whether_each_line_is_in_the_domain(tiny_run, tmp_path, small_records):
    """Every line carries in_domain and domain; a real metal is out of the domain with its reason; σ is the
    calibrated one and the GP's own σ is kept as sigma_raw."""
    import gzip

    from tests.conftest import FIXTURES

    iron = json.load(gzip.open(FIXTURES / "domain_records.json.gz", "rt"))["nonoxides"][0]
    assert iron["material_id"] == "mp-13" and iron["formula"] == "Fe"
    metal = tmp_path / "Fe.cif"
    metal.write_text(iron["cif"])
    oxide = tmp_path / "oxide.cif"
    oxide.write_text(small_records[0]["cif"])
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 3\n")
    out = cfgp("predict", "--run", tiny_run.dir, "--json", metal, oxide, broken)
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert len(lines) == 3 and all(isinstance(x["in_domain"], bool) and isinstance(x["domain"], str) for x in lines)
    by_source = {x["source"]: x for x in lines}
    fe = by_source[str(metal)]
    assert fe["in_domain"] is False and fe["domain"].startswith("not an oxide: no O")
    assert fe["domain_codes"].split(",")[0] == "composition"  # the machine-readable reasons, in reason order
    assert fe["sigma"] > fe["sigma_raw"] > 0
    ox = by_source[str(oxide)]
    assert ox["in_domain"] == (ox["domain"] == "") == (ox["domain_codes"] == "") and ox["sigma_raw"] > 0
    assert by_source[str(broken)]["in_domain"] is False and "error" in by_source[str(broken)]
    text = cfgp("predict", "--run", tiny_run.dir, metal)
    assert "OUT OF DOMAIN: not an oxide" in text.stdout


def test_evaluate_json_has_groups(tiny_run):
    out = cfgp("evaluate", "--run", tiny_run.dir, "--json")
    assert out.returncode == 0, out.stderr
    result = last_json(out.stdout)
    groups = result["groups"]
    assert groups["all"]["n"] == result["n_test"] == 60
    assert groups["phosphates"]["n"] + groups["other_oxides"]["n"] == 60
    for g in groups.values():
        assert {"n", "mae", "coverage_2sigma", "miscalibration_area", "coverage_2sigma_raw"} <= g.keys()
    assert result["sigma_calibration"]["fitted_on"] == "pool split (never test)"
    assert result["domain"]["required_elements"] == ["O"]


@pytest.mark.slow
def test_train_cutoff_is_a_setting_of_the_run(tmp_path, capsys):
    """`cfgp train --cutoff 4.5` builds 4.5 Å crystal graphs and saves the cut-off with the weights; a resume with
    another cut-off is refused with a clear error instead of mixing two networks, a resume without --cutoff keeps
    the run's own, and a new run without it gets the shipped default's 4 Å (in this process: one epoch of training)."""
    from cfgp.cli import main, train_cutoff
    from cfgp.featurize import DEFAULT_CUTOFF, SETTINGS_FILE, MEGNetFeaturizer, MEGNetSettings
    from tests.conftest import SMALL

    run = tmp_path / "r4"
    common = ["train", "--run", str(run), "--data", str(SMALL), "--seed", "3", "--n-train", "40", "--n-test", "20",
              "--epochs", "1", "--batch-size", "16"]
    assert main([*common, "--cutoff", "4.5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs_run"] == 1
    feat = MEGNetFeaturizer.load(run)
    assert feat.settings.cutoff == 4.5 and feat.model.graph_converter.cutoff == 4.5
    assert json.loads((run / "training" / "megnet.settings.json").read_text())["cutoff"] == 4.5
    assert main([*common, "--epochs", "2", "--cutoff", "5"]) == 2  # 5 Å against a 4.5 Å checkpoint
    err = capsys.readouterr().err
    assert "other settings" in err and "'cutoff': 4.5" in err and "Traceback" not in err
    assert main(common) == 0  # no --cutoff: resumed as 4.5 Å (a 4 Å default would be refused as above)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reason"] == "reached 1 epochs"
    assert MEGNetFeaturizer.load(run).settings.cutoff == 4.5
    # a new run without --cutoff gets the shipped default's cut-off (what training it would write, without the minute)
    shipped = json.loads((DEFAULT_RUN / SETTINGS_FILE).read_text())["cutoff"]
    assert train_cutoff(tmp_path / "fresh") == DEFAULT_CUTOFF == MEGNetSettings().cutoff == shipped == 4.0
    with pytest.raises(SystemExit):  # argparse's usage error, before any folder or graph is made
        main([*common[:2], str(tmp_path / "r0"), *common[3:], "--cutoff", "0"])
    assert "a cut-off must be above 0" in capsys.readouterr().err and not (tmp_path / "r0").exists()


def test_cutoff_default_is_one_constant_and_the_shipped_runs(tmp_path):
    """The cut-off of a new network is one constant, and it is the shipped default run's: `cfgp train` without
    --cutoff on a fresh folder and a bare MEGNetSettings() agree with data/default."""
    from cfgp.cli import train_cutoff
    from cfgp.featurize import DEFAULT_CUTOFF, SETTINGS_FILE, MEGNetSettings

    shipped = json.loads((DEFAULT_RUN / SETTINGS_FILE).read_text())["cutoff"]
    assert train_cutoff(tmp_path / "fresh") == MEGNetSettings().cutoff == DEFAULT_CUTOFF == shipped


def test_al_finetune_refuses_bad_settings_before_any_work(tmp_path):
    out = cfgp("al-finetune", "--strategy", "<nonsense>", "--out", tmp_path / "x")
    assert out.returncode == 2 and "unknown strategy '<nonsense>'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()  # nothing written


# ------------------------------------------------------------------ bad input: one line naming it, exit code 2
def _run_main(capsys, *argv) -> tuple[int, str]:
    """`cfgp ARGV` in this process: (exit code, stderr)."""
    from cfgp.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_family_report_names_the_file_and_the_known_families_of_an_unknown_family(tmp_path, capsys):
    from cfgp.uncertainty.family_holdout import HELD_OUT_FAMILIES

    job = tmp_path / "job"
    job.mkdir()
    (job / "family.json").write_text(json.dumps({"family": "unobtainium", "finished": True, "converged": True}))
    code, err = _run_main(capsys, "family-report", job)
    line = _one_line(err)
    assert code == 2 and line.startswith(f"cfgp family-report: error: {job / 'family.json'}: family 'unobtainium'")
    assert all(name in line for name in HELD_OUT_FAMILIES)


def test_an_unwritable_or_folder_output_is_one_line_naming_the_path(tmp_path, capsys):
    """An OSError of a file (here: --out below a regular file) is `<path>: <reason>`, exit code 2; an output that is a
    folder is refused before any work (al-compare would otherwise replay histories first)."""
    import errno

    plain = tmp_path / "plain"
    plain.write_text("")
    code, err = _run_main(capsys, "predict", "--out", plain / "x.jsonl", tmp_path / "a.cif")
    assert code == 2
    assert _one_line(err) == f"cfgp predict: error: {plain / 'x.jsonl'}: {os.strerror(errno.ENOTDIR)}"
    for argv, option in ((("al-compare", "--plot", tmp_path), "--plot"),
                         (("learning-curve", "--out", tmp_path / "lc.json", "--plot", tmp_path), "--plot"),
                         (("predict", "--out", tmp_path, tmp_path / "a.cif"), "--out")):
        code, err = _run_main(capsys, *argv)
        assert code == 2 and f"cfgp {argv[0]}: error: {tmp_path}: is a folder; {option} takes a file name" in _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]  # nothing written


def test_a_mistyped_history_is_named_as_missing(tmp_path, capsys):
    missing = tmp_path / "entropy-s0.jsonl"
    code, err = _run_main(capsys, "retrain", "--history", missing, "--out", tmp_path / "out")
    assert code == 2 and _one_line(err).startswith(f"cfgp retrain: error: {missing}: no such history")
    assert not (tmp_path / "out").exists()


def test_ids_of_another_data_set_are_named(tmp_path, capsys):
    """A run whose split.json names materials its data set lacks: the ids are named, no KeyError traceback."""
    import gzip

    from cfgp.data import dataset_sha256
    from cfgp.splits import SplitSettings
    from tests.conftest import SMALL

    ids = [r["material_id"] for r in json.load(gzip.open(SMALL, "rt"))][:3]
    run = tmp_path / "run"
    run.mkdir()
    sha = dataset_sha256(SMALL)  # trusted: the CIFs are not parsed again, and the motifs are read, not computed
    (run / "run.json").write_text(json.dumps({"data": str(SMALL), "energy_window": None, "data_sha256": sha,
                                              "split": SplitSettings(seed=0, n_train=2, n_test=1).to_dict()}))
    (run / "motifs.json").write_text(json.dumps({"data_sha256": sha, "motifs": {}}))
    (run / "split.json").write_text(json.dumps({"settings": SplitSettings(seed=0, n_train=2, n_test=1).to_dict(),
                                                "train": [ids[0], "mp-nowhere"], "pool": [ids[1]], "test": [ids[2]]}))
    code, err = _run_main(capsys, "family-network", "--run", run, "--family", "lanthanides", "--out", tmp_path / "fam")
    line = _one_line(err)
    assert code == 2 and line.startswith(f"cfgp family-network: error: 1 material id(s) not in the data set {SMALL}")
    assert "'mp-nowhere'" in line


def test_option_defaults_are_the_library_constants():
    """Each default the CLI shows is the library's own constant, so changing one changes both (never a copy)."""
    from cfgp.al import PAPER_POOL_SIZE, ALSettings
    from cfgp.cli import build_parser
    from cfgp.data import DEFAULT_ENERGY_WINDOW, MAX_DATASET_BYTES
    from cfgp.embedding import TSNESettings
    from cfgp.gp import N_INDUCING
    from cfgp.local_gp import N_NEIGHBOURS
    from cfgp.pipeline import TRAIN_MAX_EPOCHS, TRAIN_MIN_REL_IMPROVEMENT, TRAIN_PATIENCE, train_megnet
    from cfgp.retrain import MAX_EPOCHS, MIN_REL_IMPROVEMENT, PATIENCE
    from cfgp.retrain_report import BOOTSTRAP
    from cfgp.splits import SplitSettings

    sub = next(a for a in build_parser()._actions if isinstance(getattr(a, "choices", None), dict)).choices

    def default(command, dest):
        return next(a.default for a in sub[command]._actions if a.dest == dest)

    assert (default("train", "n_train"), default("train", "n_test")) == (SplitSettings().n_train, SplitSettings().n_test)
    assert tuple(default("train", "energy_window")) == DEFAULT_ENERGY_WINDOW
    assert (default("train", "epochs"), default("train", "patience"), default("train", "min_improvement") / 100) \
        == (TRAIN_MAX_EPOCHS, TRAIN_PATIENCE, TRAIN_MIN_REL_IMPROVEMENT)
    assert train_megnet.__defaults__[1:3] == (TRAIN_MAX_EPOCHS, TRAIN_PATIENCE)
    # `cfgp train`'s rule is the one the shipped default was trained by, so the command reproduces it
    shipped = json.loads((DEFAULT_RUN / "training" / "summary.json").read_text())
    assert (shipped["epochs"], shipped["patience"], shipped["min_rel_improvement"]) == \
        (TRAIN_MAX_EPOCHS, TRAIN_PATIENCE, TRAIN_MIN_REL_IMPROVEMENT)
    assert (default("fit", "n_inducing"), default("fit", "n_neighbours")) == (N_INDUCING, N_NEIGHBOURS)
    assert default("predict", "max_input_mb") * 2**20 == MAX_DATASET_BYTES
    assert default("al", "pool_size") == default("al-finetune", "pool_size") == PAPER_POOL_SIZE == ALSettings().pool_size
    assert (default("retrain", "epochs"), default("retrain", "patience")) == (MAX_EPOCHS, PATIENCE)
    assert default("retrain", "min_improvement") / 100 == MIN_REL_IMPROVEMENT
    assert default("retrain-report", "bootstrap") == BOOTSTRAP
    assert (default("tsne", "perplexity"), default("tsne", "n_iter")) == (TSNESettings().perplexity, TSNESettings().n_iter)
    assert f"default {N_INDUCING:,}" in sub["fit"].format_help()


def test_family_report_says_which_scales_meet_the_coverage_goal(capsys):
    """The closing lines of `cfgp family-report`: per σ shape and part, each family's interval and the common one."""
    from cfgp.cli import _print_scales_for_goal

    per = {"pool": {"families": {"lanthanides": [0.438, 0.598], "s_oxides": None}, "common": None},
           "test": {"families": {"lanthanides": [0.4, None]}, "common": [0.4, None]}}
    _print_scales_for_goal({"goal": [0.9, 0.98], "floor": per, "tau": per})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0] == ("floor s (eV/atom) of max(τ_out·σ_GP, s) giving pool 2σ coverage 0.90–0.98: lanthanides "
                        "0.438–0.598; s_oxides none; one for all: none")
    assert lines[3].startswith("τ of τ·σ_GP giving test") and lines[3].endswith("one for all: 0.400–∞")
