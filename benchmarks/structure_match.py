"""Benchmark "is this upload already in the data set?" (:func:`cfgp.structure_match.find_match`) on supercells of a
real crystal of the shipped default, up to the upload's 1,000-site limit: the upload reduced to its primitive cell
once by spglib (as shipped) against pymatgen's matcher reducing it in every comparison (as before). Both in one
process, alternated, so that their ratio holds on a shared machine. Prints one JSON line.

    python benchmarks/structure_match.py [--material mp-555838] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from unittest import mock

import numpy as np

from cfgp import structure_match
from cfgp.artefacts import DEFAULT_RUN
from cfgp.pipeline import Run, load_gp
from cfgp.search import build_formula_index
from cfgp.structure_checks import MAX_SITES


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--material", default="mp-555838")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    run = Run(DEFAULT_RUN)
    xs = load_gp(run, conditioned=False).scaler_.transform(np.nan_to_num(run.latents()))
    index = build_formula_index(run.materials.frame)
    row = int(run.materials.index_of([args.material])[0])
    cell = run.materials.structure(row)
    rows = index.get(cell.composition.reduced_formula)
    out = {"benchmark": "structure_match", "material": args.material, "sites_per_cell": len(cell),
           "machine": platform.machine(), "supercells": []}
    for n in sorted({1, 2, int(np.floor((MAX_SITES / len(cell)) ** (1 / 3)))}):
        sc = cell.copy()
        sc.make_supercell([n, n, n])
        times = {"shipped": [], "reduced_per_comparison": []}
        for _ in range(args.repeats):
            for how in times:
                patch = mock.patch.object(structure_match, "primitive_cell", lambda s: s) \
                    if how == "reduced_per_comparison" else contextlib.nullcontext()
                with patch:
                    t0 = time.perf_counter()
                    m = structure_match.find_match(run.materials, rows, xs, sc, xs[row])
                    times[how].append(time.perf_counter() - t0)
                assert m.row == row and m.same_material, (how, n, m)
        med = {k: statistics.median(v) for k, v in times.items()}
        out["supercells"].append({"sites": len(sc), **{f"{k}_s": round(v, 3) for k, v in med.items()},
                                  "ratio": round(med["reduced_per_comparison"] / med["shipped"], 1)})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
