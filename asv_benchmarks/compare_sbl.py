"""Sparse Bayesian learning: sparseopt against its anchors, in one process.

Runs the issue's problems through sparseopt and the reference implementations
and writes ``docs/benchmarks_sbl.md``:

1. Recovery, n=200, p=1000, k=20, 20 dB (unit-norm Gaussian atoms,
   amplitudes ±U[0.5, 1.5]): sparseopt fast (Tipping–Faul) and EM-SBL against
   scikit-learn ``ARDRegression`` (defaults) and fastrvm (C++ Tipping–Faul,
   if installed).  Time ratios are per seed against ARD in the same run.
2. Peak memory (tracemalloc) as p grows, n=200: sparseopt fast against ARD.
3. Kronecker SBL, IRS-MIMO-style: three 8×12 factors (p=1728, m=512),
   x = x₁⊗x₂⊗x₃ with 3 nonzeros per factor, 20 dB, known noise: SVD-KroSBL,
   AM-KroSBL and classic EM-SBL on the explicit product.
4. Relevance vector classification on the breast-cancer data.

Every solver runs single-threaded BLAS (threadpoolctl), as in the research
note.  Usage: ``python asv_benchmarks/compare_sbl.py [--quick]``.
"""

import argparse
import os
import platform
import time
import tracemalloc
import warnings
from functools import reduce
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ARDRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sparseopt.bayes import RelevanceVectorClassifier, kronecker_sbl, sbl_regression

try:
    import fastrvm._sparsebayes_bindings as fastrvm_core
except ImportError:  # pragma: no cover - optional anchor
    fastrvm_core = None

ROOT = Path(__file__).resolve().parents[1]


def recovery_problem(seed, n=200, p=1000, k=20, snr_db=20.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X /= np.linalg.norm(X, axis=0)
    w = np.zeros(p)
    support = np.sort(rng.choice(p, k, replace=False))
    w[support] = rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 1.5, k)
    signal = X @ w
    sigma = np.linalg.norm(signal) / np.sqrt(n) * 10 ** (-snr_db / 20)
    return X, signal + sigma * rng.standard_normal(n), w, support, sigma


def kron_problem(seed, N=12, M=8, K=3, snr_db=20.0):
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal((M, N)) / np.sqrt(M) for _ in range(3)]
    xs = []
    for _ in range(3):
        x = np.zeros(N)
        x[rng.choice(N, K, replace=False)] = rng.standard_normal(K)
        xs.append(x)
    x = reduce(np.kron, xs)
    signal = reduce(np.kron, factors) @ x
    s2 = np.mean(signal**2) * 10 ** (-snr_db / 10)
    return factors, signal + np.sqrt(s2) * rng.standard_normal(signal.size), x, s2


def nmse_db(w_hat, w):
    return 10 * np.log10(np.sum((w_hat - w) ** 2) / np.sum(w**2))


