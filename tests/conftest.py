"""Shared fixtures: a small cut of the real MP oxides and one tiny trained run per session."""

import atexit
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# what commands make from the shipped default goes to the user folder: the tests use a fresh one each session,
# neither reading nor touching the developer's ~/.cache/cfgp (subprocesses and the served app inherit it)
_HOME = tempfile.mkdtemp(prefix="cfgp-home-")
os.environ["CFGP_HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

from tests.fixtures.make_tiny_run import FIXTURES, SMALL, TINY_RUN  # noqa: E402  (after the environment above)


@pytest.fixture(scope="session")
def small_records() -> list[dict]:
    return json.load(gzip.open(SMALL, "rt"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real run on the fixture: MEGNet trained 15 epochs on 150 materials, latents, fitted GP.

    Built once by ``tests/fixtures/make_tiny_run.py`` and committed (a minute of training each session saved; the
    long test ``test_tiny_run_fixture.py`` checks the recipe still makes it); every worker gets its own copy of
    the folder, since tests write into it."""
    from cfgp.pipeline import Run

    directory = tmp_path_factory.mktemp("tiny_run")
    shutil.copytree(TINY_RUN, directory, dirs_exist_ok=True)
    return Run(directory)


@pytest.fixture(scope="session")
def entropy_history(tiny_run, tmp_path_factory) -> Path:
    """An entropy active-learning history on the tiny run: 8 cycles of 3 picks."""
    from cfgp.al import ALSettings, run_history
    from cfgp.pipeline import active_learner, al_header, load_gp

    settings = ALSettings(strategy="entropy", cycles=8, batch_size=3, seed=0)
    path = tmp_path_factory.mktemp("retrain") / "entropy.jsonl"
    gp = load_gp(tiny_run, conditioned=False)
    run_history(active_learner(tiny_run, settings, gp), path, al_header(tiny_run, settings, gp.to_dict()),
                progress=False)
    return path


@pytest.fixture(scope="session")
def warm_retrain(tiny_run, entropy_history, tmp_path_factory) -> tuple[Path, dict]:
    """The paper's retrain step on the tiny run (shared by the retrain and learning-curve tests: each costs a
    MEGNet training and a re-featurisation): train + the first 20 entropy picks, warm start, 3 epochs. Returns
    the new run's folder and retrain's result."""
    from cfgp.retrain import retrain

    out = tmp_path_factory.mktemp("retrained") / "warm"
    return out, retrain(tiny_run, entropy_history, out, picks=20, epochs=3, patience=3, warm_start=True,
                        progress=False)


@pytest.fixture(scope="session")
def shipped_latents() -> dict:
    """Train / test latents of the shipped run (read only), scaled as its GP scales them, and its GP settings."""
    from cfgp.artefacts import DEFAULT_RUN, read_json
    from cfgp.gp import CFGP
    from cfgp.pipeline import Run

    run = Run(DEFAULT_RUN)
    saved = read_json(run.dir / "gp.json")["gp"]
    gp = CFGP.from_dict(saved)
    X, y = run.latents(), run.materials.y
    tr, te = run.split.train, run.split.test
    return {"run": run, "saved": saved, "h": saved["hyperparameters"], "Xtr": X[tr], "ytr": y[tr], "Xte": X[te],
            "yte": y[te], "Str": gp.scaler_.transform(X[tr]), "Ste": gp.scaler_.transform(X[te])}
