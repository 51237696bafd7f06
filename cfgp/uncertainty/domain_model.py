"""Domain of applicability: is a material like the ones the model was trained on, and if not, why not.

A GP's σ grows with distance in latent space, but the latent space itself was learnt from oxides: a metal
or a compound of an element MEGNet never saw can land close to training oxides and get a small σ while
its prediction is wrong by electron-volts (measured in the README). So a prediction comes with a domain
check fitted on the *training split only*, with one reason per failed test:

- **composition**: the material lacks an element that every training material has — for the shipped data
  that is O, which is how the data set defines an oxide ("its composition contains O", shared data README);
- **unseen elements**: it contains an element that no training material contains (MEGNet's embedding of
  that element was never trained);
- **rare elements**: it contains an element that only 1 to ``rare_count`` training materials contain (the
  network and the GP have barely seen it: on the default, pool oxides with such elements had MAE 0.40 eV/atom
  and 2σ coverage 0.66 before this flag);
- **far latent**: the mean distance to its ``k`` nearest training latents (standardised) exceeds the
  ``percentile`` of the same distance for *held-out* training materials — the MEGNet early-stopping part of
  the train split, whose latents the network did not fit (or, without one, cross-fitted folds of train).

The thresholds are fitted without the test split (``fit`` only ever sees training rows); the README reports
how this choice of detector and percentile measured against alternatives (density and one-class models).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

#: bootstrap resamples behind the threshold's interval
BOOTSTRAP = 1000
#: short names of the flags, in the order reasons are written
FLAGS = ("composition", "unseen_elements", "rare_elements", "far_latent", "no_latent")


@dataclass(frozen=True)
class DomainSettings:
    """What defines a domain model; saved with it, and a saved model is reused only when these match."""

    k: int = 1
    percentile: float = 97.5
    n_folds: int = 10  # cross-fitting folds over the whole train split (the threshold's sample)
    seed: int = 0
    rare_count: int = 5  # an element in at most this many training materials is rare (0 turns the flag off)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DomainCheck:
    """The outcome of :meth:`DomainModel.check` for n materials (arrays of length n)."""

    in_domain: np.ndarray
    reason: list[str]
    distance: np.ndarray  # mean distance to the k nearest training latents (NaN without a latent)
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # FLAGS name → bool per material
    short: list[str] = field(default_factory=list)  # a few words per material for hovers ('' when in domain)

    def __len__(self) -> int:
        return len(self.in_domain)

    def take(self, rows: np.ndarray) -> "DomainCheck":
        """The check of a subset of the materials (rows: positions or a boolean mask)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=int)
        return DomainCheck(in_domain=self.in_domain[rows], reason=[self.reason[i] for i in rows],
                           distance=self.distance[rows], flags={k: v[rows] for k, v in self.flags.items()},
                           short=[self.short[i] for i in rows] if self.short else [])

    def summary(self) -> dict:
        """Counts: materials, flagged, and flagged per reason (a material can have several reasons)."""
        out = {"n": len(self), "flagged": int((~self.in_domain).sum())}
        out.update({name: int(mask.sum()) for name, mask in self.flags.items()})
        return out


def element_sets(elements: Iterable) -> list[frozenset[str]]:
    """Each material's element symbols as a set, from a space-separated string or a sequence of symbols."""
    out = []
    for e in elements:
        if isinstance(e, str):
            e = e.split()
        out.append(frozenset(str(s) for s in e))
    return out


def _join(symbols: Iterable[str]) -> str:
    return ", ".join(sorted(symbols))