def timed(fn, repeat=1):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def peak_mb(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


# ---------------------------------------------------------------------------
def fastrvm_fit(X, y, noise_std=None):
    sb = fastrvm_core.SparseBayes(iterations=10000, fixed_noise=noise_std is not None,
                                  noise_std=noise_std)
    out = sb.inference(np.asfortranarray(X), y)
    w = np.zeros(X.shape[1])
    w[np.asarray(out["relevant_idx"], dtype=int)] = out["mean"]
    return w


def recovery_table(seeds, repeat):
    methods = {
        "sparseopt fast (learned noise)":
            lambda X, y, s: sbl_regression(X, y, solver="fast").x,
        "sparseopt fast (known noise)":
            lambda X, y, s: sbl_regression(X, y, solver="fast", noise_variance=s**2).x,
        "sparseopt EM-SBL (learned noise)":
            lambda X, y, s: sbl_regression(X, y, solver="em").x,
        "scikit-learn ARDRegression":
            lambda X, y, s: ARDRegression(fit_intercept=False).fit(X, y).coef_,
    }
    if fastrvm_core is not None:
        methods["fastrvm (C++, learned noise)"] = lambda X, y, s: fastrvm_fit(X, y)
        methods["fastrvm (C++, known noise)"] = lambda X, y, s: fastrvm_fit(X, y, s)
    X, y, _, _, s = recovery_problem(0)
    for fn in methods.values():   # warm-up: JIT and imports
        fn(X, y, s)
    rows = {m: {"t": [], "nmse": [], "topk": 0, "n_large": []} for m in methods}
    for seed in seeds:
        X, y, w, support, s = recovery_problem(seed)
        for m, fn in methods.items():
            w_hat, t = timed(lambda fn=fn, X=X, y=y, s=s: fn(X, y, s), repeat)
            r = rows[m]
            r["t"].append(t)
            r["nmse"].append(nmse_db(w_hat, w))
            r["topk"] += np.array_equal(np.sort(np.argsort(-np.abs(w_hat))[:20]), support)
            r["n_large"].append(int(np.sum(np.abs(w_hat) > 1e-3 * np.abs(w_hat).max())))
    t_ard = np.array(rows["scikit-learn ARDRegression"]["t"])
    lines = [
        "| method | median time (s) | ARD time / method time (median over seeds) | "
        "median NMSE (dB) | support = top-20 | median #|ŵ|>1e-3·max |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in rows.items():
        ratio = float(np.median(t_ard / np.array(r["t"])))
        lines.append(
            f"| {m} | {np.median(r['t']):.3f} | {ratio:.2f}× | {np.median(r['nmse']):.1f} "
            f"| {r['topk']}/{len(seeds)} | {int(np.median(r['n_large']))} |")
    return "\n".join(lines), rows


def memory_table(ps_ours, ps_ard):
    lines = ["| p | sparseopt fast: peak MB | time (s) | ARDRegression: peak MB | time (s) |",
             "|---|---|---|---|---|"]
    for p in sorted(set(ps_ours) | set(ps_ard)):
        X, y, _, _, _ = recovery_problem(1, p=p)
        cells = []
        if p in ps_ours:
            mb = peak_mb(lambda X=X, y=y: sbl_regression(X, y))
            _, t = timed(lambda X=X, y=y: sbl_regression(X, y))
            cells += [f"{mb:.0f}", f"{t:.2f}"]
        else:
            cells += ["–", "–"]
        if p in ps_ard:
            mb = peak_mb(lambda X=X, y=y: ARDRegression(fit_intercept=False).fit(X, y))
            _, t = timed(lambda X=X, y=y: ARDRegression(fit_intercept=False).fit(X, y))
            cells += [f"{mb:.0f}", f"{t:.2f}"]
        else:
            cells += [f"not run (Σ alone: {p * p * 8 / 2**20:.0f} MB)", "–"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kron_table(seeds):
    methods = ("svd", "am", "classic")
    res = {m: {"t": [], "nmse": [], "it": []} for m in methods}
    fs, y, _, s2 = kron_problem(0, N=6, M=4)
    for m in methods:
        kronecker_sbl(y, fs, method=m, noise_variance=s2)
    for seed in seeds:
        fs, y, x, s2 = kron_problem(seed)
        for m in methods:
            r, t = timed(lambda m=m, fs=fs, y=y, s2=s2: kronecker_sbl(
                y, fs, method=m, noise_variance=s2))
            res[m]["t"].append(t)
            res[m]["nmse"].append(nmse_db(r.x, x))
            res[m]["it"].append(r.n_iter)
    t_classic = np.array(res["classic"]["t"])
    lines = ["| method | median time (s) | classic time / method time | median NMSE (dB) "
             "| mean NMSE (dB) | median iterations |", "|---|---|---|---|---|---|"]
    names = {"svd": "SVD-KroSBL", "am": "AM-KroSBL",
             "classic": "classic EM-SBL on the explicit 512×1728 product"}
    for m in methods:
        r = res[m]
        ratio = float(np.median(t_classic / np.array(r["t"])))
        lines.append(f"| {names[m]} | {np.median(r['t']):.3f} | {ratio:.1f}× | "
                     f"{np.median(r['nmse']):.1f} | {np.mean(r['nmse']):.1f} | "
                     f"{int(np.median(r['it']))} |")
    return "\n".join(lines), res


def rvc_table(repeat):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rows = []
    clf, t = timed(lambda: RelevanceVectorClassifier().fit(X, y), repeat)
    clf, t = timed(lambda: RelevanceVectorClassifier().fit(X, y), repeat)
    rows.append(("sparseopt RelevanceVectorClassifier (linear basis)", t, clf.score(X, y),
                 clf.active_[0].size))
    lr, t = timed(lambda: LogisticRegression(max_iter=1000).fit(X, y), repeat)
    rows.append(("scikit-learn LogisticRegression (L2, dense)", t, lr.score(X, y), 30))
    if fastrvm_core is not None:
        def fit_fastrvm():
            sb = fastrvm_core.SparseBayes(likelihood=fastrvm_core.Likelihood.Bernoulli,
                                          iterations=1000, use_bias=True)
            return sb.inference(np.asfortranarray(X), y.astype(float))
        out, t = timed(fit_fastrvm, repeat)
        idx = np.asarray(out["relevant_idx"], dtype=int)
        w = np.zeros(X.shape[1] + 1)
        w[idx] = out["mean"]
        Xb = np.hstack([X, np.ones((X.shape[0], 1))]) if w.size > X.shape[1] else X
        acc = np.mean(((Xb[:, : w.size] @ w) > 0) == y)
        rows.append(("fastrvm Bernoulli (C++)", t, acc, int(np.sum(idx < X.shape[1]))))
    lines = ["| method | time (s) | training accuracy | features used |",
             "|---|---|---|---|"]
    lines += [f"| {m} | {t:.3f} | {acc:.3f} | {k} |" for m, t, acc, k in rows]
    return "\n".join(lines)


def make_plots(path):
    """Recovery by the fast solver and ARD, and the fast solver's evidence trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y, w, support, s = recovery_problem(0)
    learned = sbl_regression(X, y)
    known = sbl_regression(X, y, noise_variance=s**2)
    ard = ARDRegression(fit_intercept=False).fit(X, y)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    idx = np.arange(w.size)
    ax0.plot(idx, ard.coef_, ".", ms=3, color="0.6", label="ARDRegression")
    ax0.plot(idx, known.x, ".", ms=3, color="C0", label="sparseopt fast, known σ²")
    ax0.plot(support, w[support], "o", mfc="none", color="C3", label="truth")
    ax0.set_xlabel("coefficient")
    ax0.set_title("n=200, p=1000, k=20, 20 dB", fontsize=10)
    ax0.legend(fontsize=7, loc="lower right")
    lows, highs = [], []
    for res, lab in ((learned, "learned σ²"), (known, "known σ²")):
        h = res.history["log_marginal_likelihood"]
        ax1.plot(np.arange(1, h.size + 1), h, label=f"{lab}: {res.active.size} active")
        lows.append(h[min(40, h.size - 1)])
        highs.append(h.max())
    pad = 0.05 * (max(highs) - min(lows))
    ax1.set_ylim(min(lows) - pad, max(highs) + pad)
    ax1.set_xlabel("action (add / re-estimate / delete)")
    ax1.set_ylabel("log evidence")
    ax1.set_title("fast marginal likelihood: evidence trace", fontsize=10)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer seeds and sizes")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks_sbl.md"))
    ap.add_argument("--plots-only", action="store_true",
                    help="only write docs/img/sbl_recovery.png")
    args = ap.parse_args()
    plot_path = ROOT / "docs" / "img" / "sbl_recovery.png"
    if args.plots_only:
        with threadpool_limits(limits=1, user_api="blas"):
            make_plots(plot_path)
        print(f"wrote {plot_path}")
        return
    seeds = range(3) if args.quick else range(5)
    warnings.simplefilter("ignore", ConvergenceWarning)
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        rec, _ = recovery_table(seeds, repeat=1 if args.quick else 3)
        print(rec, flush=True)
        mem = memory_table([1000, 4000, 20000], [1000, 2000, 4000])
        print(mem, flush=True)
        kron, _ = kron_table(seeds)
        print(kron, flush=True)
        rvc = rvc_table(repeat=3)
        print(rvc, flush=True)
        total = time.perf_counter() - t0
        make_plots(plot_path)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = f"""# Sparse Bayesian learning: benchmarks

Written by `asv_benchmarks/compare_sbl.py` ({total:.0f} s), on
{platform.processor() or platform.machine()}, `os.cpu_count()` = {os.cpu_count()},
1-minute load average at the end {load:.1f}, single-threaded BLAS for every
solver.  The machine is shared with other jobs: read the ratios (measured
seed by seed in the same process), not the absolute times.  The issue quotes
ARDRegression at 0.17 s, fastrvm at 0.09 s and numpy EM-SBL at 0.19 s on an
idle machine.

## 1. Recovery: n=200, p=1000, k=20, 20 dB

Unit-norm Gaussian atoms, amplitudes ±U[0.5, 1.5]; {len(seeds)} seeds; times
are the median of {1 if args.quick else 3} runs per seed.  "support = top-20":
the 20 largest |ŵ| are the true atoms.  Targets of the issue: at least 2×
faster than ARDRegression at equal or better NMSE.

{rec}

![recovery and evidence trace](img/sbl_recovery.png)

With a learned noise level all SBL solvers let σ² collapse when p ≫ n (to
about 1e-4 of the true value, as in the research note), which keeps
100–150 tiny coefficients; with the known noise level the fast solver keeps
a few dozen and gains 3–4 dB.

## 2. Memory as p grows (n=200)

Peak traced memory (tracemalloc: NumPy allocations) of one fit.  The fast
solver stores ``Φᵀ Φ_active`` (p × m) and never a p × p matrix; ARD's first
iteration builds the full p × p posterior covariance (3.2 GB at p=20000,
which is not run here).

{mem}

## 3. Kronecker SBL (He & Joseph), IRS-MIMO-style

Three factors of 8 × 12 (p=1728, m=512), x = x₁⊗x₂⊗x₃ with 3 nonzeros per
factor, 20 dB, known noise, the reference code's stopping (relative change of
γ < 1e-4) and pruning rules.  Targets of the issue: SVD variant within 1 dB
of classic SBL (median NMSE) or better, and at least 4× faster.

{kron}

## 4. Relevance vector classification (breast cancer, 569 × 30, standardised)

{rvc}
"""
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
