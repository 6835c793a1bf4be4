"""python -m bench: fastbp vs the floor vs scikit-learn (vs PyTorch when importable).

Four parts, all measured in this run (``python -m bench SECTION ...`` runs only those
sections: workloads, jit, scaling, inference):

1. the workloads (bench/workloads.py): for each, in this process, the results are checked
   (every trainer fits once; held-out scores must agree), then each trainer and the floor
   (bench/floor.py: the epoch's matrix products alone) are timed, best of --repeats;
2. JIT costs (bench/jit.py): cold compile with an empty Numba cache, the first process
   after ``pip install .`` into a new virtual environment, and time to first fit with a
   warm cache, beside scikit-learn's, each in a fresh process;
3. scaling (bench/runner.py): s/epoch as the rows and the width grow;
4. inference (bench/inference.py): predict_proba of fastbp, scikit-learn and onnxruntime
   (when installed; skipped otherwise) on one model, from one row to 1M rows, at the
   default thread counts and at one thread.

Output: the tables here, every number in a JSON file, PNG plots (bench/results/ by
default). Benchmark with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in that command
only: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench``.
"""

import argparse
import os
import sys
import time
from datetime import datetime, timezone

from bench.workloads import REPO, WORKLOADS, DataUnavailable, suite

SECTIONS = ("workloads", "jit", "scaling", "inference")


