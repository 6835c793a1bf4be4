"""JIT costs, measured in fresh processes.

- cold: a new Python process with ``NUMBA_CACHE_DIR`` pointing at an empty temporary
  folder, so every kernel compiles: ``import fastbp``, then the first fit in float64,
  then the first fit in float32 (each compiles its own specialisation);
- warm: a new process with the normal cache (filled by this run's warm-up): the same
  import and first fits, the kernels loaded from the cache;
- scikit-learn: a new process, ``import sklearn.neural_network`` and the same first fits.

The fit is the same tiny one everywhere: 500 digits, hidden (32,), relu, adam, batch 100,
5 epochs. Each child reports its own clock (import, fit per dtype); the parent also
reports the whole process's wall time, interpreter start-up included.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from bench.workloads import REPO

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
which = sys.argv[1]
if which == "fastbp":
    import fastbp as mod
else:
    from sklearn import neural_network as mod
t_import = time.perf_counter() - t0
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
X, y = load_digits(return_X_y=True)
X, y = X[:500] / 16.0, y[:500]
out = dict(import_s=t_import)
for dt in ("float64", "float32"):
    for which in ("first", "second"):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mod.MLPClassifier(hidden_layer_sizes=(32,), batch_size=100, max_iter=5,
                              random_state=0).fit(X.astype(dt), y)
        out[which + "_fit_" + dt + "_s"] = time.perf_counter() - t
out["total_s"] = time.perf_counter() - t0
print("RESULT " + json.dumps(out))
"""


def _child(which, env_extra=None, threads=None):
    env = dict(os.environ)
    if threads:  # --threads: the same limit in the child, set before anything loads
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                  "NUMBA_NUM_THREADS"):
            env[k] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(env_extra or {})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, which], cwd=str(REPO), env=env,
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


def measure(repeats=3, cold=True, threads=None, progress=None):
    out = {"fit": "500 digits, hidden (32,), relu, adam, batch 100, 5 epochs"}
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
