"""Inference: predict_proba of fastbp, scikit-learn and onnxruntime on one model.

The model: digits (1797 x 64, scaled to [0, 1]), ``MLPClassifier(hidden_layer_sizes=(64,))``,
relu, softmax over 10 classes, fitted by fastbp (adam, 30 epochs, random_state 0) in
each dtype. scikit-learn's copy: a fitted scikit-learn MLPClassifier of the same shape
with fastbp's weights copied in. ONNX: that copy converted by skl2onnx (``zipmap`` off)
and run by an onnxruntime ``InferenceSession`` with default options on the CPU provider.
The three must agree (the probabilities, to ``AGREE[dtype]``) before anything is timed.

X: ``rows`` rows drawn from digits (with replacement), a C-contiguous array of the dtype:
the input each library is fastest on, and fastbp's fast predict path.

Threads, two settings: "default" (scikit-learn's and fastbp's BLAS at its default thread
count, onnxruntime's default intra-op pool: one thread per core) and "1" (BLAS limited to
one thread by threadpoolctl, an onnxruntime session with ``intra_op_num_threads=1``).
fastbp at the default runs a large prediction as chunks of rows that two threads take in
turn, each with one-thread BLAS (``fastbp/_threads.py``); limited to one BLAS thread it
uses one.

Timing, in this process: rounds; in each round every contender runs ``reps`` calls back
to back (``reps`` chosen so that a batch lasts about ``BATCH_S``), the contenders in a
new order every round; the time per call of each batch is one sample. Each batch starts
after ``QUIET_S`` of sleep and one untimed call: thread pools spin for a while after
their work (OpenBLAS's, two of them here: NumPy's for scikit-learn and SciPy's for
fastbp; onnxruntime's), and without the pause each contender would run beside the
previous one's spinning threads. Reported: the min and the median over rounds per
contender, and the ratios peer / fastbp of both.
"""

import time
import warnings

import numpy as np

AGREE = {"float64": 1e-10, "float32": 2e-5}
BATCH_S = 0.01
QUIET_S = 0.1
ROWS = {"quick": [1, 100, 10_000], "default": [1, 100, 10_000, 1_000_000],
        "full": [1, 100, 10_000, 1_000_000]}
ROUNDS = {"quick": 5, "default": 15, "full": 25}
HIDDEN = (64,)


def import_onnx():
    """(onnxruntime, skl2onnx) or None when either is not installed."""
    try:
        import onnxruntime
        import skl2onnx
    except ImportError:
        return None
    return onnxruntime, skl2onnx


def models(dtype, onnx):
    """fastbp's model, scikit-learn's copy of it, and the ONNX sessions (default and one
    thread; None without onnxruntime), with the digits they were fitted on."""
    from sklearn import neural_network as sk
    from sklearn.datasets import load_digits

    import fastbp

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 30 epochs on purpose
        ours = fastbp.MLPClassifier(HIDDEN, max_iter=30, random_state=0).fit(X, y)
        theirs = sk.MLPClassifier(HIDDEN, max_iter=1, random_state=0).fit(X, y)
    theirs.coefs_ = [np.array(W) for W in ours.coefs_]
    theirs.intercepts_ = [np.array(b) for b in ours.intercepts_]
    sessions = None
    if onnx is not None:
        ort, skl2onnx = onnx
        model = skl2onnx.to_onnx(theirs, X[:1], options={"zipmap": False})
        one = ort.SessionOptions()
        one.intra_op_num_threads = 1
        raw = model.SerializeToString()
        sessions = {"default": ort.InferenceSession(raw, providers=["CPUExecutionProvider"]),
                    "1": ort.InferenceSession(raw, one, providers=["CPUExecutionProvider"])}
    return ours, theirs, sessions, X


def contenders(ours, theirs, sessions, threads):
    calls = {"fastbp": ours.predict_proba, "sklearn": theirs.predict_proba}
    if sessions is not None:
        sess = sessions[threads]
        name = sess.get_inputs()[0].name
        calls["onnxruntime"] = lambda X: sess.run(["probabilities"], {name: X})[0]
    return calls


def check(calls, X, dtype):
    """The probabilities of every contender against fastbp's; raises when they differ."""
    want = calls["fastbp"](X)
    worst = {}
    for name, fn in calls.items():
        got = fn(X)
        if got.shape != want.shape:
            raise AssertionError(f"{name}: shape {got.shape}, fastbp {want.shape}")
        worst[name] = float(np.max(np.abs(got.astype(np.float64) - want)))
        if worst[name] > AGREE[dtype]:
            raise AssertionError(f"{name} disagrees with fastbp by {worst[name]:.3g} "
                                 f"(> {AGREE[dtype]:g}) on {len(X)} rows in {dtype}")
    return worst


