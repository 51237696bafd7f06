"""Artefacts on disk: a run folder holds settings, weights, latents and GP parameters,
each saved with the settings that made them and reloaded (not recomputed) when they match."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cfgp.data import DATA_DIR, DataError, read_bounded_text

DEFAULT_RUN = DATA_DIR / "default"
#: Largest JSON file :func:`read_json` reads, in bytes. The largest artefacts grow with the materials of a run
#: (split.json: 240 kB for the shipped 16,394, ~15 bytes a material); a data set within
#: :data:`cfgp.data.MAX_DATASET_BYTES` holds fewer than 3 million materials (a record with a CIF takes over 100
#: bytes), whose split.json would take ~40 MB. The bound stops a wrong path (a data set, a device, a huge file)
#: from filling memory before it is refused.
MAX_JSON_BYTES = 64 * 2**20
PACKAGES = ("cfgp", "tensorflow", "tf-keras", "tensorflow-probability", "megnet", "pymatgen", "numpy", "scipy",
            "scikit-learn", "pandas")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ReadOnlyRunError(ValueError):
    """A write aimed at the shipped run (``data/default``), which user commands never modify."""


def user_dir() -> Path:
    """Where cfgp writes what users make from the shipped default: ``$CFGP_HOME``, else
    ``$XDG_CACHE_HOME/cfgp``, else ``~/.cache/cfgp``. A cache folder, because everything in it
    is derived (histories, maps, refits) and the same commands remake it; deleting it is safe."""
    if os.environ.get("CFGP_HOME"):
        return Path(os.environ["CFGP_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cfgp"


def cache_dir() -> Path:
    """The user's cache (check-set latents, a domain model or a t-SNE map a reader computed): a pure cache, whose
    deletion only costs the computation again."""
    return user_dir() / "cache"


def default_overlay() -> Path:
    """The user's folder for the default run: new artefacts go here, the shipped ones are read from
    ``data/default`` (see :class:`cfgp.pipeline.Run`)."""
    return user_dir() / "runs" / "default"


def is_shipped_default(path: str | Path) -> bool:
    """True if ``path`` is the shipped run folder itself (by real path, so symlinks count)."""
    return os.path.realpath(path) == os.path.realpath(DEFAULT_RUN)


def refuse_shipped_write(path: str | Path) -> None:
    """Raise :class:`ReadOnlyRunError` if ``path`` lies inside the shipped run: the embedded default
    must stay what its manifest says, whatever code path tries to write there."""
    real, shipped = os.path.realpath(path), os.path.realpath(DEFAULT_RUN)
    if real == shipped or real.startswith(shipped + os.sep):
        raise ReadOnlyRunError(f"{path} is inside the shipped run {DEFAULT_RUN}, which is read-only; without "
                               f"--run, new results go to {default_overlay()} (set CFGP_HOME to move it), "
                               "or give --run FOLDER for a run of your own")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written artefact."""
    path = Path(path)
    refuse_shipped_write(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; artefacts are meant to be shared
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Save ``obj`` as JSON, atomically (:func:`atomic_write_bytes`), so that a reader or a resumed job never sees
    half a file; NumPy numbers and arrays become JSON numbers and lists, since artefacts hold them everywhere."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def read_json(path: str | Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON artefact, read through the package's bounded reader (:func:`cfgp.data.read_bounded_text`), because
    its path often comes from the user (a run folder, ``--out``, a retrain folder) and may name anything.

    A missing file raises FileNotFoundError (callers ask "is it there yet?"); a file that is not regular, holds
    more than ``limit`` bytes, is not UTF-8 or not JSON raises DataError naming the path and why."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    text = read_bounded_text(path, limit, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file was cut or edited")\
            from None
    except (RecursionError, ValueError) as exc:  # nested too deeply, an integer of over 4,300 digits
        raise DataError(f"{path}: not a JSON artefact ({type(exc).__name__}: {str(exc)[:80]})") from None


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Save arrays compressed (``.npz``), written whole in memory first and then atomically, because
    ``np.savez_compressed`` straight to the path would leave a torn file that a cache check would read as stale
    or corrupt after a kill."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of a kept ``.npz`` (an artefact or a cache), or None when the file is missing, torn or not an
    npz at all: its reader computes them anew rather than stopping."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def write_manifest(run_dir: str | Path, settings: dict) -> dict:
    """Record settings, package versions and a hash of every file in the run folder."""
    run_dir = Path(run_dir)
    files = {
        str(p.relative_to(run_dir)): file_sha256(p)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith((".tmp", ".lock"))  # not artefacts
    }
    manifest = {"settings": settings, "packages": package_versions(), "files": files}
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def check_manifest(run_dir: str | Path) -> dict[str, list[str]]:
    """Compare a run folder with its manifest (read-only): files whose sha256 differs, files listed
    but missing, and files present but not listed (lock files and temporaries excepted)."""
    run_dir = Path(run_dir)
    path = run_dir / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; `cfgp manifest --run FOLDER` writes one")
    listed = read_json(path)["files"]
    present = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
               if p.is_file() and p.name != "manifest.json" and not p.name.endswith((".tmp", ".lock"))}
    return {"changed": sorted(f for f in listed if f in present and file_sha256(run_dir / f) != listed[f]),
            "missing": sorted(f for f in listed if f not in present),
            "unlisted": sorted(present - set(listed))}
