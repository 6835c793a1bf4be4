"""Where a cold first fit's time goes: CPU seconds per compiled function, split into
Numba's own work (typing, lowering, the rest) and LLVM's, in a fresh process with an
empty Numba cache.

    python -m bench.compile_time [--solver adam] [--repeats 3] [--table]

Each run is a new interpreter with ``NUMBA_CACHE_DIR`` an empty temporary folder; it
measures CPU time (user + system, ``getrusage(RUSAGE_SELF)``, which a loaded machine
distorts less than wall time) of ``import fastbp``, then of the first
``MLPClassifier().fit`` + ``predict_proba`` on iris in float64, then in float32.

The breakdown charges every CPU second of the compiling thread (``time.thread_time``) to
the innermost of Numba's events open at the time: the function being compiled
(``numba:compile``), the compiler pass running (``numba:run_pass``), and whether the
time is spent inside LLVM (``numba:llvm_lock``, held around every LLVM call: parsing,
optimisation, machine code). A function's time is its own, not its callees'. "typing" is
every pass before lowering (bytecode to IR, inlining, type inference, rewrites);
"lower" is ``native_lowering`` without LLVM (Numba building the LLVM IR); "llvm" is
LLVM's time under any pass (mostly optimisation and code generation when a library is
finalised); "other" the rest (wrappers, cache writes). "n" counts the function's
compilations (one per signature, each literal or type variant its own).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench.workloads import REPO

CHILD = r"""
import json, resource, sys, time, warnings
from collections import defaultdict

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

solver, breakdown = sys.argv[1], sys.argv[2] == "1"
out = {}
c0 = cpu()
import numba
from numba.core import event

stack = []  # [function name, pass name, in llvm]
acc = defaultdict(float)  # (function, dtype, part) -> thread CPU seconds
state = dict(last=time.thread_time(), dtype="-")
compiles = defaultdict(list)  # (function, dtype) -> the signatures compiled

def charge():
    now = time.thread_time()
    if stack:
        fn, pname, llvm = stack[-1]
        if llvm:
            part = "llvm"
        elif pname is None or pname == "nopython_backend":
            part = "other"
        elif pname == "native_lowering":
            part = "lowering"
        else:
            part = "typing"
        acc[(fn, state["dtype"], part)] += now - state["last"]
    else:
        acc[("(outside numba)", state["dtype"], "other")] += now - state["last"]
    state["last"] = now

class Compile(event.Listener):
    def on_start(self, ev):
        charge()
        d = ev.data["dispatcher"]
        name = getattr(d, "py_func", None)
        name = (name.__module__.replace("fastbp.", "") + "." + name.__qualname__
                if name is not None else str(d))
        stack.append([name, None, False])
        compiles[(name, state["dtype"])].append(str(ev.data["args"]))
    def on_end(self, ev):
        charge()
        stack.pop()

class Pass(event.Listener):
    def on_start(self, ev):
        charge()
        if stack:
            stack.append([stack[-1][0], ev.data["name"].split(" [")[0], False])
    def on_end(self, ev):
        charge()
        if stack:
            stack.pop()

class Llvm(event.Listener):
    def on_start(self, ev):
        charge()
        if stack:
            stack.append([stack[-1][0], stack[-1][1], True])
    def on_end(self, ev):
        charge()
        if stack:
            stack.pop()

if breakdown:
    event.register("numba:compile", Compile())
    event.register("numba:run_pass", Pass())
    event.register("numba:llvm_lock", Llvm())

state["dtype"] = "import"
state["last"] = time.thread_time()
import fastbp
charge()
out["import"] = cpu() - c0
import numpy as np
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
X, y = load_iris(return_X_y=True)
for dt in ("float64", "float32"):
    state["dtype"] = dt
    c = cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = fastbp.MLPClassifier(solver=solver, random_state=0).fit(X.astype(dt), y)
        m.predict_proba(X.astype(dt))
    charge()
    out[dt] = cpu() - c
out["total"] = cpu() - c0
out["breakdown"] = [[f, d, p, s] for (f, d, p), s in acc.items()]
out["compiles"] = [[f, d, sigs] for (f, d), sigs in compiles.items()]
print("RESULT " + json.dumps(out))
"""


def run(solver="adam", breakdown=True):
    """One fresh process, empty cache: its numbers (CPU seconds)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("FASTBP_DISABLE_CACHE", None)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        proc = subprocess.run([sys.executable, "-c", CHILD, solver, "1" if breakdown else "0"],
                              env=env, capture_output=True, text=True, check=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def table(result, top=40):
    """Rows (function, dtype, total, typing, lowering, llvm, other), largest first."""
    rows = {}
    for fn, dt, part, s in result["breakdown"]:
        row = rows.setdefault((fn, dt), dict(typing=0.0, lowering=0.0, llvm=0.0, other=0.0))
        row[part if part in row else "other"] += s
    count = {(fn, dt): len(sigs) for fn, dt, sigs in result.get("compiles", [])}
    lines = ["%-44s %-7s %3s %6s %6s %6s %6s %6s" % ("function", "dtype", "n", "total",
                                                    "typing", "lower", "llvm", "other")]
    total = dict(typing=0.0, lowering=0.0, llvm=0.0, other=0.0)
    for (fn, dt), r in sorted(rows.items(), key=lambda kv: -sum(kv[1].values()))[:top]:
        lines.append("%-44s %-7s %3d %6.2f %6.2f %6.2f %6.2f %6.2f" % (
            fn[:44], dt, count.get((fn, dt), 0), sum(r.values()), r["typing"], r["lowering"], r["llvm"], r["other"]))
    for r in rows.values():
        for k in total:
            total[k] += r[k]
    lines.append("%-44s %-7s %3d %6.2f %6.2f %6.2f %6.2f %6.2f" % (
        "(all)", "", sum(count.values()), sum(total.values()), total["typing"], total["lowering"], total["llvm"],
        total["other"]))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.compile_time",
                                description=__doc__.split("\n")[0])
    p.add_argument("--solver", default="adam")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--table", action="store_true", help="the per-function breakdown")
    p.add_argument("--json", help="write the runs' numbers to this file")
    p.add_argument("--no-breakdown", action="store_true",
                   help="no event listeners (their own cost left out of the totals)")
    args = p.parse_args(argv)
    results = [run(args.solver, not args.no_breakdown) for _ in range(args.repeats)]
    for key in ("import", "float64", "float32", "total"):
        vals = [r[key] for r in results]
        print("%-8s median %6.2f s CPU  (%s)" % (key, statistics.median(vals),
                                                 ", ".join("%.2f" % v for v in vals)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
    if args.table:
        print(table(results[-1]))


if __name__ == "__main__":
    main()
