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

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = FIXTURES / "oxides_small.json.gz"  # 302 real MP oxides (30 phosphates, 2 suspect energies)


@pytest.fixture(scope="session")
def small_records() -> list[dict]:
    return json.load(gzip.open(SMALL, "rt"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real run on the fixture: MEGNet trained 15 epochs on 150 materials, latents, fitted GP."""
    from cfgp.featurize import MEGNetSettings
    from cfgp.pipeline import featurize, fit_gp, init_run, train_megnet
    from cfgp.splits import SplitSettings

    directory = tmp_path_factory.mktemp("tiny_run")
    run = init_run(directory, data=SMALL, split=SplitSettings(seed=3, n_train=150, n_test=60))
    train_megnet(run, MEGNetSettings(seed=3, batch_size=16), epochs=15, patience=15, progress=False)
    featurize(run, progress=False)
    fit_gp(run)
    return run
