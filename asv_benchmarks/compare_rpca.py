"""Robust PCA: sparseopt against pyrpca, tensorly and rpca (AccAltProj) in one process.

Writes ``docs/benchmarks_rpca.md``.  Usage::

    python asv_benchmarks/compare_rpca.py [--size 1000] [--repeat 3] [--no-tensorly]

Problems (issue 9):

* PCP regime (Lin, Chen & Ma's protocol): ``L0 = A B^T`` with ``N(0, 1)`` factors
  of rank 50, plus 5 % gross errors ``U[-500, 500]``; ``lam = 1/sqrt(n)``,
  ``tol = 1e-7`` on ``||M - L - S||_F / ||M||_F`` for every solver (tensorly's
  tolerance is absolute: it gets ``1e-7 ||M||_F``, and ``reg_E = 2 lam`` since it
  penalises the nuclear norm of both unfoldings).
* AltProj regime (Cai, Cai & Wei's demo): rank 5, 10 % outliers
  ``U[-a, a]`` with ``a = mean |L0|``.

Every library runs single-threaded (BLAS via threadpoolctl, Numba threads = 1).
The host has 2 cores shared with other jobs, so the PCP solvers run in
interleaved rounds (a load change hits all of them) and times are medians of
``--repeat`` rounds; tensorly (minutes per run) runs once.  Only ratios within
one run mean anything.  Peak memory is
tracemalloc's peak during one call (NumPy reports its allocations to it),
divided by the size of ``M``.
"""

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from sparseopt.decomposition import robust_pca

ROOT = Path(__file__).resolve().parents[1]

NOTES = [
    "- Same iterations, same answer: the randomized, PROPACK and full-SVD runs of "
    "our IALM take identical iterations to identical errors (the randomized SVT "
    "is checked by its Ritz residuals, see docs/rpca.md).",
    "- pyrpca has no partial SVD (a full `scipy.linalg.svd` per iteration); "
    "tensorly does a full SVD of both unfoldings per iteration and its mu schedule "
    "is slow (x1.1 per iteration); its L keeps tiny nonzero singular values, hence "
    "'rank L' = n.",
    "- The rpca 0.1.6 port fails in the AltProj regime even with centring "
    "disabled: its initial threshold uses `Sigma[0, 0]` of `scipy.sparse.linalg."
    "svds`, whose singular values come in *ascending* order, so it starts from "
    "sigma_r instead of sigma_1. Its time is therefore not at the same accuracy; "
    "the issue's AltProj anchor (0.32 s, a prototype not in this project) is the "
    "other reference.",
    "- Peak memory counts the solver's allocations only (tracemalloc), not the "
    "input M.",
]


def pcp_problem(n, r, frac, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, n))
    S0 = np.zeros((n, n))
    idx = rng.random((n, n)) < frac
    S0[idx] = rng.uniform(-500, 500, idx.sum())
    return L0, S0


def altproj_problem(n, r, frac, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, n))
    a = np.abs(L0).mean()
    S0 = np.where(rng.random((n, n)) < frac, rng.uniform(-a, a, (n, n)), 0.0)
    return L0, S0


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def dense(S):
    if hasattr(S, "to_scipy"):
        S = S.to_scipy()
    return S.toarray() if hasattr(S, "toarray") else np.asarray(S)


def measure(fn, repeat, memory=True):
    """Median wall time over ``repeat`` runs, the last output, and peak memory
    (one more traced run; NaN when ``memory`` is False)."""
    times, out = [float("nan")], None
    if repeat:
        times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    if not memory:
        return statistics.median(times), out, float("nan")
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), out, peak


