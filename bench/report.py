"""What a run prints and writes: the machine, the tables, the JSON file and the plots.

Every number shown comes from the results dict of this run; nothing is carried over from
an earlier run or typed in.
"""

import json
import os
import platform
import re

from bench.breakdown import KINDS

# ---------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------


def _cpuinfo():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None, []
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni")
    return (model.group(1).strip() if model else None,
            [f for f in (flags.group(1).split() if flags else []) if f in wanted])


def _mem_total_gb():
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", open("/proc/meminfo").read())
        return round(int(m.group(1)) / 2**20, 1)
    except (OSError, AttributeError):
        return None


def machine():
    model, flags = _cpuinfo()
    return dict(platform=platform.platform(), machine=platform.machine(),
                processor=platform.processor() or None, cpu_model=model, cpu_flags=flags,
                cpu_count=os.cpu_count(),
                cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                mem_total_gb=_mem_total_gb(), python=platform.python_version(),
                env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                     "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                     "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                     "NUMBA_CACHE_DIR")})


def _blas_owner(path):
    """Who calls this BLAS: numpy's copy serves scikit-learn's and torch-free NumPy
    products; scipy's serves numba's np.dot (scipy.linalg.cython_blas): fastbp, floor."""
    if "numpy" in path:
        return "numpy's: scikit-learn"
    if "scipy" in path:
        return "scipy's: numba np.dot, so fastbp and the floor"
    if "torch" in path:
        return "torch's"
    return None


def blas_line(pools, short=False):
    return "; ".join(blas_lines(pools, short))


def blas_lines(pools, short=False):
    parts = []
    for p in pools:
        if p["user_api"] != "blas":
            continue
        ver = ".".join(str(p.get("version")).split(".")[:3])
        s = f"{p['internal_api']} {ver} {p.get('architecture')} x{p['num_threads']}"
        if not short:
            owner = _blas_owner(p["filepath"])
            s += f" ({os.path.basename(p['filepath'])}{', ' + owner if owner else ''})"
        parts.append(s)
    return list(dict.fromkeys(parts))


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------


def _s(x):
    return "-" if x is None else f"{x:.3g}"


def _x(x, present=True):
    if not present:
        return "-"
    return "FLAG" if x is None else f"{x:.2f}x"


def _score(r, name):
    t = r["trainers"].get(name)
    return "-" if t is None else f"{t['score']:.4f}"


SPEED_COLS = [("workload", 27, "<"), ("dtype", 8, "<"), ("thr", 4, ">"), ("floor s/ep", 11, ">"),
              ("fastbp s/ep", 12, ">"), ("sklearn s/ep", 13, ">"), ("torch s/ep", 11, ">"),
              ("x floor", 8, ">"), ("vs sklearn", 11, ">"), ("vs torch", 9, ">"),
              ("GFLOP/s", 8, ">"), ("score fastbp", 13, ">"), ("sklearn", 8, ">"),
              ("torch", 8, ">"), ("  check", 8, "<")]


def _row(cols, values):
    return "".join(f"{v:{a}{w}}" for (_, w, a), v in zip(cols, values))


def speed_header():
    h = _row(SPEED_COLS, [c[0] for c in SPEED_COLS])
    return h + "\n" + "-" * len(h)


def speed_row(r):
    t = r["trainers"]
    sp = r["speedup"]
    return _row(SPEED_COLS, [
        r["name"], r["dtype"], str(r.get("fastbp_threads", 1)), _s(r["floor"]["s_per_epoch"]),
        _s(t["fastbp"]["s_per_epoch"]),
        _s(t["sklearn"]["s_per_epoch"]),
        _s(t["torch"]["s_per_epoch"]) if "torch" in t else "-",
        f"{r['x_floor']:.2f}", _x(sp.get("sklearn"), "sklearn" in sp),
        _x(sp.get("torch"), "torch" in sp), f"{t['fastbp']['gflops']:.1f}",
        _score(r, "fastbp"), _score(r, "sklearn"), _score(r, "torch"),
        "  FLAG" if r["flags"] else "  noisy" if r.get("noisy") else "  ok"])


