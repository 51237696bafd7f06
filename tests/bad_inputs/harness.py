"""Run bad-input cases in a child process under a memory limit, and the child side of the train and upload cases.

Memory: TensorFlow reserves tens of GB of *virtual* memory at import, so ``RLIMIT_AS`` cannot express "2 GB".
The parent instead polls the child's resident memory (``/proc/PID/status`` VmRSS, every 20 ms), kills it
past the limit, and takes the exact peak from the kernel when it reaps the child (``os.wait4`` →
``ru_maxrss``, the largest resident set the child ever had — a spike between two polls is still counted).

Child side (``python -m tests.bad_inputs.harness train|upload CORPUS_DIR [RUN]``): one JSON line per case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float  # largest resident set of the child (its VmHWM, sampled every 20 ms)
    killed: str  # "" or why the parent killed it (memory, time)
    seconds: float


def run_limited(cmd: list[str], limit_mb: float = 2048, timeout: float = 900, cwd: Path = ROOT) -> Finished:
    """Run ``cmd``; kill it if its resident memory passes ``limit_mb`` or it runs past ``timeout`` s."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
    out: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: out.__setitem__(k, f.read()), daemon=True)
               for k, f in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for r in readers:
        r.start()
    killed = ""
    # The child's peak: its VmHWM, sampled. Not ru_maxrss: after fork that starts at the parent's resident size
    # and exec does not reset it, so a child of a large test process would report the parent's size.
    peak_mb = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if not killed:
            try:
                with open(f"/proc/{proc.pid}/status") as fh:
                    fields = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in fh
                              if line.startswith(("VmRSS", "VmHWM"))}
                rss_mb = fields.get("VmRSS", 0.0)
                peak_mb = max(peak_mb, fields.get("VmHWM", 0.0), rss_mb)
            except (OSError, ValueError, IndexError):
                rss_mb = 0.0
            if rss_mb > limit_mb:
                killed = f"resident memory {rss_mb:.0f} MB passed the {limit_mb:.0f} MB limit"
            elif time.time() - t0 > timeout:
                killed = f"still running after {timeout:.0f} s"
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.02)
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Finished(proc.returncode, out["stdout"].decode(errors="replace"), out["stderr"].decode(errors="replace"),
                    peak_mb or usage.ru_maxrss / 1024, killed, round(time.time() - t0, 1))


# ------------------------------------------------------------------------------------------ child side
def _cases(corpus: Path, target: str) -> list[dict]:
    table = json.loads((corpus / "corpus.json").read_text())
    return [c for c in table["cases"] if c["target"] == target]


def run_train_cases(corpus: Path) -> None:
    """What ``cfgp train`` does with a data set before training: :func:`cfgp.pipeline.init_run` (read, validate,
    split, save settings), each case into its own run folder."""
    from cfgp.data import DataError
    from cfgp.pipeline import init_run
    from cfgp.splits import SplitSettings

    for case in _cases(corpus, "train"):
        run_dir = corpus / "runs" / case["name"]
        try:
            run = init_run(run_dir, data=case["path"], split=SplitSettings(seed=0, n_train=3, n_test=1))
            report = run.materials.report
            result = {"kept": report.n_kept, "ids": run.materials.ids.tolist(),
                      "skipped": [[i.record, i.reason] for i in report.skipped]}
        except DataError as exc:
            result = {"error": str(exc)}
        except Exception as exc:  # a failure of the code under test, reported per case
            result = {"unexpected": f"{type(exc).__name__}: {exc}"[:500]}
        print(json.dumps({"case": case["name"], **result}), flush=True)


def run_upload_cases(corpus: Path, run_dir: str) -> None:
    """The app's upload handler on each case: its byte checks (:func:`upload_text`, on the event loop), then in
    its worker thread the parse (:func:`upload_structure`) and the featuriser on the structure, as
    ``Predict._work`` calls them; a good upload goes through the same steps and the GP."""
    from cfgp.dashboard.predict import upload_structure, upload_text
    from cfgp.data import DataError
    from cfgp.pipeline import Run, load_gp

    run = Run(run_dir)
    featurizer = run.featurizer()
    gp = load_gp(run)
    table = json.loads((corpus / "corpus.json").read_text())
    good = [{"name": "good_" + Path(p).name, "path": p} for p in table["good"][:1]]
    for case in _cases(corpus, "upload") + good:
        name = case.get("record") or case["name"]
        value = Path(case["path"]).read_bytes()
        try:
            text = upload_text(name, value)
            structure = upload_structure(name, text)
            X = featurizer.transform([structure], names=[name])
            mean, std = gp.predict(X, return_std=True)
            result = {"e_form": float(mean[0]), "sigma": float(std[0]), "formula": structure.composition.reduced_formula}
        except DataError as exc:
            result = {"error": str(exc)}
        except Exception as exc:  # the handler would show "Unexpected problem": a failure of the code under test
            result = {"unexpected": f"{type(exc).__name__}: {exc}"[:500]}
        print(json.dumps({"case": case["name"], "upload": name, **result}), flush=True)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    target, corpus = sys.argv[1], Path(sys.argv[2])
    if target == "train":
        run_train_cases(corpus)
    elif target == "upload":
        run_upload_cases(corpus, sys.argv[3])
    else:
        raise SystemExit(f"unknown target {target}")
