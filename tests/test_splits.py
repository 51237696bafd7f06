import numpy as np
import pytest

from cfgp.splits import SplitSettings, make_split


def _ids(n):
    return np.array([f"mp-{i}" for i in range(n)])


def test_paper_protocol_sizes_disjoint_and_deterministic():
    ids = _ids(16388)
    a = make_split(ids, SplitSettings(seed=0))
    b = make_split(ids, SplitSettings(seed=0))
    assert (len(a.train), len(a.test), len(a.pool)) == (1800, 1460, 16388 - 3260)
    assert not set(a.train) & set(a.test) and not set(a.pool) & set(a.test) and not set(a.train) & set(a.pool)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "pool", "test"))
    c = make_split(ids, SplitSettings(seed=1))
    assert not np.array_equal(a.test, c.test)


def test_split_does_not_depend_on_file_order():
    ids = _ids(5000)
    perm = np.random.default_rng(9).permutation(5000)
    a = make_split(ids, SplitSettings(seed=4))
    b = make_split(ids[perm], SplitSettings(seed=4))
    assert set(ids[a.test]) == set(ids[perm][b.test])
    assert set(ids[a.train]) == set(ids[perm][b.train])


def test_paper_subsample():
    s = make_split(_ids(16388), SplitSettings(seed=0, subsample=10455))
    assert (len(s.train), len(s.pool), len(s.test)) == (1800, 7195, 1460)


def test_too_small_and_duplicates():
    with pytest.raises(ValueError, match="too small"):
        make_split(_ids(3000))
    with pytest.raises(ValueError, match="unique"):
        make_split(np.array(["a", "a", "b"]), SplitSettings(n_train=1, n_test=1))