MEM_COLS = [("workload", 27, "<"), ("dtype", 8, "<"), ("rows", 8, ">"), ("layers", 20, ">"),
            ("metric", 7, ">"), ("peak RSS+ MB fastbp", 20, ">"), ("sklearn", 8, ">"),
            ("torch", 8, ">"), ("check fit s fastbp", 19, ">"), ("sklearn", 8, ">"),
            ("torch", 8, ">"),
            ("loss rel diff", 14, ">")]


def _mb(t, key):
    return "-" if t is None or t.get(key) is None else f"{t[key]:.1f}"


def memory_table(results):
    lines = [_row(MEM_COLS, [c[0] for c in MEM_COLS])]
    lines.append("-" * len(lines[0]))
    for r in results:
        t = r["trainers"]
        lines.append(_row(MEM_COLS, [
            r["name"], r["dtype"], str(r["n_train"]), "-".join(map(str, r["units"])),
            "acc" if r["task"] == "classification" else "R2",
            _mb(t["fastbp"], "rss_peak_mb"), _mb(t["sklearn"], "rss_peak_mb"),
            _mb(t.get("torch"), "rss_peak_mb"), _s(t["fastbp"]["check_fit_s"]),
            _s(t["sklearn"]["check_fit_s"]), _s(t["torch"]["check_fit_s"]) if "torch" in t else "-", f"{r['loss_rel_diff_fastbp_sklearn']:.1e}"]))
    return "\n".join(lines)


BREAKDOWN_COLS = [("workload", 31, "<"), ("dtype", 8, "<"), ("floor", 8, ">"),
                  ("gather", 8, ">"), ("activ.", 8, ">"), ("loss", 7, ">"),
                  ("backward", 9, ">"), ("penalty", 8, ">"), ("update", 8, ">"),
                  ("serial", 8, ">"), ("other", 8, ">"), ("fastbp", 8, ">"),
                  ("x floor", 8, ">"), ("if serial only", 15, ">")]


def breakdown_table(results):
    """ms per epoch: the floor, fastbp's serial work by kind, the rest, fastbp's total.
    For a workload fastbp runs on two threads (fastbp/_threads.py) the parts are the
    one-thread epoch's, and "other" and "if serial only" do not apply ("-")."""
    lines = [_row(BREAKDOWN_COLS, [c[0] for c in BREAKDOWN_COLS])]
    lines.append("-" * len(lines[0]))
    for r in results:
        b = r.get("breakdown")
        if b is None:
            continue
        ms = [1e3 * b["serial_s_per_epoch"][k] for k in KINDS]
        one = r.get("fastbp_threads", 1) == 1
        lines.append(_row(BREAKDOWN_COLS, [
            r["name"] if one else r["name"] + " (2)", r["dtype"],
            _s(1e3 * r["floor"]["s_per_epoch"]), *map(_s, ms),
            _s(1e3 * b["serial_total"]), _s(1e3 * b["other"]) if one else "-",
            _s(1e3 * r["trainers"]["fastbp"]["s_per_epoch"]), f"{r['x_floor']:.2f}",
            f"{b['x_floor_serial']:.2f}" if one else "-"]))
    return "\n".join(lines)


def jit_table(j):
    lines = [f"{'':<40}{'import':>8}{'1st f64':>10}{'1st f32':>10}"
             f"{'2nd f64':>10}{'process wall':>13}"]
    rows = [("fastbp, cold (empty Numba cache)", j.get("fastbp_cold")),
            ("fastbp, first process after pip install", j.get("fastbp_installed")),
            ("fastbp, warm cache (best of N)", j.get("fastbp_warm")),
            ("scikit-learn (best of N)", j.get("sklearn"))]
    for label, r in rows:
        if r is None:
            lines.append(f"{label:<40}{'skipped':>8}")
            continue
        lines.append(f"{label:<40}{r['import_s']:>7.2f}s{r['first_fit_float64_s']:>9.3f}s"
                     f"{r['first_fit_float32_s']:>9.3f}s{r['second_fit_float64_s']:>9.3f}s"
                     f"{r['process_wall_s']:>12.2f}s")
    if j.get("fastbp_cold") and j["fastbp_cold"].get("cache_bytes") is not None:
        lines.append(f"(the cold run wrote {j['fastbp_cold']['cache_bytes'] / 2**20:.1f} MB "
                     "of Numba cache)")
    if j.get("fastbp_installed_error"):
        lines.append("(pip install . failed: " + j["fastbp_installed_error"] + ")")
    inst, warm, skl = j.get("fastbp_installed"), j.get("fastbp_warm"), j.get("sklearn")
    if inst:
        first = inst["import_s"] + inst["first_fit_float64_s"]
        lines.append(f"after pip install . ({inst['install_s']:.0f} s, venv and install): "
                     f"import + first fit in one dtype {first:.2f} s (target <= 3 s), "
                     f"the second dtype {inst['first_fit_float32_s']:.2f} s more (<= 3 s)")
    if warm and skl:
        lines.append(f"warm first fit {warm['first_fit_float64_s']:.3f} s against "
                     f"scikit-learn's {skl['first_fit_float64_s']:.3f} s (target: at most "
                     f"{skl['first_fit_float64_s'] + 0.1:.3f} s)")
    return "\n".join(lines)


