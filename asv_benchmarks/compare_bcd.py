"""Reproduce the BCD paper's findings and time sparseopt.bcd against its anchors.

Run from the repository root::

    .venv/bin/python asv_benchmarks/compare_bcd.py [--quick]

Part 1 follows Nutini, Laradji & Schmidt (JMLR 2022), Figs. 4-7, in progress
per iteration (what the paper plots), on smaller instances than the paper's:
greedy vs cyclic/random rules, variable-block GSQ vs fixed blocks, forest blocks
with message passing on label propagation (50x50 lattice and a two-moons kNN
graph), and active-set identification with superlinear convergence on a
non-negative L1 least-squares problem.  Part 2 times the heap-based greedy
coordinate path against the general O(p) loop as p grows, and the solvers
against scipy / scikit-learn on the same objectives (median of several runs,
ratios from the same process).  Writes docs/benchmarks_bcd.md and
docs/img/bcd_*.png.
"""

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize as sp_minimize
from scipy.sparse.linalg import spsolve
from scipy.special import expit, log_expit

from sparseopt import bcd

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
warnings.filterwarnings("ignore")


def median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def paper_ls(n, p, density, seed):
    """Dataset A in miniature: sparse columns with random scaling.

    Every column gets ``max(1, round(density * n))`` non-zeros at random rows.
    """
    rng = np.random.default_rng(seed)
    k = max(1, round(density * n))
    rows = rng.integers(0, n, (p, k)).ravel()
    cols = np.repeat(np.arange(p), k)
    A = sp.coo_array((rng.standard_normal(p * k), (rows, cols)), shape=(n, p))
    A = sp.csr_array(A @ sp.diags_array(rng.uniform(0, 10, p) ** 1.5 + 0.1))
    A.sum_duplicates()
    # int32 indices, as scipy would choose (scikit-learn rejects int64 ones)
    A.indices = A.indices.astype(np.int32)
    A.indptr = A.indptr.astype(np.int32)
    b = A @ rng.standard_normal(p) + rng.standard_normal(n)
    return A, b


def lattice(m):
    idx = np.arange(m * m).reshape(m, m)
    r = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    c = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    W = sp.coo_array((np.ones(len(r)), (r, c)), shape=(m * m, m * m))
    return sp.csr_array(W + W.T)


def moons_knn(n, k, seed):
    from sklearn.datasets import make_moons
    from sklearn.neighbors import kneighbors_graph

    X, y = make_moons(n, noise=0.08, random_state=seed)
    G = kneighbors_graph(X, k, mode="distance")
    sigma = np.median(G.data)
    G.data = np.exp(-(G.data / sigma) ** 2)
    W = sp.csr_array(G.maximum(G.T))
    return W, y


def run(prob, **kw):
    return bcd.minimize(prob, tol=0, **kw)


def subopt_plot(ax, curves, fstar, title, xlabel="iteration"):
    scale = max(1.0, abs(fstar))
    for name, obj in curves.items():
        gap = np.maximum((np.asarray(obj) - fstar) / scale, 1e-16)
        ax.semilogy(gap, label=name, lw=1.2)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("(F - F*) / |F*|", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)