def k_nearest(Q: np.ndarray, R: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices of each row of ``Q``'s ``k`` nearest rows of ``R`` (at most ``len(R)``),
    nearest first: the one neighbour search of cfgp (the domain model, and the compare view's nearest training
    material)."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=max(1, min(int(k), len(R)))).fit(R).kneighbors(Q)

class DomainModel:
    """Flags materials unlike the training set, scikit-learn style: ``fit`` on training latents and
    element sets, ``predict`` → in-domain booleans, ``check`` → booleans, reasons and distances.

    Parameters
    ----------
    k : neighbours whose mean distance measures how far a latent is from the training latents.
    percentile : of the held-out training materials' distance; farther is flagged.
    n_folds, seed : cross-fitting when no held-out part is given to ``fit``.
    """

    def __init__(self, k: int = 1, percentile: float = 97.5, n_folds: int = 10, seed: int = 0, rare_count: int = 5):
        self.k = k
        self.percentile = percentile
        self.n_folds = n_folds
        self.seed = seed
        self.rare_count = rare_count

    @classmethod
    def from_settings(cls, settings: DomainSettings) -> "DomainModel":
        return cls(**settings.to_dict())

    @property
    def settings(self) -> DomainSettings:
        return DomainSettings(k=self.k, percentile=self.percentile, n_folds=self.n_folds, seed=self.seed,
                              rare_count=self.rare_count)

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray, elements: Sequence, holdout: np.ndarray | None = None) -> "DomainModel":
        """Fit on training materials only.

        X : (n, d) training latents; elements : the element symbols of each (iterables or space-joined);
        holdout : boolean mask of training rows held out from the featuriser's fit (its early-stopping part).
        With ``holdout`` the reference latents are the other rows and the threshold is the ``percentile``
        of the held-out rows' distances to them; without it, each of ``n_folds`` seeded folds is measured
        against the other folds and every row is a reference.
        """
        X = np.asarray(X, dtype=np.float64)
        sets = element_sets(elements)
        if X.ndim != 2 or len(X) != len(sets):
            raise ValueError(f"X must be (n, d) with one element set per row, got {X.shape} and {len(sets)}")
        if not np.isfinite(X).all():
            raise ValueError("training latents must be finite (drop materials whose featurisation failed)")
        if not 0 < self.percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        n = len(X)
        if n < self.k + 2:
            raise ValueError(f"a domain model needs at least {self.k + 2} training materials, got {n}")
        self.required_elements_ = sorted(frozenset.intersection(*sets)) if sets else []
        self.elements_ = sorted(frozenset().union(*sets))
        counts: dict[str, int] = {}
        for st in sets:
            for e in st:
                counts[e] = counts.get(e, 0) + 1
        self.element_counts_ = dict(sorted(counts.items()))
        self.shift_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        Xs = (X - self.shift_) / self.scale_
        if holdout is not None:
            holdout = np.asarray(holdout, dtype=bool)
            if holdout.shape != (n,):
                raise ValueError(f"holdout must be a boolean mask of length {n}")
            if holdout.sum() < 1 or (~holdout).sum() < self.k:
                raise ValueError("holdout needs at least one held-out row and k reference rows")
            self.reference_ = Xs[~holdout]
            held = self._knn(Xs[holdout], self.reference_)
            self.holdout_kind_ = "held-out part of train"
        else:
            self.reference_ = Xs
            rng = np.random.default_rng(self.seed)
            folds = np.array_split(rng.permutation(n), max(2, min(self.n_folds, n // (self.k + 1))))
            held = np.concatenate([self._knn(Xs[f], np.delete(Xs, f, axis=0)) for f in folds])
            self.holdout_kind_ = f"{len(folds)}-fold cross-fitted train"
        self.holdout_distances_ = np.sort(held)
        self.threshold_ = float(np.percentile(held, self.percentile))
        # how well the sample pins the threshold down: a seeded bootstrap 95 % interval of the percentile
        rng = np.random.default_rng(self.seed)
        boot = [np.percentile(rng.choice(held, len(held)), self.percentile) for _ in range(BOOTSTRAP)]
        self.threshold_interval_ = [float(v) for v in np.percentile(boot, [2.5, 97.5])]
        self.reference_mask_ = ~holdout if holdout is not None else np.ones(n, bool)
        return self

    def _knn(self, Q: np.ndarray, R: np.ndarray, skip_self: np.ndarray | None = None) -> np.ndarray:
        """Mean distance of each row of Q to its k nearest rows of R (both standardised); rows of Q flagged in
        ``skip_self`` are themselves in R, so their nearest (zero) distance is dropped."""
        k = min(self.k, len(R))
        extra = 1 if skip_self is not None and skip_self.any() else 0
        dist = k_nearest(Q, R, k + extra)[0]
        if not extra:
            return dist[:, :k].mean(axis=1)
        return np.where(skip_self, dist[:, 1:k + 1].mean(axis=1), dist[:, :k].mean(axis=1))

    # -------------------------------------------------------------- predict
    def distance(self, X: np.ndarray, in_reference: np.ndarray | None = None) -> np.ndarray:
        """Mean standardised distance to the k nearest reference latents (NaN for non-finite rows).
        ``in_reference`` marks rows that are themselves reference materials (their own zero is skipped)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        ok = np.isfinite(X).all(axis=1)
        out = np.full(len(X), np.nan)
        if ok.any():
            skip = None if in_reference is None else np.asarray(in_reference, bool)[ok]
            out[ok] = self._knn((X[ok] - self.shift_) / self.scale_, self.reference_, skip)
        return out

    def check(self, X: np.ndarray, elements: Sequence, in_reference: np.ndarray | None = None) -> DomainCheck:
        """Per material: in the domain or not, and why not (reasons joined by '; ', '' when in domain)."""
        sets = element_sets(elements)
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if len(X) != len(sets):
            raise ValueError(f"{len(X)} latents but {len(sets)} element sets")
        dist = self.distance(X, in_reference)
        required, known = frozenset(self.required_elements_), frozenset(self.elements_)
        missing = [required - s for s in sets]
        unseen = [s - known for s in sets]
        counts = getattr(self, "element_counts_", {})
        rare = [{e: counts[e] for e in s if 0 < counts.get(e, 0) <= self.rare_count} for s in sets]
        flags = {
            "composition": np.array([bool(m) for m in missing], dtype=bool),
            "unseen_elements": np.array([bool(u) for u in unseen], dtype=bool),
            "rare_elements": np.array([bool(r) for r in rare], dtype=bool),
            "far_latent": np.nan_to_num(dist, nan=-np.inf) > self.threshold_,
            "no_latent": ~np.isfinite(dist),
        }
        reasons, short = [], []
        for i in range(len(sets)):
            parts, words = [], []
            if flags["composition"][i]:
                parts.append(self._composition_reason(missing[i]))
                words.append("not an oxide" if set(self.required_elements_) == {"O"} else f"no {_join(missing[i])}")
            if flags["unseen_elements"][i]:
                parts.append(f"elements unseen in training: {_join(unseen[i])}")
                words.append(f"unseen {_join(unseen[i])}")
            if flags["rare_elements"][i]:
                parts.append("rare chemistry: " + ", ".join(
                    f"{e} appears in {n} training material{'s' if n > 1 else ''}" for e, n in sorted(rare[i].items())))
                words.append("rare " + ", ".join(f"{e} ({n})" for e, n in sorted(rare[i].items())))
            if flags["far_latent"][i]:
                words.append("far from training latents")
                parts.append(f"latent far from the training materials ({self._knn_name} {dist[i]:.2f} > "
                             f"{self.threshold_:.2f}, the {self.percentile:g}th percentile of held-out training "
                             f"materials)")
            if flags["no_latent"][i]:
                parts.append("no latent vector (featurisation failed)")
                words.append("no latent")
            reasons.append("; ".join(parts))
            short.append("; ".join(words))
        in_domain = ~np.any(np.stack(list(flags.values())), axis=0)
        return DomainCheck(in_domain=in_domain, reason=reasons, distance=dist, flags=flags, short=short)

    @property
    def _knn_name(self) -> str:
        return "nearest-neighbour distance" if self.k == 1 else f"mean distance to {self.k} nearest"

    def _composition_reason(self, missing: frozenset[str]) -> str:
        if set(self.required_elements_) == {"O"}:
            return "not an oxide: no O (every training material contains O)"
        return (f"lacks {_join(missing)}, which every training material contains "
                f"({_join(self.required_elements_)})")

    def predict(self, X: np.ndarray, elements: Sequence) -> np.ndarray:
        """True for materials inside the domain."""
        return self.check(X, elements).in_domain

    # ---------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """Everything but the reference latents (the caller stores which training materials they are)."""
        return {"settings": self.settings.to_dict(), "required_elements": self.required_elements_,
                "elements": self.elements_, "element_counts": getattr(self, "element_counts_", {}),
                "shift": self.shift_.tolist(), "scale": self.scale_.tolist(),
                "threshold": self.threshold_, "threshold_interval": getattr(self, "threshold_interval_", None),
                "holdout_kind": self.holdout_kind_,
                "holdout_distances": self.holdout_distances_.tolist()}

    @classmethod
    def from_dict(cls, d: dict, reference_latents: np.ndarray) -> "DomainModel":
        """Rebuild a saved model; ``reference_latents`` are the (unscaled) latents of its reference materials."""
        model = cls(**d["settings"])
        model.required_elements_ = list(d["required_elements"])
        model.elements_ = list(d["elements"])
        model.element_counts_ = dict(d.get("element_counts", {}))
        model.shift_, model.scale_ = np.asarray(d["shift"]), np.asarray(d["scale"])
        model.threshold_ = float(d["threshold"])
        model.threshold_interval_ = d.get("threshold_interval")
        model.holdout_kind_ = d["holdout_kind"]
        model.holdout_distances_ = np.asarray(d["holdout_distances"])
        ref = np.asarray(reference_latents, dtype=np.float64)
        if not np.isfinite(ref).all():
            raise ValueError("reference latents must be finite")
        model.reference_ = (ref - model.shift_) / model.scale_
        return model