def scaling_table(s):
    out = []
    for key, label in (("rows", "rows"), ("widths", "width")):
        cols = [(label, 10, ">"), ("epochs", 7, ">"), ("floor s/ep", 11, ">"),
                ("fastbp s/ep", 12, ">"), ("sklearn s/ep", 13, ">"), ("x floor", 8, ">"),
                ("vs sklearn", 11, ">"), ("GFLOP/s", 8, ">"), ("acc f/s", 16, ">"),
                ("", 7, ">")]
        out.append(_row(cols, [c[0] for c in cols]))
        out.append("-" * len(out[-1]))
        for p in s[key]:
            x = p["n_rows"] if key == "rows" else p["hidden"][0]
            sc = p["scores"]
            out.append(_row(cols, [
                str(x), str(p["epochs"]), _s(p["floor"]), _s(p["fastbp"]), _s(p["sklearn"]),
                f"{p['x_floor']:.2f}", _x(p["speedup_sklearn"]),
                f"{p['flops_per_epoch'] / p['fastbp'] / 1e9:.1f}",
                f"{sc['fastbp']:.3f}/{sc['sklearn']:.3f}",
                "FLAG" if p["flags"] else "noisy" if p.get("noisy") else ""]))
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------


def write_json(path, run):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(run, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


# ---------------------------------------------------------------------------------------
# Plots (matplotlib, Agg)
# ---------------------------------------------------------------------------------------


def _save(plt, fig, outdir, name, suptitle):
    """Title, lay out, write ``outdir/name`` and close the figure; returns the path."""
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    path = os.path.join(outdir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(run, outdir):
    """Write speedup.png, scaling.png, jit.png and inference.png (those with data); returns the paths
    (none when matplotlib is not installed)."""
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    paths = []
    title = (f"{run['machine']['cpu_model']}, {run['machine']['cpu_count']} cpus, "
             f"{blas_line(run['blas'], short=True)}, {run['started']}")

    res = run.get("workloads") or []
    if res:
        labels = [f"{r['name']} (f{r['dtype'][5:]}){' [noisy]' if r.get('noisy') else ''}"
                  for r in res]
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 0.45 * len(res) + 2.2),
                                       sharey=True, gridspec_kw=dict(width_ratios=[3, 2]))
        y = list(range(len(res)))
        peers = [p for p in ("sklearn", "torch") if any(p in r["speedup"] for r in res)]
        h = 0.8 / max(1, len(peers))
        colors = {"sklearn": "tab:orange", "torch": "tab:red"}
        for k, peer in enumerate(peers):
            ys = [i - 0.4 + h * (k + 0.5) for i in y]
            vals = [r["speedup"].get(peer) for r in res]
            ax0.barh(ys, [v or 0 for v in vals], height=h, color=colors[peer],
                     label=f"vs {'scikit-learn' if peer == 'sklearn' else 'PyTorch'}")
            for yy, v, r in zip(ys, vals, res):
                if peer not in r["speedup"]:
                    continue
                ax0.text(v or 0.02, yy, " FLAGGED: scores differ" if v is None else f" {v:.1f}x",
                         va="center", fontsize=8)
        ax0.axvline(1.0, color="k", lw=0.8)
        ax0.set_xlabel("fastbp speed-up: peer s/epoch ÷ fastbp s/epoch\n(>1: fastbp faster)")
        ax0.set_yticks(y, labels)
        ax0.invert_yaxis()
        ax0.legend(loc="lower right", fontsize=8)
        xmax = max([v for r in res for v in r["speedup"].values() if v] + [1.0])
        ax0.set_xlim(0, xmax * 1.25)
        xf = [r["x_floor"] for r in res]
        ax1.barh(y, xf, color=["tab:blue" if v <= 1.3 else "tab:purple" for v in xf])
        for yy, v in zip(y, xf):
            ax1.text(v, yy, f" {v:.2f}", va="center", fontsize=8)
        ax1.axvline(1.0, color="k", lw=0.8)
        ax1.axvline(1.3, color="grey", lw=0.8, ls="--")
        ax1.set_xlim(0, max(xf) * 1.2)
        ax1.set_xlabel("x floor: fastbp s/epoch ÷ floor s/epoch\n(1 = the BLAS products alone; dashed: 1.3)")
        paths.append(_save(plt, fig, outdir, "speedup.png",
                           f"python -m bench: best of {res[0]['repeats']}  |  {title}"))

    s = run.get("scaling")
    if s:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
        for ax, key, xlabel in ((axes[0], "rows", "training rows"),
                                (axes[1], "widths", f"hidden width (2 layers, {s['width_rows']} rows)")):
            pts = s[key]
            xs = [p["n_rows"] if key == "rows" else p["hidden"][0] for p in pts]
            for name, style in (("floor", "k--"), ("fastbp", "o-"), ("sklearn", "s-")):
                ax.plot(xs, [p[name] for p in pts], style, label=name)
            for x, p in zip(xs, pts):
                ax.annotate(f"{p['x_floor']:.2f}x floor", (x, p["fastbp"]), fontsize=7,
                            textcoords="offset points", xytext=(-6, 7))
            ax.set_xscale("log", base=10 if key == "rows" else 2)
            ax.set_yscale("log")
            ax.set_xticks(xs, [f"{x:,}" for x in xs])
            ax.minorticks_off()
            ax.set_xlabel(xlabel)
            ax.set_ylabel("seconds per epoch (best of N)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        hid = "x".join(map(str, s["hidden"]))
        axes[0].set_title(f"s/epoch vs rows: {s['features']} features, hidden {hid}, "
                          f"{s['activation']}, {s['solver']}, batch {s['batch_size']}", fontsize=9)
        axes[1].set_title(f"s/epoch vs width: hidden (w, w), {s['activation']}, {s['solver']}, "
                          f"batch {s['batch_size']}", fontsize=9)
        paths.append(_save(plt, fig, outdir, "scaling.png", f"scaling, {s['dtype']}  |  {title}"))

    j = run.get("jit")
    if j:
        rows = [(lbl, j[k]) for lbl, k in (("fastbp cold\n(empty cache)", "fastbp_cold"),
                                           ("fastbp after\npip install .", "fastbp_installed"),
                                           ("fastbp warm\ncache", "fastbp_warm"),
                                           ("scikit-learn", "sklearn")) if j.get(k)]
        fig, ax = plt.subplots(figsize=(9, 0.8 * len(rows) + 1.6))
        parts = (("import_s", "import", "tab:gray"),
                 ("first_fit_float64_s", "first fit + predict, float64", "tab:blue"),
                 ("first_fit_float32_s", "first fit + predict, float32", "tab:cyan"))
        left = [0.0] * len(rows)
        for key, lbl, c in parts:
            vals = [r[key] for _, r in rows]
            ax.barh(range(len(rows)), vals, left=left, color=c, label=lbl)
            left = [a + b for a, b in zip(left, vals)]
        for i, v in enumerate(left):
            ax.text(v, i, f" {v:.2f} s", va="center", fontsize=8)
        ax.set_yticks(range(len(rows)), [lbl for lbl, _ in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, max(left) * 1.15)
        ax.set_xlabel("seconds in a fresh process (import + first fits), " + j["fit"])
        ax.legend(fontsize=8, loc="lower right")
        paths.append(_save(plt, fig, outdir, "jit.png", f"time to first fit\n{title}"))

    inf = run.get("inference")
    if inf and inf.get("points"):
        from bench import inference

        paths.append(_save(plt, inference.plot(plt, inf), outdir, "inference.png",
                           f"predict_proba per call  |  {title}"))
    return paths


if __name__ == "__main__":  # python -m bench.report RESULTS.json [DIR]: redraw the plots
    import sys

    with open(sys.argv[1]) as f:
        saved = json.load(f)
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(sys.argv[1]))
    print("\n".join(plots(saved, out)))