class _NoCentring(np.ndarray):
    """rpca 0.1.6 subtracts column means, which makes S dense (research note);
    this view makes its ``np.mean(X, axis=0)`` return zeros so the algorithm
    runs on the raw matrix, as the authors' MATLAB code does."""

    def mean(self, *args, **kwargs):
        return np.zeros(self.shape[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-tensorly", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks_rpca.md"))
    args = ap.parse_args()
    n, rep = args.size, args.repeat
    numba.set_num_threads(1)
    rows_pcp, rows_alt = [], []
    # load every BLAS the runs will use *before* limiting threads: threadpoolctl
    # only limits libraries already loaded (scipy ships its own OpenBLAS)
    import scipy.linalg
    import scipy.sparse.linalg  # noqa: F401

    for mod in ("pyrpca", "tensorly", "rpca"):
        try:
            __import__(mod)
        except ImportError:
            pass
    with threadpool_limits(1):
        # ---------------- PCP regime
        L0, S0 = pcp_problem(n, 50, 0.05)
        M = L0 + S0
        mbytes = M.nbytes
        lam = 1 / np.sqrt(n)
        robust_pca(M[:60, :60], random_state=0)  # JIT warm-up

        def ours(svd_method):
            return lambda: robust_pca(M, svd_method=svd_method, random_state=0,
                                      sparse_output=False)

        solvers = [
            ("sparseopt IALM, randomized partial SVD (default)", ours("auto")),
            ("sparseopt IALM, PROPACK partial SVD", ours("lanczos")),
            ("sparseopt IALM, full SVD", ours("full")),
        ]
        try:
            from pyrpca import rpca_pcp_ialm

            solvers.append(("pyrpca 1.0.1 rpca_pcp_ialm (full SVD)",
                            lambda: rpca_pcp_ialm(M, lam, tol=1e-7, verbose=False)))
        except ImportError:
            print("pyrpca not installed: skipped")
        # interleaved rounds: a change of the host's load hits every solver
        times = {name: [] for name, _ in solvers}
        outs = {}
        for _ in range(rep):
            for name, fn in solvers:
                t, outs[name], _ = measure(fn, 1, memory=False)
                times[name].append(t)
                print(name, f"{t:.2f}", flush=True)
        for name, fn in solvers:
            peak = measure(fn, 0)[2]
            out = outs[name]
            if isinstance(out, tuple):  # pyrpca
                Lp, Sp = out
                rows_pcp.append((name, statistics.median(times[name]), None,
                                 rel(Lp, L0), rel(Sp, S0),
                                 int(np.linalg.matrix_rank(Lp)), peak / mbytes))
            else:
                rows_pcp.append((name, statistics.median(times[name]), out.n_iter,
                                 rel(out.low_rank, L0), rel(dense(out.sparse), S0),
                                 out.rank, peak / mbytes))
            print(rows_pcp[-1], flush=True)
        if not args.no_tensorly:
            try:
                import tensorly as tl
                from tensorly.decomposition import robust_pca as tl_rpca

                tl.set_backend("numpy")
                t, out, peak = measure(
                    lambda: tl_rpca(M, reg_E=2 * lam, tol=1e-7 * np.linalg.norm(M),
                                    verbose=0, return_errors=True), 1, memory=False)
                (Lt, St), errs = out[:2], out[2]
                rows_pcp.append(("tensorly 0.10.0 robust_pca (defaults, reg_E = 2 lam)",
                                 t, len(errs), rel(Lt, L0), rel(St, S0),
                                 int(np.linalg.matrix_rank(Lt)), peak / mbytes))
                print(rows_pcp[-1], flush=True)
                t_after = measure(ours("auto"), 1, memory=False)[0]
                print("ours right after tensorly:", t_after, flush=True)
            except ImportError:
                print("tensorly not installed: skipped")

        # ---------------- AltProj regime
        L0, S0 = altproj_problem(n, 5, 0.1)
        M = L0 + S0
        robust_pca(M[:60, :60], method="accaltproj", rank=5, random_state=0)
        for name, fn in [
            ("sparseopt AccAltProj (rank 5)",
             lambda: robust_pca(M, method="accaltproj", rank=5, random_state=0,
                                sparse_output=False)),
            ("sparseopt IALM (default)",
             lambda: robust_pca(M, random_state=0, sparse_output=False)),
        ]:
            t, res, peak = measure(fn, rep)
            rows_alt.append((name, t, res.n_iter, rel(res.low_rank, L0), peak / mbytes))
            print(rows_alt[-1], flush=True)
        try:
            from rpca import RobustPCA as AccAltProj

            def theirs():
                est = AccAltProj(n_components=5, tol=1e-7, verbose=False, copy=False)
                import contextlib
                import io

                with contextlib.redirect_stdout(io.StringIO()):  # it prints
                    est.fit(M.view(_NoCentring))
                return est

            t, est, peak = measure(theirs, rep)
            rows_alt.append(("rpca 0.1.6 AccAltProj port (authors' beta, no centring)",
                             t, est.end_iter_, rel(np.asarray(est.low_rank_), L0),
                             peak / mbytes))
            print(rows_alt[-1], flush=True)
        except ImportError:
            print("rpca not installed: skipped")

    write(args.out, n, rows_pcp, rows_alt)


