"""Run Python code in a fresh interpreter that imports this checkout's fastbp (and the
modules of tests/), for tests that need a process of their own."""

import os
import subprocess
import sys
from pathlib import Path

from threadpoolctl import threadpool_info

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def blas_threads():
    """The BLAS thread count in effect in this process now."""
    return max([1] + [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])


def child_env():
    """This environment, with this checkout importable and the BLAS thread count this
    process uses now: float64 results can depend on it (test_determinism.py), and
    libraries may leave a different one in os.environ (distributed's Nanny sets
    OPENBLAS_NUM_THREADS=1 and friends there for its workers, and leaves them)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(TESTS), env.get("PYTHONPATH", "")) if p
    )
    threads = str(blas_threads())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = threads
    return env


def run_python(code, *args, timeout=300, env=None, cwd=ROOT):
    """Run ``code`` with ``sys.argv[1:] = args`` (and ``env``'s variables over
    ``child_env()``'s) in ``cwd``; raise with its stderr if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=str(cwd), env=dict(child_env(), **(env or {})), capture_output=True,
        text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"child process failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout
