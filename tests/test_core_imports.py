"""The cfgp core imports no web framework: only cfgp.dashboard may (the notebooks' HoloViews plot builders
import it lazily, inside the functions that draw)."""

import pkgutil
import subprocess
import sys

import cfgp

WEB = ("panel", "bokeh", "holoviews", "tornado", "param")


def test_core_modules_import_no_web_framework():
    core = sorted(m.name.removeprefix("cfgp.") for m in pkgutil.walk_packages(cfgp.__path__, "cfgp.")
                  if not m.name.startswith("cfgp.dashboard"))
    assert {"gp", "al", "data", "pipeline", "hv_plots", "cli", "uncertainty.metrics"} <= set(core)
    code = ("import sys\n" + "".join(f"import cfgp.{m}\n" for m in core)
            + f"print(sorted(w for w in {WEB!r} if w in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout



def test_layer_contracts_hold():
    """The import-linter contracts in pyproject.toml (the layers, one way), checked on every import, function-level
    ones included: a lower layer importing a higher one inside a function breaks this too."""
    import shutil
    from pathlib import Path

    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    out = subprocess.run([exe], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert out.returncode == 0 and "0 broken" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]


def test_no_function_level_imports_of_cfgp():
    """Every ``from cfgp… import`` sits at a module's top, where the layer contracts and a reader see it: an import
    inside a function can hide a lower layer reaching up (or an import cycle) until that function runs. The core's
    heavy libraries (TensorFlow, MEGNet, matplotlib, HoloViews) stay lazy inside the functions that use them;
    cfgp's own modules import in about a second, so none of them needs to be lazy (``cfgp --help``: 1.1 s)."""
    import ast
    from pathlib import Path

    hidden = []
    for path in sorted(Path(cfgp.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.Try)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.module or "").split(".")[0] == "cfgp" \
                            or isinstance(sub, ast.Import) and any(a.name.split(".")[0] == "cfgp" for a in sub.names):
                        hidden.append(f"{path.relative_to(Path(cfgp.__file__).parents[1])}:{sub.lineno}")
    assert not hidden, sorted(set(hidden))
