"""The batched predict output every GP returns (cfgp/predictive.py)."""

import numpy as np

from cfgp.predictive import predictive_output, std_from_variance


def test_batches_are_joined_in_order_in_the_scikit_learn_shape():
    means, stds = [np.array([1.0, 2.0]), np.array([3.0])], [np.array([0.1, 0.2]), np.array([0.3])]
    np.testing.assert_array_equal(predictive_output(means, stds, False), [1.0, 2.0, 3.0])
    mean, std = predictive_output(means, stds, True)
    np.testing.assert_array_equal(mean, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(std, [0.1, 0.2, 0.3])


def test_no_queries_give_empty_arrays():
    mean, std = predictive_output([], [], True)
    assert mean.shape == (0,) and std.shape == (0,)
    assert predictive_output([], [], False).shape == (0,)


def test_a_variance_rounded_below_zero_gives_a_tiny_positive_sigma_not_nan():
    s = std_from_variance(np.array([4.0, 0.0, -1e-12]))
    assert s[0] == 2.0 and np.all(s[1:] > 0) and np.all(s[1:] < 1e-140) and np.isfinite(s).all()
