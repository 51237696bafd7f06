"""Deterministic train / pool / test splits (the paper's protocol by default)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: The paper used 10,455 MP oxides split 1,800 / 7,195 / 1,460.
PAPER_N_TRAIN = 1800
PAPER_N_TEST = 1460
PAPER_SUBSAMPLE = 10455


@dataclass(frozen=True)
class SplitSettings:
    seed: int = 0
    n_train: int = PAPER_N_TRAIN
    n_test: int = PAPER_N_TEST
    subsample: int | None = None  # PAPER_SUBSAMPLE for the paper's dataset size

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Split:
    """Positions into a Materials table. The test part is never used for training,
    hyper-parameters or active-learning selection."""

    train: np.ndarray
    pool: np.ndarray
    test: np.ndarray
    settings: SplitSettings

    def labels(self, n: int) -> np.ndarray:
        """Array of 'train' / 'pool' / 'test' / '' (not in the split) per material."""
        out = np.full(n, "", dtype=object)
        out[self.train], out[self.pool], out[self.test] = "train", "pool", "test"
        return out


def make_split(ids: np.ndarray, settings: SplitSettings = SplitSettings()) -> Split:
    """Split materials by id so that the result does not depend on file order."""
    ids = np.asarray(ids).astype(str)
    n = len(ids)
    if len(set(ids)) != n:
        raise ValueError("material ids must be unique to split")
    order = np.argsort(ids, kind="stable")
    rng = np.random.default_rng(settings.seed)
    order = order[rng.permutation(n)]
    if settings.subsample is not None:
        if settings.subsample > n:
            raise ValueError(f"subsample {settings.subsample} is larger than the dataset ({n})")
        order = order[: settings.subsample]
    n_used = len(order)
    if settings.n_train + settings.n_test >= n_used:
        raise ValueError(
            f"dataset of {n_used} is too small for {settings.n_train} train + {settings.n_test} test + a pool"
        )
    test = np.sort(order[: settings.n_test])
    train = np.sort(order[settings.n_test : settings.n_test + settings.n_train])
    pool = np.sort(order[settings.n_test + settings.n_train :])
    return Split(train=train, pool=pool, test=test, settings=settings)