def time_calls(calls, X, rounds, rng):
    """Per call seconds: {name: [one sample per round]}, contenders alternating."""
    reps = {}
    for name, fn in calls.items():  # warm-up, and the size of a batch
        fn(X)
        t0 = time.perf_counter()
        fn(X)
        once = time.perf_counter() - t0
        reps[name] = max(1, min(100_000, int(BATCH_S / max(once, 1e-7))))
    samples = {name: [] for name in calls}
    names = list(calls)
    for _ in range(rounds):
        for name in rng.permutation(names):
            fn, n = calls[name], reps[name]
            time.sleep(QUIET_S)
            fn(X)
            t0 = time.perf_counter()
            for _ in range(n):
                fn(X)
            samples[name].append((time.perf_counter() - t0) / n)
    return samples, reps


def measure(level="default", dtypes=("float32", "float64"), rounds=None, progress=None):
    """Every (dtype, threads, rows) point: each contender's min and median per call, the
    ratios to fastbp's, and the check's largest difference."""
    from threadpoolctl import threadpool_info, threadpool_limits

    onnx = import_onnx()
    rounds = rounds or ROUNDS[level]
    rng = np.random.default_rng(0)
    out = dict(model=f"digits, hidden {HIDDEN}, relu, softmax (64-64-10), predict_proba",
               rows=ROWS[level], rounds=rounds, batch_s=BATCH_S, quiet_s=QUIET_S,
               onnxruntime=None if onnx is None else onnx[0].__version__,
               skl2onnx=None if onnx is None else onnx[1].__version__,
               blas_threads_default={p["filepath"].rsplit("/", 1)[-1]: p["num_threads"]
                                     for p in threadpool_info()},
               points=[])
    for dtype in dtypes:
        ours, theirs, sessions, data = models(dtype, onnx)
        for threads in ("default", "1"):
            for rows in ROWS[level]:
                if progress:
                    progress(f"{dtype}, threads {threads}, {rows:,} rows")
                X = np.ascontiguousarray(data[rng.integers(0, len(data), rows)])
                with threadpool_limits(1 if threads == "1" else None):
                    calls = contenders(ours, theirs, sessions, threads)
                    worst = check(calls, X, dtype)
                    samples, reps = time_calls(
                        calls, X, max(3, rounds // 3) if rows >= 1_000_000 else rounds, rng)
                p = dict(dtype=dtype, threads=threads, rows=rows, reps=reps,
                         max_abs_diff=worst,
                         min_s={k: min(v) for k, v in samples.items()},
                         median_s={k: float(np.median(v)) for k, v in samples.items()})
                p["ratio_min"] = {k: v / p["min_s"]["fastbp"] for k, v in p["min_s"].items()
                                  if k != "fastbp"}
                p["ratio_median"] = {k: v / p["median_s"]["fastbp"]
                                     for k, v in p["median_s"].items() if k != "fastbp"}
                out["points"].append(p)
                del X
    return out


def _t(s):
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def table(inf):
    """The text table: per point, median (min) per call, and the peers' ratios."""
    peers = [k for k in ("sklearn", "onnxruntime")
             if any(k in p["median_s"] for p in inf["points"])]
    head = (f"{'dtype':<8}{'thr':<8}{'rows':>10}  {'fastbp':>20}"
            + "".join(f"  {k:>20}" for k in peers)
            + "".join(f"  {'vs ' + k:>16}" for k in peers))
    lines = [head, "-" * len(head)]
    for p in inf["points"]:
        cells = [f"{_t(p['median_s'][k])} ({_t(p['min_s'][k])})" for k in ["fastbp"] + peers]
        ratios = [f"{p['ratio_median'][k]:.2f}x ({p['ratio_min'][k]:.2f}x)" for k in peers]
        lines.append(f"{p['dtype']:<8}{p['threads']:<8}{p['rows']:>10,}  {cells[0]:>20}"
                     + "".join(f"  {c:>20}" for c in cells[1:])
                     + "".join(f"  {r:>16}" for r in ratios))
    return "\n".join(lines)


def plot(plt, inf):
    """Per dtype: time per row against rows per call (so the lines do not span six
    decades), each contender at both thread settings."""
    dtypes = list(dict.fromkeys(p["dtype"] for p in inf["points"]))
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.2 * len(dtypes), 4.8), squeeze=False)
    colors = {"fastbp": "tab:blue", "sklearn": "tab:orange", "onnxruntime": "tab:green"}
    for ax, dtype in zip(axes[0], dtypes):
        for threads, style in (("default", "-"), ("1", "--")):
            pts = [p for p in inf["points"] if p["dtype"] == dtype and p["threads"] == threads]
            xs = [p["rows"] for p in pts]
            for name, c in colors.items():
                if name not in pts[0]["median_s"]:
                    continue
                ax.plot(xs, [p["median_s"][name] / p["rows"] * 1e6 for p in pts], style,
                        marker="o" if threads == "default" else "s", color=c,
                        label=f"{name}, {'default threads' if threads == 'default' else '1 thread'}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows per predict_proba call")
        ax.set_ylabel("µs per row (median call time / rows)")
        ax.set_title(f"{dtype}: {inf['model']}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, handlelength=3.5)
    return fig