def _results_dir():
    if (REPO / "pyproject.toml").exists():
        return REPO / "bench" / "results"
    return os.path.join(os.getcwd(), "bench-results")


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="workloads:\n" + "\n".join(
                                    f"  {w.name:<28} {w.describe()}"
                                    f"{'' if 'default' in w.suites else '  [--full]'}"
                                    for w in WORKLOADS.values()))
    p.add_argument("sections", nargs="*", metavar="SECTION",
                   help="run only these sections (workloads, jit, scaling, inference); "
                        "default: all")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a small subset (3 workloads, short sweeps, no cold compile)")
    size.add_argument("--full", action="store_true",
                      help="every workload, scaling to 1M rows and width 1024")
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS), metavar="NAME",
                   help="run this workload (repeatable); skips JIT and scaling unless "
                        "--jit / --scaling are given")
    p.add_argument("--dtype", action="append", choices=["float64", "float32"],
                   help="run the workloads in this dtype instead of their own (repeatable); "
                        "the scaling sweeps use the first (default float64)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="BLAS/OpenMP threads (threadpoolctl), numba and torch threads")
    p.add_argument("--epochs", type=int, help="override every workload's epochs")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per trainer (best of)")
    p.add_argument("--json", metavar="PATH", help="default: bench/results/bench.json")
    p.add_argument("--plots", metavar="DIR", help="default: bench/results/")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--jit", action="store_true", help="measure JIT costs even with --workload")
    p.add_argument("--scaling", action="store_true", help="run the sweeps even with --workload")
    p.add_argument("--no-jit", action="store_true")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--no-workloads", action="store_true")
    p.add_argument("--inference", action="store_true",
                   help="measure inference even with --workload")
    p.add_argument("--no-inference", action="store_true")
    args = p.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.repeats < 1 or (args.epochs is not None and args.epochs < 1):
        p.error("--repeats and --epochs must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    return args


class Progress:
    """One line per step, rewritten in place on a terminal; silent otherwise."""

    def __init__(self):
        self.tty = sys.stdout.isatty()
        self.prefix = ""

    def __call__(self, msg):
        if self.tty:
            sys.stdout.write(f"\r\033[K{self.prefix}{msg}")
            sys.stdout.flush()

    def clear(self):
        if self.tty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()

    def done(self, line):
        sys.stdout.write(("\r\033[K" if self.tty else "") + line + "\n")
        sys.stdout.flush()


def main(argv=None):
    args = parse(argv)
    level = "quick" if args.quick else "full" if args.full else "default"
    t_start = time.perf_counter()

    # Everything that loads a BLAS or a thread pool is imported before threads are set.
    import numba
    import scipy.linalg  # noqa: F401  scipy's BLAS, which numba's np.dot calls
    from threadpoolctl import threadpool_info, threadpool_limits

    from bench import inference, jit, peers, report, runner

    torch = None if args.no_torch else peers.import_torch()

    if args.workload:
        workloads = [WORKLOADS[n] for n in dict.fromkeys(args.workload)]
    else:
        workloads = suite(level)
    if args.no_workloads or (args.sections and "workloads" not in args.sections):
        workloads = []
    do_jit = not args.no_jit and (not args.workload or args.jit)
    do_scaling = not args.no_scaling and (not args.workload or args.scaling)
    do_inference = not args.no_inference and (not args.workload or args.inference)
    if args.sections:
        do_jit = do_jit and "jit" in args.sections
        do_scaling = do_scaling and "scaling" in args.sections
        do_inference = do_inference and "inference" in args.sections
    jobs = [(w, dt) for w in workloads for dt in (args.dtype or [w.dtype])]
    scale_dtype = (args.dtype or ["float64"])[0]

    progress = Progress()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    sections = {}
    t0 = time.perf_counter()
    progress("warm-up: compiling fastbp's kernels or loading them from Numba's cache")
    warm = runner.warm_up(["float64", "float32"])  # JIT compile/cache load, not timed
    limiter = None
    if args.threads:  # after everything that loads a BLAS or an OpenMP runtime
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(args.threads)
        limiter = threadpool_limits(limits=args.threads)  # noqa: F841  kept for the run

    mach = report.machine()
    pools = threadpool_info()
    run = dict(
        command=" ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"), level=level,
        machine=mach, blas=pools, blas_short=report.blas_line(pools),
        threads=dict(requested=args.threads, numba=numba.get_num_threads(),
                     torch=None if torch is None else torch.get_num_threads(),
                     pools={os.path.basename(p["filepath"]): p["num_threads"] for p in pools}),
        versions=peers.versions(),
        settings=dict(repeats=args.repeats, epochs=args.epochs, dtype=args.dtype,
                      torch=torch is not None, timing="best of repeats rounds (up to twice "
                      "as many while a best is not confirmed within 25% by a second run), "
                      "whole fits / epochs, trainers interleaved per round; the floor 3 "
                      "epochs per round",
                      memory="rss_peak_mb: growth of the resident set during the first "
                      "timed fit: peak RSS (VmHWM, reset via /proc/self/clear_refs) minus RSS "
                      "before the fit, after gc.collect() and malloc_trim(0); counts every "
                      "allocator (NumPy's, torch's), includes the fit's input validation "
                      "copies",
                      tolerances=dict(score_fastbp_sklearn=runner.TOL_SAME_MODEL,
                                      loss_fastbp_sklearn=runner.TOL_LOSS,
                                      score_torch_fastbp=runner.TOL_TORCH,
                                      noisy_second_best_over_best=runner.NOISY)),
        warm_up_s=warm, load_average_start=load_start, section_wall_s=sections,
    )
    sections["start-up"] = time.perf_counter() - t0

    progress.clear()
    print(f"fastbp {run['versions']['fastbp']} | {mach['cpu_model']} | {mach['cpu_count']} cpus"
          f" | {mach['platform']} | python {mach['python']}")
    print("BLAS: " + "\n      ".join(report.blas_lines(pools)))
    print(f"threads: numba {run['threads']['numba']}, torch {run['threads']['torch']}"
          f"{'' if not args.threads else f' (--threads {args.threads})'}")
    v = run["versions"]
    print(f"versions: numpy {v['numpy']}, scipy {v['scipy']}, numba {v['numba']}, "
          f"scikit-learn {v['scikit_learn']}, torch {v['torch'] or 'not timed'}")
    if load_start is not None:
        print(f"load average before the run (1/5/15 min): "
              f"{' '.join(f'{x:.2f}' for x in load_start)}"
              + ("  -- other work is running: timings will be noisy; --threads 1 is steadier"
                 if load_start[0] > 0.5 else ""))
    pinned = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if pinned:
        print(f"note: {', '.join(pinned)} set: OpenBLAS may be pinned to an old kernel "
              "(benchmark with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`)")
    print("warm-up (JIT compile or cache load, not timed): "
          + ", ".join(f"{k} {s:.1f}s" for k, s in warm.items()))
    if torch is None and not args.no_torch:
        print("torch: not importable, not timed")

    # 1. workloads
    results = []
    t0 = time.perf_counter()
    if jobs:
        print(f"\n{len(jobs)} workloads, best of {args.repeats}; "
              "s/ep = seconds per epoch; x floor = fastbp ÷ floor; "
              "vs X = X's s/ep ÷ fastbp's (FLAG: scores disagree, not a result)\n")
        print(report.speed_header())
        for i, (w, dt) in enumerate(jobs, 1):
            progress.prefix = f"[{i}/{len(jobs)}] {w.name} {dt}: "
            try:
                r = runner.run_workload(w, dt, args.epochs or w.epochs, args.repeats,
                                        use_torch=torch is not None, progress=progress)
            except DataUnavailable as e:
                progress.done(f"{w.name:<27}{dt:<8} skipped: {e}")
                continue
            results.append(r)
            progress.done(report.speed_row(r))
        run["workloads"] = results
        print("\npeak RSS+ MB: growth of the resident set during one fit (peak RSS minus RSS "
              "before, after malloc_trim); check fit s: the untimed first fit (warm-up).")
        print(report.memory_table(results))
        print("\nwhere fastbp's time goes, ms per epoch (bench/breakdown.py): the floor "
              "(products, BLAS threads), fastbp's serial work beside them by kind, other = "
              "fastbp - floor - serial; 'if serial only' = (floor + serial) / floor, the "
              "best x floor while that work runs on one core")
        print(report.breakdown_table(results))
        flagged = [r for r in results if r["flags"]]
        for r in flagged:
            print(f"FLAG {r['name']} {r['dtype']}: " + "; ".join(r["flags"]))
        extra = [f"{r['name']} ({r['rounds']})" for r in results if r["rounds"] > args.repeats]
        if extra:
            print("rounds added where a best was not confirmed within "
                  f"{runner.NOISY - 1:.0%} by a second run: " + ", ".join(extra))
        noisy = [r for r in results if r["noisy"] and not r["flags"]]
        if noisy:
            print(f"noisy: the second-best time is still more than {runner.NOISY - 1:.0%} "
                  f"above the best after {2 * args.repeats} rounds (other work on the "
                  "machine; take these ratios with care): " + ", ".join(
                      f"{r['name']} ({', '.join(f'{k} {v:.2f}' for k, v in r['spread'].items() if v > runner.NOISY)})"
                      for r in noisy))
        sections["workloads"] = time.perf_counter() - t0

    # 2. JIT costs
    if do_jit:
        progress.prefix = "JIT: "
        t0 = time.perf_counter()
        run["jit"] = jit.measure(repeats=1 if level == "quick" else args.repeats,
                                 cold=level != "quick", installed=level != "quick",
                                 threads=args.threads, progress=progress)
        progress.clear()
        print("\nJIT costs, fresh processes (" + run["jit"]["fit"] + "):")
        print(report.jit_table(run["jit"]))
        if level == "quick":
            print("(--quick: cold compile and pip install skipped, one fresh process each)")
        sections["jit"] = time.perf_counter() - t0

    # 3. scaling
    if do_scaling:
        progress.prefix = "scaling: "
        t0 = time.perf_counter()
        run["scaling"] = runner.scaling(level, scale_dtype, args.repeats, progress=progress)
        progress.clear()
        s = run["scaling"]
        print(f"\nscaling, {s['dtype']}, {s['features']} features, {s['classes']} classes, "
              f"hidden {tuple(s['hidden'])} for rows / (w, w) on {s['width_rows']} rows for "
              f"width, {s['activation']}, {s['solver']}, batch {s['batch_size']}, "
              f"best of {args.repeats}:")
        print(report.scaling_table(s))
        sections["scaling"] = time.perf_counter() - t0

    # 4. inference
    if do_inference:
        progress.prefix = "inference: "
        t0 = time.perf_counter()
        run["inference"] = inference.measure(level, dtypes=args.dtype or ("float32", "float64"),
                                             progress=progress)
        progress.clear()
        inf = run["inference"]
        print(f"\ninference, {inf['model']}; per call, median (min) of {inf['rounds']} "
              f"rounds (a third as many at 1M rows), contenders alternating; vs X = X's "
              f"time / fastbp's; threads: default = "
              + ", ".join(f"{k} {v}" for k, v in inf["blas_threads_default"].items())
              + ", "
              "onnxruntime's default pool (one thread per core); 1 = BLAS limited to 1, "
              "onnxruntime intra_op_num_threads=1:")
        if inf["onnxruntime"] is None:
            print("onnxruntime or skl2onnx not installed: onnxruntime skipped "
                  "(pip install onnx onnxruntime skl2onnx)")
        else:
            print(f"onnxruntime {inf['onnxruntime']}, skl2onnx {inf['skl2onnx']}; "
                  "outputs checked against fastbp's before timing")
        print(inference.table(inf))
        sections["inference"] = time.perf_counter() - t0

    run["duration_s"] = time.perf_counter() - t_start
    run["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    json_path = args.json or os.path.join(_results_dir(), "bench.json")
    report.write_json(json_path, run)
    print(f"JSON: {json_path}")
    if not args.no_plots:
        paths = report.plots(run, args.plots or str(_results_dir()))
        print("plots: " + (", ".join(paths) if paths else "none (matplotlib not installed)"))
    print(f"total {run['duration_s']:.0f} s ("
          + ", ".join(f"{k} {v:.0f} s" for k, v in sections.items()) + ")")
    bad = [r for r in results if r["flags"]]
    bad += [p for part in ("rows", "widths") for p in (run.get("scaling") or {}).get(part, [])
            if p["flags"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