def write(path, n, rows_pcp, rows_alt):
    base = rows_pcp[0][1]
    full = next((r[1] for r in rows_pcp if "full SVD" in r[0] and "sparseopt" in r[0]),
                None)
    lines = [
        "# Robust PCA benchmarks",
        "",
        "Written by `asv_benchmarks/compare_rpca.py` (all libraries in one process, "
        "single-threaded BLAS and Numba, median wall time).",
        f"Host: `os.cpu_count()` = {os.cpu_count()}, {platform.machine()}, "
        f"Python {sys.version.split()[0]}, NumPy {np.__version__}.  The host is shared "
        "with other jobs: read the ratios, not the absolute times.",
        "",
        f"## PCP regime: {n} x {n}, rank 50, 5 % gross errors U[-500, 500], "
        "tol 1e-7",
        "",
        "| solver | time (s) | x slower than ours | iterations | rel. error L | "
        "rel. error S | rank L | peak memory / size of M |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t, it, eL, eS, rk, mem in rows_pcp:
        lines.append(f"| {name} | {t:.2f} | {t / base:.1f} | {it if it else '-'} | "
                     f"{eL:.1e} | {eS:.1e} | {rk} | {mem:.1f} |")
    lines += [
        "",
        f"## AltProj regime: {n} x {n}, rank 5, 10 % outliers U[-mean|L|, mean|L|], "
        "tol 1e-7",
        "",
        "| solver | time (s) | ratio to sparseopt AccAltProj | iterations | "
        "rel. error L | peak memory / size of M |",
        "|---|---|---|---|---|---|",
    ]
    base_alt = rows_alt[0][1]
    for name, t, it, eL, mem in rows_alt:
        lines.append(f"| {name} | {t:.2f} | {t / base_alt:.2f} | {it} | {eL:.1e} | "
                     f"{mem:.1f} |")
    lines += ["", "## Against the issue's targets", ""]
    by = {r[0].split(" ")[0]: r[1] for r in rows_pcp}
    if "pyrpca" in by:
        lines.append(f"- pyrpca / ours = {by['pyrpca'] / base:.1f} (target >= 5).")
    if "tensorly" in by:
        lines.append(f"- tensorly / ours = {by['tensorly'] / base:.1f} (target >= 40).")
    if full:
        lines.append(
            f"- full-SVD IALM / ours = {full / base:.1f}; the issue's prototype had "
            "12.0 s / 1.33 s = 9.0, so ours is within 1.5x of the prototype when "
            "this ratio is >= 6.0.")
    alt = {r[0].split(" ")[0]: r[1] for r in rows_alt[2:]}
    if "rpca" in alt:
        lines.append(f"- AccAltProj: ours / rpca port = {base_alt / alt['rpca']:.2f} "
                     "(target <= 1.5).")
    lines += ["", "## Notes", "", *NOTES]
    Path(path).write_text("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
