"""Where the background trainings stand: one JSON line per job folder under ``experiments/`` that has a
``training/train_state.json`` (the state of its last checkpoint), with the epoch, the best validation MAE and its
epoch, the epoch from which the stopping rule counts (``plateau_epoch``: the last 1 % improvement), the earliest
epoch at which the rule can stop it, and the training time so far (wall-clock, pauses included, and CPU).

    .venv/bin/python experiments/progress.py [FOLDER ...]

Read-only: it never writes, so it can run beside the queues."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cfgp.featurize import training_progress, training_seconds
from cfgp.retrain import PATIENCE

HERE = Path(__file__).resolve().parent


def job_progress(folder: Path) -> dict:
    """The progress of one job folder (the rule's patience is read from its ``run.json`` where it names one);
    ``epoch: 0`` before its first checkpoint."""
    job = str(folder.relative_to(HERE) if folder.is_relative_to(HERE) else folder)
    path = folder / "training" / "train_state.json"
    if not path.exists():
        return {"job": job, "epoch": 0, "finished": False, "reason": "no checkpoint yet"}
    state = json.loads(path.read_text())
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
    patience = run.get("family_network", {}).get("rule", {}).get("patience", PATIENCE)
    history = state.get("history", [])
    p = training_progress(state, patience)
    return {"job": job, "epoch": p["epoch"], "best_val_mae": round(p["best_val_mae"] or float("nan"), 4),
            **{k: p[k] for k in ("best_epoch", "plateau_epoch", "earliest_stop", "finished", "reason")},
            "train_seconds": training_seconds(history), "train_cpu_seconds": training_seconds(history, "cpu_seconds")}


def main(argv: list[str]) -> None:
    folders = [Path(a) for a in argv] or sorted(p.parent.parent for p in HERE.glob("**/training/train_state.json"))
    for folder in folders:
        print(json.dumps(job_progress(folder.resolve())))


if __name__ == "__main__":
    main(sys.argv[1:])