# ------------------------------------------------------------------ part 1
def fig_rules(n_iter, out):
    """Fig. 4: selection rules with Lipschitz updates on fixed blocks of 5."""
    A, b = paper_ls(2000, 1000, 0.02, 0)
    fstar = 0.5 * np.sum((A @ np.linalg.lstsq(A.toarray(), b, rcond=None)[0] - b) ** 2)
    ls = bcd.least_squares(A, b)
    ylog = (b > np.median(b)).astype(int)
    lg = bcd.logistic(A, ylog, l2=1.0)
    ypm = np.where(ylog == 1, 1.0, -1.0)

    def fg(x):
        m = ypm * (A @ x)
        return -log_expit(m).sum() + 0.5 * x @ x, A.T @ (-ypm * expit(-m)) + x

    r = sp_minimize(fg, np.zeros(1000), jac=True, method="L-BFGS-B",
                    options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12})
    fstar_lg = min(float(r.fun), run(lg, partition="variable", block_size=50,
                                     rule="gsq", update="newton",
                                     max_iter=3000).objective[-1])
    rules = ["cyclic", "random", "lipschitz", "gs", "gsl", "gsd", "gsq"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    rows = []
    for ax, (name, prob, fs) in zip(axes, [("least squares", ls, fstar),
                                           ("logistic (l2=1)", lg, fstar_lg)], strict=True):
        curves = {}
        for rule in rules:
            res = run(prob, partition="sort", block_size=5, rule=rule,
                      update="lipschitz", max_iter=n_iter, random_state=0)
            curves[rule.upper()] = res.objective
            rows.append((name, rule.upper(), (res.objective[-1] - fs) / abs(fs)))
        subopt_plot(ax, curves, fs, f"{name}: fixed blocks of 5, Lipschitz update")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return rows


def fig_variable(n_iter, out):
    """Fig. 5: matrix updates; GSQ (IHT) on variable blocks vs fixed blocks."""
    A, b = paper_ls(2000, 1000, 0.02, 1)
    fstar = 0.5 * np.sum((A @ np.linalg.lstsq(A.toarray(), b, rcond=None)[0] - b) ** 2)
    prob = bcd.least_squares(A, b)
    curves, rows = {}, []
    for part in ("sort", "variable"):
        for rule in ("gs", "gsl", "gsd", "gsq"):
            res = run(prob, partition=part, block_size=5, rule=rule, update="matrix",
                      max_iter=n_iter, random_state=0)
            label = f"{rule.upper()}-{'VB' if part == 'variable' else 'FB'}"
            curves[label] = res.objective
            rows.append((label, (res.objective[-1] - fstar) / fstar))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    subopt_plot(ax, curves, fstar, "least squares: matrix updates, blocks of 5")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return rows


def fig_message_passing(n_iter, out):
    """Fig. 6: forest blocks with message passing on label propagation."""
    rng = np.random.default_rng(0)
    Wl = lattice(50)
    lab_l = -np.ones(2500, dtype=np.int64)
    idx = rng.choice(2500, 100, replace=False)
    lab_l[idx] = (idx % 50 < 25).astype(np.int64)
    Wk, yk = moons_knn(2000, 10, 0)
    lab_k = -np.ones(2000, dtype=np.int64)
    idx = rng.choice(2000, 100, replace=False)
    lab_k[idx] = yk[idx]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    rows = []
    for ax, (name, W, lab) in zip(axes, [("50x50 lattice", Wl, lab_l),
                                         ("two-moons kNN (k=10)", Wk, lab_k)], strict=True):
        prob = bcd.label_propagation(W, lab, reg=1e-3)
        xs = spsolve(sp.csc_matrix(prob.Q), prob.c)
        fstar = 0.5 * xs @ (prob.Q @ xs) - prob.c @ xs + prob.const
        configs = [
            ("GSQ, blocks of 5, matrix", dict(partition="variable", block_size=5,
                                              rule="gsq", update="matrix")),
            ("GSL, blocks of 5, matrix", dict(partition="sort", block_size=5,
                                              rule="gsl", update="matrix")),
            ("red-black, cyclic, MP", dict(partition="red-black", rule="cyclic",
                                           update="message-passing")),
            ("red-black, GSL, MP", dict(partition="red-black", rule="gsl",
                                        update="message-passing")),
            ("tree partition, GSQ, MP", dict(partition="tree", rule="gsq",
                                             update="message-passing")),
            ("greedy tree, GSL, MP", dict(partition="greedy-tree", rule="gsl",
                                          update="message-passing")),
        ]
        curves = {}
        for label, kw in configs:
            t0 = time.perf_counter()
            res = run(prob, max_iter=n_iter, **kw)
            curves[label] = res.objective
            rows.append((name, label, (res.objective[-1] - fstar) / abs(fstar),
                         int(res.n_updated[-1]), time.perf_counter() - t0))
        subopt_plot(ax, curves, fstar, f"label propagation, {name}")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return rows


def fig_active_set(n_iter, out):
    """Fig. 7: non-negative L1 least squares; PG vs matrix updates + active set."""
    A, b = paper_ls(1000, 500, 0.05, 2)
    l1 = 0.02 * np.abs(A.T @ b).max()
    prob = bcd.least_squares(A, b, l1=l1, bounds=(0, None))
    ref = run(prob, partition="variable", block_size=100, rule="gsq", update="matrix",
              active_set=True, max_iter=2000)
    fstar = ref.objective[-1]
    configs = [
        ("random, blocks of 5, PG", dict(partition="variable", block_size=5,
                                         rule="random", update="lipschitz")),
        ("GSQ, blocks of 5, PG", dict(partition="variable", block_size=5, rule="gsq",
                                      update="lipschitz")),
        ("GSQ, blocks of 5, PN", dict(partition="variable", block_size=5, rule="gsq",
                                      update="matrix")),
        ("GSQ+active set, 5, PN", dict(partition="variable", block_size=5, rule="gsq",
                                       update="matrix", active_set=True)),
        ("GSQ+active set, 50, PN", dict(partition="variable", block_size=50, rule="gsq",
                                        update="matrix", active_set=True)),
    ]
    curves, rows = {}, []
    for label, kw in configs:
        res = run(prob, max_iter=n_iter, random_state=0, **kw)
        curves[label] = res.objective
        gap = (np.asarray(res.objective) - fstar) / abs(fstar)
        hit = np.flatnonzero(gap <= 1e-14)
        rows.append((label, gap[-1], res.active_set_iter,
                     int(hit[0]) if len(hit) else None))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    subopt_plot(ax, curves, fstar, "non-negative L1 least squares")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return rows, int(ref.support_size)


# ------------------------------------------------------------------ part 2
def heap_scaling(sizes, n_steps, repeat, out):
    """Per-iteration cost of greedy coordinate steps: heap path vs general loop."""
    rows = []
    for p in sizes:
        n = p
        A, b = paper_ls(n, p, 5.0 / n, 3)
        prob = bcd.least_squares(A, b, l1=0.01 * np.abs(A.T @ b).max())
        bcd.minimize(prob, rule="gsl", max_iter=10, tol=0)  # JIT warm-up
        _, t_fast = median_time(
            lambda prob=prob: bcd.minimize(prob, rule="gsl", max_iter=n_steps, tol=0,
                                           check_every=n_steps), repeat)
        few = max(20, n_steps // 50)
        _, t_slow = median_time(
            lambda prob=prob, few=few: bcd.minimize(prob, rule="gsl", max_iter=few,
                                                    tol=0, fast=False), repeat)
        rows.append((p, A.nnz, t_fast / n_steps * 1e6, t_slow / few * 1e6))
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ps = [r[0] for r in rows]
    ax.loglog(ps, [r[2] for r in rows], "o-", label="heap (fast path)")
    ax.loglog(ps, [r[3] for r in rows], "s-", label="general loop (O(p) scores)")
    ax.set_xlabel("p (n = p, 5 non-zeros per column)", fontsize=8)
    ax.set_ylabel("microseconds per iteration", fontsize=8)
    ax.set_title("greedy GSL coordinate descent", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return rows


def anchors(repeat):
    """Wall-clock against scipy/scikit-learn on identical objectives."""
    from sklearn.linear_model import Lasso, LogisticRegression

    rows = []
    # Lasso on a sparse design, heap path (GS-q) vs sklearn coordinate descent
    A, b = paper_ls(2000, 1000, 0.01, 4)
    n = A.shape[0]
    for frac in (0.1, 0.02):
        l1 = frac * np.abs(A.T @ b).max()
        prob = bcd.least_squares(A, b, l1=l1)
        bcd.minimize(prob, rule="gsq", max_iter=10, tol=0)

        def ours(prob=prob):
            return bcd.minimize(prob, rule="gsq", tol=1e-8, max_iter=10**7)

        def ref(l1=l1):
            return Lasso(alpha=l1 / n, fit_intercept=False, tol=1e-10,
                         max_iter=100000).fit(A, b)

        r1, t1 = median_time(ours, repeat)
        r2, t2 = median_time(ref, repeat)
        w = r2.coef_
        f2 = 0.5 * np.sum((A @ w - b) ** 2) + l1 * np.abs(w).sum()
        rows.append((f"Lasso 2000x1000 sparse, l1 = {frac} l1_max", "sklearn Lasso",
                     r1.objective[-1], f2, t1, t2))
    # L1 logistic: heap path vs liblinear
    A, b = paper_ls(2000, 1000, 0.01, 5)
    y = (b > np.median(b)).astype(int)
    l1 = 0.05 * 0.5 * np.abs(A.T @ np.where(y == 1, 1.0, -1.0)).max()
    prob = bcd.logistic(A, y, l1=l1)
    bcd.minimize(prob, rule="gsq", max_iter=10, tol=0)
    ypm = np.where(y == 1, 1.0, -1.0)
    r1, t1 = median_time(lambda: bcd.minimize(prob, rule="gsq", tol=1e-8,
                                              max_iter=10**7), repeat)
    r2, t2 = median_time(lambda: LogisticRegression(
        l1_ratio=1.0, solver="liblinear", C=1 / l1, fit_intercept=False, tol=1e-6,
        max_iter=100000).fit(A, y), repeat)
    w = r2.coef_.ravel()
    f2 = -log_expit(ypm * (A @ w)).sum() + l1 * np.abs(w).sum()
    rows.append(("L1 logistic 2000x1000 sparse", "sklearn liblinear",
                 r1.objective[-1], f2, t1, t2))
    # label propagation: message passing vs a sparse direct solve
    rng = np.random.default_rng(1)
    W = lattice(100)
    lab = -np.ones(10000, dtype=np.int64)
    idx = rng.choice(10000, 400, replace=False)
    lab[idx] = (idx % 100 < 50).astype(np.int64)
    prob = bcd.label_propagation(W, lab, reg=1e-3)
    Qc = sp.csc_matrix(prob.Q)
    bcd.minimize(prob, partition="tree", rule="gsq", update="message-passing",
                 max_iter=2, tol=0)
    r1, t1 = median_time(lambda: bcd.minimize(prob, partition="tree", rule="gsq",
                                              update="message-passing", tol=1e-6,
                                              max_iter=100000), repeat)
    xs, t2 = median_time(lambda: spsolve(Qc, prob.c), repeat)
    f2 = 0.5 * xs @ (prob.Q @ xs) - prob.c @ xs + prob.const
    rows.append(("label propagation, 100x100 lattice (tol 1e-6)",
                 "scipy spsolve (SuperLU)",
                 r1.objective[-1], f2, t1, t2))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_iter = 150 if args.quick else 500
    repeat = 1 if args.quick else 3
    IMG.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rules = fig_rules(n_iter, IMG / "bcd_rules.png")
    var = fig_variable(n_iter, IMG / "bcd_variable_blocks.png")
    mp = fig_message_passing(min(n_iter, 300), IMG / "bcd_message_passing.png")
    act, support = fig_active_set(min(n_iter, 200), IMG / "bcd_active_set.png")
    sizes = [1000, 10000, 100000] if args.quick else [1000, 10000, 100000, 1000000]
    heap = heap_scaling(sizes, 20000, repeat, IMG / "bcd_heap_scaling.png")
    anc = anchors(repeat)
    total = time.perf_counter() - t_all

    import numba
    import scipy
    import sklearn

    L = ["# BCD benchmarks (`asv_benchmarks/compare_bcd.py`)", ""]
    L.append(f"Machine: {platform.processor() or platform.machine()}, "
             f"`os.cpu_count()` = {os.cpu_count()}, Python {sys.version.split()[0]}, "
             f"numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn "
             f"{sklearn.__version__}, numba {numba.__version__}. Total run "
             f"{total:.0f} s{' (--quick)' if args.quick else ''}. Machine shared with "
             "other jobs: trust ratios within a table more than absolute times.")
    L += ["", "(Summary of the committed run, written by hand: see docs/benchmarks_bcd.md.)",
          "", "## 1. The paper's findings, per iteration", "",
          "Instances are smaller than the paper's (its dataset A is 1000x10000; here "
          "2000x1000 with the same recipe: sparse columns with random scaling, so the "
          "problem is well posed and F* comes from a direct solve).", "",
          "### Selection rules (paper Fig. 4)", "",
          "![rules](img/bcd_rules.png)", "",
          f"Relative suboptimality after {n_iter} iterations, fixed blocks of 5 sorted "
          "by Lipschitz constant, Lipschitz updates:", "",
          "| problem | rule | (F - F*)/F* |", "|---|---|---|"]
    L += [f"| {a} | {r} | {g:.2e} |" for a, r, g in rules]
    L += ["", "### Variable blocks and GSQ with matrix updates (paper Fig. 5)", "",
          "![variable](img/bcd_variable_blocks.png)", "",
          "| rule (FB fixed, VB variable blocks of 5) | (F - F*)/F* |", "|---|---|"]
    L += [f"| {r} | {g:.2e} |" for r, g in var]
    L += ["", "### Forest blocks and message passing (paper Fig. 6)", "",
          "![mp](img/bcd_message_passing.png)", "",
          "| graph | method | relative gap | coordinates updated | seconds |",
          "|---|---|---|---|---|"]
    L += [f"| {g} | {m} | {s:.2e} | {u} | {t:.2f} |" for g, m, s, u, t in mp]
    L += ["", "### Active-set identification and superlinear convergence (paper Fig. 7)",
          "", "![active](img/bcd_active_set.png)", "",
          f"Non-negative L1 least squares (1000x500, l1 = l1_max/50, {support} non-zeros at "
          "the solution). PG = proximal gradient (Lipschitz) update, PN = proximal "
          "Newton (exact block QP).", "",
          "| method | final (F - F*)/F* | free set fixed from iteration | "
          "first iteration with gap <= 1e-14 |", "|---|---|---|---|"]
    L += [f"| {m} | {g:.1e} | {a} | {h if h is not None else '-'} |"
          for m, g, a, h in act]
    L += ["", "## 2. Speed", "", "### Greedy rules at O(log p) per iteration", "",
          "![heap](img/bcd_heap_scaling.png)", "",
          "GSL coordinate descent on L1 least squares with n = p and 5 non-zeros per "
          "column. The heap path (`fast='auto'`) keeps the scores in an indexed max-heap "
          "and re-keys only the coordinates whose gradient changed; the general loop "
          "recomputes all p scores each iteration.", "",
          "| p | nnz | heap path, us/iter | general loop, us/iter | ratio |",
          "|---|---|---|---|---|"]
    L += [f"| {p} | {z} | {a:.2f} | {b:.0f} | {b / a:.0f}x |" for p, z, a, b in heap]
    L += ["", f"### Against the anchors (median of {repeat})", "",
          "Same objective for both; tol 1e-8 for sparseopt (relative prox-gradient "
          "norm), 1e-10 for sklearn Lasso, 1e-6 for liblinear (at 1e-10 it took 190 s "
          "here).", "",
          "| problem | anchor | F sparseopt | F anchor | t sparseopt (s) | t anchor (s) "
          "| time ratio (ours/anchor) |", "|---|---|---|---|---|---|---|"]
    L += [f"| {p} | {a} | {f1:.10g} | {f2:.10g} | {t1:.3f} | {t2:.3f} | {t1 / t2:.2f} |"
          for p, a, f1, f2, t1, t2 in anc]
    L.append("")
    (ROOT / "docs" / "benchmarks_bcd.md").write_text("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
