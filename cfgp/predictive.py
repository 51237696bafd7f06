"""What every GP's ``predict`` returns, assembled from its batches (exact, sparse and local GPs share it).

The scikit-learn convention: the posterior mean, or ``(mean, std)`` with ``return_std=True``; a variance that
round-off pushed to or below zero gives a tiny positive σ rather than NaN.
"""

from __future__ import annotations

import numpy as np


def std_from_variance(var) -> np.ndarray:
    """σ of a predictive variance computed as a difference (a² − …), floored above zero."""
    return np.sqrt(np.maximum(var, 1e-300))


def predictive_output(means: list, stds: list, return_std: bool) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The per-batch means (and σs) joined: ``mean`` or ``(mean, std)``; empty arrays for no queries."""
    mean = np.concatenate(means) if means else np.zeros(0)
    if return_std:
        return mean, (np.concatenate(stds) if stds else np.zeros(0))
    return mean
