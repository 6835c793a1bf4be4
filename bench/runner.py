"""Running one workload, and the scaling sweeps, in this process.

One workload, for each trainer (bench/peers.py) and the floor (bench/floor.py):

1. check (and warm up): one fit per trainer; each trainer's score on the held-out split
   and final loss. Scores that disagree beyond noise flag the workload
   and no speed-up is reported for the pair that disagrees;
2. time: ``repeats`` rounds, each round one whole fit per trainer (``max_iter=epochs``,
   every epoch runs) and three floor epochs, interleaved so that load from other work on
   the machine hits every trainer alike, each started after a quarter second of quiet
   (``peers.SETTLE_S``: the previous trainer's BLAS threads stop spinning); best of all
   rounds, divided by the epochs. While some best is not confirmed by a second run
   within 25 % (other work got in the way), rounds are added, up to twice ``repeats``;
   still unconfirmed then, the workload is marked noisy. The first round's fits also record the growth of the resident set
   (peers.rss_peak);
3. breakdown (bench/breakdown.py): fastbp's serial work beside the products, kind by
   kind, with the workload's shapes; what it does not account for is ``other``.

fastbp's JIT is warmed for both dtypes before any workload (``warm_up``), so no timed or
checked fit compiles.
"""

import os
import time

import numpy as np

from bench import breakdown, peers
from bench.floor import epoch_flops, make_floor
from bench.workloads import Workload, load, scaling_data
from fastbp import _threads

# Allowed |score difference| (accuracy or R² on the held-out split).
# fastbp and scikit-learn train the same model in float64: equal up to rounding, so a
# difference beyond one test sample in a thousand is a bug, not noise. In float32 both
# round differently and training amplifies it. torch draws its own shuffles (and puts
# Adam's eps after the bias correction): a looser band.
TOL_SAME_MODEL = {"float64": 1e-3, "float32": 0.02}
# ... and their final training losses, relative (float64: the same model to rounding).
TOL_LOSS = {"float64": 1e-6, "float32": 1e-2}
TOL_TORCH = 0.05
# Best-of-N is only as good as its best run: when the second best of a trainer's (or the
# floor's) times is this much above the best, other work on the machine got in the way.
NOISY = 1.25


def spread(times):
    """Second-best time over the best (1.0 = two runs agree)."""
    t = sorted(times)
    return t[1] / t[0] if len(t) > 1 and t[0] > 0 else 1.0


def _noisy(times, floor_times):
    """True when some trainer's or the floor's best is not yet confirmed by a second run
    within NOISY: the timing loops then add rounds, up to twice ``repeats``."""
    return any(spread(t) > NOISY for t in [*times.values(), floor_times])


def warm_up(dtypes):
    """Compile (or load from Numba's cache) fastbp's kernels for each dtype with a small
    fit and predict; returns seconds per dtype (this process, informational)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    out = {}
    for dt in dtypes:
        w = Workload("warm-up", "digits", (16, 16), "relu", "adam", 50, 2, dt)
        data = dict(X_train=(X[:300] / 16).astype(dt), y_train=y[:300], task="classification")
        t0 = time.perf_counter()
        peers.fit_fastbp(w, data, 2).predict(data["X_train"])
        data["y_train"] = y[:300].astype(dt)
        data["task"] = "regression"
        peers.fit_fastbp(w, data, 2).predict(data["X_train"])
        out[dt] = time.perf_counter() - t0
    return out


def check_scores(scores, dtype, losses=None):
    """Flags for scores (and fastbp/sklearn final losses) that disagree; returns
    (agree_sklearn, agree_torch, flags)."""
    flags = []
    for name, s in scores.items():
        if not np.isfinite(s):
            flags.append(f"{name} score is not finite")
    f, s = scores["fastbp"], scores["sklearn"]
    tol = TOL_SAME_MODEL[dtype]
    agree_sk = bool(np.isfinite(f) and np.isfinite(s) and abs(f - s) <= tol)
    if not agree_sk:
        flags.append(f"fastbp {f:.4f} vs sklearn {s:.4f} differ by more than {tol}")
    if losses is not None:
        lf, ls = losses["fastbp"], losses["sklearn"]
        rel = abs(lf - ls) / max(abs(ls), 1e-300)
        if not rel <= TOL_LOSS[dtype]:
            agree_sk = False
            flags.append(f"final loss fastbp {lf:.6g} vs sklearn {ls:.6g}: relative "
                         f"difference {rel:.1e} > {TOL_LOSS[dtype]}")
    agree_torch = None
    if "torch" in scores:
        t = scores["torch"]
        agree_torch = bool(agree_sk and np.isfinite(t) and abs(t - f) <= TOL_TORCH)
        if np.isfinite(t) and abs(t - f) > TOL_TORCH:
            flags.append(f"torch {t:.4f} vs fastbp {f:.4f} differ by more than {TOL_TORCH}")
    return agree_sk, agree_torch, flags


def _units(model, w, data):
    return [data["X_train"].shape[1], *w.hidden, int(model.n_outputs_)]


def run_workload(w, dtype, epochs, repeats, use_torch=True, progress=None):
    """Measure workload ``w`` at ``dtype`` for ``epochs`` epochs; returns a dict."""
    t_start = time.perf_counter()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    data = load(w.data, dtype)
    t_data = time.perf_counter() - t_start
    fits = peers.trainers(use_torch)
    n = len(data["X_train"])
    r = dict(name=w.name, dtype=dtype, epochs=epochs, repeats=repeats, data=w.data,
             source=data["source"], task=data["task"], n_train=n, n_test=len(data["X_test"]),
             n_features=data["X_train"].shape[1], hidden=list(w.hidden),
             activation=w.activation, solver=w.solver, batch_size=w.batch_size,
             learning_rate_init=w.learning_rate_init, alpha=w.alpha, trainers={})
    if "torch" in fits:
        r["torch_config"] = peers.torch_config(w, data)

    # 1. check: one fit each, scores on the held-out split
    scores = {}
    for name, fit in fits.items():
        if progress:
            progress(f"check {name}")
        t_check, model = peers.timed(lambda: fit(w, data, epochs))
        scores[name] = float(model.score(data["X_test"], data["y_test"]))
        r["trainers"][name] = dict(score=scores[name], final_loss=float(model.loss_),
                                   check_fit_s=t_check)
        if name == "fastbp":
            units = _units(model, w, data)
            fastbp_model = model
        if name == "sklearn":
            r["loss_rel_diff_fastbp_sklearn"] = abs(
                r["trainers"]["fastbp"]["final_loss"] - float(model.loss_)) / abs(float(model.loss_))
    r["units"] = units
    # one thread, or fastbp/_threads.py's two (the same decision as fit's)
    r["fastbp_threads"] = 1 if _threads.plan(data["X_train"], fastbp_model._layout,
                                             w.batch_size) is None else 2
    losses = {k: r["trainers"][k]["final_loss"] for k in ("fastbp", "sklearn")}
    r["agree_sklearn"], r["agree_torch"], r["flags"] = check_scores(scores, dtype, losses)

    # 2. time: interleaved rounds, best of each
    floor = make_floor(units, w.batch_size, np.dtype(dtype).type)
    floor(n)  # compiles for this depth
    times = {name: [] for name in fits}
    floor_times = []
    rep = 0
    while rep < repeats or (_noisy(times, floor_times) and rep < 2 * repeats):
        for name, fit in fits.items():
            if progress:
                progress(f"time {name} {rep + 1}/{repeats}{' (extra: noisy)' * (rep >= repeats)}")
            if rep == 0:
                rss, (t, _) = peers.rss_peak(lambda: peers.timed(lambda: fit(w, data, epochs)))
                r["trainers"][name]["rss_peak_mb"] = None if rss is None else rss / 2**20
            else:
                t, _ = peers.timed(lambda: fit(w, data, epochs))
            times[name].append(t / epochs)
        for _ in range(3):
            floor_times.append(peers.timed(lambda: floor(n))[0])
        rep += 1
    r["rounds"] = rep

    flops = epoch_flops(units, n)
    r["flops_per_epoch"] = flops
    r["floor"] = dict(s_per_epoch=min(floor_times), times=floor_times,
                      gflops=flops / min(floor_times) / 1e9)
    for name in fits:
        best = min(times[name])
        r["trainers"][name].update(s_per_epoch=best, times=times[name], gflops=flops / best / 1e9)
    fb = r["trainers"]["fastbp"]["s_per_epoch"]
    r["x_floor"] = fb / r["floor"]["s_per_epoch"]
    r["spread"] = dict({k: spread(times[k]) for k in fits}, floor=spread(floor_times))
    r["noisy"] = max(r["spread"].values()) > NOISY
    r["load_average_1min"] = load_avg
    # a speed-up is reported only where the two trainers' results agree
    r["speedup"] = {}
    for name, agree in (("sklearn", r["agree_sklearn"]), ("torch", r["agree_torch"])):
        if name in r["trainers"]:
            ratio = r["trainers"][name]["s_per_epoch"] / fb
            r["speedup"][name] = ratio if agree else None
            r.setdefault("ratio_unchecked", {})[name] = ratio
    # 3. where fastbp's time goes: its serial (non-BLAS) work, kind by kind
    if progress:
        progress("breakdown")
    parts = breakdown.measure(fastbp_model, data["X_train"],
                              breakdown.targets(fastbp_model, data["y_train"]), w.batch_size,
                              repeats)
    serial = sum(parts.values())
    floor_s = r["floor"]["s_per_epoch"]
    r["breakdown"] = dict(serial_s_per_epoch=parts, serial_total=serial,
                          other=fb - floor_s - serial, x_floor_serial=(floor_s + serial) / floor_s)
    r["wall_s"] = dict(data=t_data, total=time.perf_counter() - t_start)
    return r


# ---------------------------------------------------------------------------------------
# Scaling: s/epoch against rows and against width (fastbp, scikit-learn, the floor)
# ---------------------------------------------------------------------------------------

SCALE_NET = dict(hidden=(128, 128), activation="relu", solver="adam", batch_size=200)
SCALE_FEATURES = 32
ROWS = {"quick": [1_000, 10_000], "default": [1_000, 10_000, 100_000],
        "full": [1_000, 10_000, 100_000, 1_000_000]}
WIDTHS = {"quick": [32, 128], "default": [32, 64, 128, 256, 512],
          "full": [32, 64, 128, 256, 512, 1024]}
WIDTH_ROWS = 10_000


def _epochs_for(flops, target):
    """Enough epochs that one fit does about ``target`` flops (1 to 10)."""
    return int(max(1, min(10, target // flops)))


def scale_point(n_rows, hidden, dtype, repeats, target=2e10, progress=None):
    """One point of a sweep: the three timings and a fastbp/sklearn score check."""
    d = scaling_data(n_rows, SCALE_FEATURES)
    data = dict(d)
    data["X_train"] = np.ascontiguousarray(d["X_train"], dtype=dtype)
    data["X_test"] = np.ascontiguousarray(d["X_test"], dtype=dtype)
    units = [SCALE_FEATURES, *hidden, int(d["y_train"].max()) + 1]
    flops = epoch_flops(units, n_rows)
    epochs = _epochs_for(flops, target)
    w = Workload(f"scale-{n_rows}-{'x'.join(map(str, hidden))}", "scale", tuple(hidden),
                 SCALE_NET["activation"], SCALE_NET["solver"], SCALE_NET["batch_size"],
                 epochs, dtype)
    floor = make_floor(units, w.batch_size, np.dtype(dtype).type)
    floor(min(n_rows, 4 * w.batch_size))
    fits = {"fastbp": peers.fit_fastbp, "sklearn": peers.fit_sklearn}
    times = {k: [] for k in fits}
    floor_times = []
    scores, losses = {}, {}
    rep = 0
    while rep < repeats or (_noisy(times, floor_times) and rep < 2 * repeats):
        for name, fit in fits.items():
            if progress:
                progress(f"rows {n_rows} width {hidden[0]}: {name} {rep + 1}/{repeats}"
                         f"{' (extra: noisy)' * (rep >= repeats)}")
            t, model = peers.timed(lambda: fit(w, data, epochs))
            times[name].append(t / epochs)
            if rep == 0:  # first round: the results are checked (the JIT is warm already)
                scores[name] = float(model.score(data["X_test"], data["y_test"]))
                losses[name] = float(model.loss_)
            del model
        for _ in range(3):
            floor_times.append(peers.timed(lambda: floor(n_rows))[0])
        rep += 1
    agree, _, flags = check_scores(scores, dtype, losses)
    p = dict(n_rows=n_rows, hidden=list(hidden), units=units, epochs=epochs, dtype=dtype,
             rounds=rep,
             flops_per_epoch=flops, floor=min(floor_times),
             fastbp=min(times["fastbp"]), sklearn=min(times["sklearn"]),
             times=dict(times, floor=floor_times), scores=scores, final_losses=losses,
             agree=agree, flags=flags)
    p["spread"] = {k: spread(v) for k, v in p["times"].items()}
    p["noisy"] = max(p["spread"].values()) > NOISY
    p["x_floor"] = p["fastbp"] / p["floor"]
    p["speedup_sklearn"] = p["sklearn"] / p["fastbp"] if agree else None
    return p


def scaling(level, dtype, repeats, progress=None):
    target = {"quick": 2e9, "default": 1e10, "full": 2e10}[level]  # flops per timed fit
    done = {}  # (rows, hidden) -> point: the sweeps share one point, measured once

    def point(n, hidden):
        if (n, hidden) not in done:
            done[n, hidden] = scale_point(n, hidden, dtype, repeats, target, progress)
        return done[n, hidden]

    rows = [point(n, SCALE_NET["hidden"]) for n in ROWS[level]]
    widths = [point(WIDTH_ROWS, (h, h)) for h in WIDTHS[level]]
    return dict(dtype=dtype, features=SCALE_FEATURES, classes=10, **SCALE_NET,
                width_rows=WIDTH_ROWS, rows=rows, widths=widths)
