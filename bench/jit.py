"""JIT costs, measured in fresh processes.

- cold: a new Python process with ``NUMBA_CACHE_DIR`` pointing at an empty temporary
  folder, so every kernel compiles: ``import fastbp``, then the first fit in float64,
  then the first fit in float32 (each compiles its own specialisation);
- installed: this checkout installed as a newcomer installs it, ``pip install .`` into a
  new virtual environment (its wheel brings the common kernels compiled:
  ``build_backend.py``), then the same process as cold, the first in that environment;
  the install's own time is reported beside it;
- warm: a new process with the normal cache (filled by this run's warm-up): the same
  import and first fits, the kernels loaded from the cache;
- scikit-learn: a new process, ``import sklearn.neural_network`` and the same first fits.

The fit is issue 16's, everywhere: iris, ``MLPClassifier(random_state=0)`` (default
parameters), fit then ``predict_proba``, timed together. Each child reports its own
clock (import, fit + predict per dtype); the parent also reports the whole process's
wall time, interpreter start-up included.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.workloads import REPO

FIT = "iris, MLPClassifier(random_state=0) (default parameters), fit + predict_proba"

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
which = sys.argv[1]
if which == "fastbp":
    import fastbp as mod
else:
    from sklearn import neural_network as mod
t_import = time.perf_counter() - t0
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
X, y = load_iris(return_X_y=True)
out = dict(import_s=t_import)
for dt in ("float64", "float32"):
    for which in ("first", "second"):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mod.MLPClassifier(random_state=0).fit(X.astype(dt), y).predict_proba(
                X.astype(dt))
        out[which + "_fit_" + dt + "_s"] = time.perf_counter() - t
out["total_s"] = time.perf_counter() - t0
print("RESULT " + json.dumps(out))
"""


def _child(which, env_extra=None, threads=None, python=None):
    """Run CHILD for ``which`` in a new process of this checkout's Python (or of
    ``python``, an installed environment's: then nothing of the checkout is on its path)."""
    env = dict(os.environ)
    if threads:  # --threads: the same limit in the child, set before anything loads
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                  "NUMBA_NUM_THREADS"):
            env[k] = str(threads)
    if python is None:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cwd = str(REPO)
    else:
        for k in ("PYTHONPATH", "NUMBA_CACHE_DIR", "FASTBP_DISABLE_CACHE"):
            env.pop(k, None)
        cwd = os.path.dirname(os.path.dirname(python))
    env.update(env_extra or {})
    t0 = time.perf_counter()
    proc = subprocess.run([python or sys.executable, "-c", CHILD, which], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"JIT child ({which}) failed:\n{proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    out["process_wall_s"] = wall
    return out


def _best(runs):
    """Field-wise minimum over runs (best of N), plus the runs themselves."""
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    best["runs"] = runs
    return best


def _install(venv):
    """``pip install`` this checkout (not editable) into a new virtual environment at
    ``venv``; returns (its Python, seconds the venv and the install took)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
    python = os.path.join(venv, "bin", "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_USER")}
    proc = subprocess.run([python, "-m", "pip", "install", "-q", str(REPO)], env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{proc.stderr[-2000:]}")
    return python, time.perf_counter() - t0


def measure(repeats=3, cold=True, installed=True, threads=None, progress=None):
    out = {"fit": FIT}
    if installed:
        if progress:
            progress("pip install . into a new venv (compiles the common kernels)")
        venv = tempfile.mkdtemp(prefix="fastbp-bench-venv-")
        try:
            python, install_s = _install(venv)
            if progress:
                progress("first process after pip install")
            r = _child("fastbp", threads=threads, python=python)
            r["install_s"] = install_s
            out["fastbp_installed"] = r
        except Exception as e:  # (no network, say): reported, the rest still runs
            out["fastbp_installed_error"] = f"{type(e).__name__}: {e}"[:500]
        finally:
            shutil.rmtree(venv, ignore_errors=True)
    if cold:
        if progress:
            progress("cold compile (empty NUMBA_CACHE_DIR)")
        with tempfile.TemporaryDirectory(prefix="fastbp-numba-cold-") as d:
            r = _child("fastbp", {"NUMBA_CACHE_DIR": d}, threads)
            r["cache_bytes"] = sum(os.path.getsize(os.path.join(root, f))
                                   for root, _, files in os.walk(d) for f in files)
        out["fastbp_cold"] = r
    for key, which, label in (("fastbp_warm", "fastbp", "fastbp warm cache"),
                              ("sklearn", "sklearn", "scikit-learn")):
        runs = []
        for i in range(repeats):
            if progress:
                progress(f"{label} {i + 1}/{repeats}")
            runs.append(_child(which, threads=threads))
        out[key] = _best(runs)
    return out
