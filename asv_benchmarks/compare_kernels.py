"""Run sparseopt's kernels and the anchors on the same inputs in one process.

Anchors: scipy.sparse, Intel MKL through sparse_dot_mkl, SuiteSparse:GraphBLAS
through python-graphblas (both optional: a missing one is reported as n/a),
and dense NumPy matmul for BSR.  Writes ``docs/benchmarks_kernels.md`` with
ratio tables (time of the anchor / time of sparseopt, > 1 means sparseopt is
faster), achieved bandwidth against a triad measured in the same run, and a plot
``docs/img/kernels_speedup.png``.

Usage: ``python asv_benchmarks/compare_kernels.py [--quick] [--large] [--threads N]``.
"""

import argparse
import glob
import os
import platform
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from benchmarks.common import (  # noqa: E402
    block_structured,
    peak_bytes,
    poisson2d,
    rmat,
    uniform,
    uniform_rows,
)
from timing import round_robin  # noqa: E402

# a sample is a batch of calls lasting at least this long (see timing.py)
MIN_SAMPLE_SECONDS = 0.02
# a contender whose slowest sample took this many times its fastest marks its
# ratios as stalled (see timing.round_robin's spread)
STALL_SPREAD = 2.0


def _load_mkl():
    if "MKL_RT" not in os.environ:
        found = glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*"))
        if found:
            os.environ["MKL_RT"] = found[0]
    try:
        import sparse_dot_mkl

        return sparse_dot_mkl
    except Exception:
        return None


def _load_graphblas():
    try:
        import graphblas as gb

        return gb
    except Exception:
        return None


def triad_bandwidth(n_threads):
    import numba
    from numba import njit, prange

    @njit(parallel=True)
    def triad(a, b, c, s):
        for i in prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    n = 20_000_000
    a, b, c = np.empty(n), np.ones(n), np.ones(n)
    numba.set_num_threads(n_threads)
    t = round_robin({"triad": lambda: triad(a, b, c, 3.0)}, 5)["triad"]
    return 3 * 8 * n / t / 1e9


def fmt_ratio(anchor, ours, stalled=False):
    """``anchor / ours`` as ``1.23x``, starred when a sample of either stalled."""
    return "n/a" if anchor is None else f"{anchor / ours:.2f}x{' *' if stalled else ''}"


def stalled(spread, *names):
    """Whether any of the named contenders' samples spread over ``STALL_SPREAD``."""
    return any(spread.get(name, 1.0) >= STALL_SPREAD for name in names)


def ratio_cells(ours, spread, anchors, ours_name="ours"):
    """Table cells ``anchor / ours`` for ``(anchor time, anchor name)`` pairs."""
    return " | ".join(fmt_ratio(t, ours, stalled(spread, ours_name, name)) for t, name in anchors)


def transposed_cell(ours, ours_t, spread):
    """Table cell ``A.T@X / A@X``."""
    return f"{ours_t / ours:.2f}{' *' if stalled(spread, 'ours', 'ours_t') else ''}"


def fmt_ms(t):
    return "n/a" if t is None else f"{t * 1e3:.1f}"


def bench_spmm(so, mkl, gb, repeat, quick):
    rows = []
    cases = [
        ("uniform 20k 0.1%", lambda: uniform(20_000, 1e-3), [1, 8, 64, 256]),
        ("uniform 20k 1%", lambda: uniform(20_000, 1e-2), [1, 64]),
        ("R-MAT scale 15", lambda: rmat(15), [1, 8, 64]),
        ("Poisson 2D 500x500", lambda: poisson2d(500), [1, 8, 64]),
    ]
    if quick:
        cases = [(n, f, k[:2]) for n, f, k in cases[:2]]
    rng = np.random.default_rng(0)
    for name, make, ks in cases:
        A_sp = make()
        A = so.CSR.from_scipy(A_sp)
        for k in ks:
            for dtype in (np.float64, np.float32):
                A_d = A.astype(dtype)
                A_spd = A_sp.astype(dtype)
                X = rng.standard_normal((A.shape[1], k)).astype(dtype)
                if k == 1:
                    X = X[:, 0].copy()
                Y = rng.standard_normal((A.shape[0],) + X.shape[1:]).astype(dtype)
                fns = {"ours": lambda: so.spmm(A_d, X), "ours_t": lambda: so.spmm_t(A_d, Y),
                       "scipy": lambda: A_spd @ X}
                if mkl is not None:
                    fns["mkl"] = lambda: mkl.dot_product_mkl(A_spd, X)
                if gb is not None and k > 1:
                    gA = gb.io.from_scipy_sparse(A_spd)
                    gX = gb.Matrix.from_dense(X)
                    fns["gb"] = lambda: (gA @ gX).new()
                # sub-millisecond products: three times the rounds, as a burst of
                # load or a page-fault storm hits their 20 ms samples harder
                rounds = 3 * repeat if k <= 8 else repeat
                spread = {}
                t = round_robin(fns, rounds, min_seconds=MIN_SAMPLE_SECONDS, spread=spread)
                ours, ours_t, scipy_t = t["ours"], t["ours_t"], t["scipy"]
                mkl_t, gb_t = t.get("mkl"), t.get("gb")
                itemsize = np.dtype(dtype).itemsize
                traffic = (A.nnz * (itemsize + 4) + (A.shape[0] + 1) * 4
                           + (A.shape[0] + A.shape[1]) * k * itemsize)
                rows.append((name, k, np.dtype(dtype).name, ours, ours_t, scipy_t, mkl_t, gb_t,
                             traffic / ours / 1e9, spread))
                print(f"spmm {name} k={k} {np.dtype(dtype).name}: ours {ours * 1e3:.2f} ms "
                      f"(A.T@X {ours_t * 1e3:.2f}), scipy {scipy_t * 1e3:.2f}, "
                      f"mkl {fmt_ms(mkl_t)}, graphblas {fmt_ms(gb_t)}", flush=True)
    return rows


def bench_bsr(so, mkl, repeat, quick):
    rows = []
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4096, 256))
    for block in [4, 16] if quick else [4, 8, 16, 32]:
        csr = block_structured(4096, block, 0.1, seed=block)
        B_sp = csr.tobsr(blocksize=(block, block))
        B = so.BSR.from_scipy(B_sp)
        dense = B_sp.toarray()
        fns = {"ours": lambda: B @ X, "ours_t": lambda: B.T @ X, "scipy": lambda: B_sp @ X,
               "dense": lambda: dense @ X}
        if mkl is not None:
            try:
                mkl.dot_product_mkl(B_sp, X)
                fns["mkl"] = lambda: mkl.dot_product_mkl(B_sp, X)
            except Exception:
                pass
        spread = {}
        t = round_robin(fns, repeat, min_seconds=MIN_SAMPLE_SECONDS, spread=spread)
        ours, ours_t, scipy_t, dense_t, mkl_t = (t["ours"], t["ours_t"], t["scipy"], t["dense"],
                                                 t.get("mkl"))
        rows.append((block, ours, ours_t, scipy_t, mkl_t, dense_t, spread))
        print(f"bsr block {block}: ours {ours * 1e3:.1f} ms (A.T@X {ours_t * 1e3:.1f}), "
              f"scipy {scipy_t * 1e3:.1f}, mkl {fmt_ms(mkl_t)}, dense {dense_t * 1e3:.1f}",
              flush=True)
    return rows


def bench_spgemm(so, mkl, gb, repeat, quick, large=False):
    rows = []
    # GraphBLAS keeps about its output's size allocated after each call
    # (R-MAT 16: 2.3 GB resident after del, scipy 0.07 GB): at scale 17 the
    # 23 GB host ran out of memory in one run, so it sits that one out
    cases = [
        ("uniform 50k, 10/row", lambda: uniform_rows(50_000, 10, seed=2), True),
        ("R-MAT scale 15", lambda: rmat(15), True),
        ("R-MAT scale 16", lambda: rmat(16), True),
        ("R-MAT scale 17", lambda: rmat(17), False),
        ("Poisson 2D 500x500", lambda: poisson2d(500), True),
    ]
    if large:  # C holds ~0.5 G entries (6.6 GB): only with --large
        cases.insert(4, ("R-MAT scale 18", lambda: rmat(18), False))
    if quick:
        cases = cases[:1] + cases[-1:]
    for name, make, with_graphblas in cases:
        A_sp = make()
        A = so.CSR.from_scipy(A_sp)
        fns = {"ours": lambda: so.spgemm(A, A), "ours_sorted": lambda: so.spgemm(A, A, sort=True),
               "scipy": lambda: A_sp @ A_sp}
        if mkl is not None:
            fns["mkl"] = lambda: mkl.dot_product_mkl(A_sp, A_sp)
            fns["mkl_sorted"] = lambda: mkl.dot_product_mkl(A_sp, A_sp, reorder_output=True)
        if gb is not None and with_graphblas:
            gA = gb.io.from_scipy_sparse(A_sp)
            fns["gb"] = lambda: (gA @ gA).new().wait()
        spread = {}
        t = round_robin(fns, repeat, min_seconds=MIN_SAMPLE_SECONDS, spread=spread)
        ours, ours_sorted, scipy_t = t["ours"], t["ours_sorted"], t["scipy"]
        mkl_t, mkl_sorted, gb_t = t.get("mkl"), t.get("mkl_sorted"), t.get("gb")
        nnz = so.spgemm(A, A).nnz
        rows.append((name, A.nnz, nnz, ours, ours_sorted, scipy_t, mkl_t, mkl_sorted, gb_t,
                     spread))
        print(f"spgemm {name}: ours {ours * 1e3:.1f} ms (sorted {ours_sorted * 1e3:.1f}), "
              f"scipy {scipy_t * 1e3:.1f}, mkl {fmt_ms(mkl_t)} (sorted {fmt_ms(mkl_sorted)}), "
              f"graphblas {fmt_ms(gb_t)}", flush=True)
    return rows


_PEAK_CASES = [
    ("uniform 50k, 10/row", "uniform_rows(50_000, 10, seed=2)"),
    ("R-MAT scale 15", "rmat(15)"),
    ("Poisson 2D 500x500", "poisson2d(500)"),
]


def spgemm_peak_memory(n_threads):
    """Peak memory of ``A @ A`` beyond what was resident before, ours and scipy's.

    A fresh process per matrix and library (``benchmarks.common.peak_bytes``).
    Returns rows ``(name, ours, ours_sorted, scipy)`` in bytes.
    """
    rows = []
    for name, make in _PEAK_CASES:
        setup = f"A_sp = {make}\nA = sparseopt.CSR.from_scipy(A_sp)"
        ours, ours_sorted, scipy_b = (
            peak_bytes(setup, call, n_threads)
            for call in ("sparseopt.spgemm(A, A)", "sparseopt.spgemm(A, A, sort=True)",
                         "A_sp @ A_sp"))
        rows.append((name, ours, ours_sorted, scipy_b))
        print(f"spgemm peak {name}: ours +{ours / 1e6:.1f} MB (sorted +{ours_sorted / 1e6:.1f}), "
              f"scipy +{scipy_b / 1e6:.1f} MB", flush=True)
    return rows


_COLD_OURS = """
import time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import sparseopt
A = sparseopt.CSR.from_dense(np.eye(64))
X = np.ones((64, 8))
sparseopt.spmm(A, X)
t2 = time.perf_counter()
sparseopt.spmm(A, X)
t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
"""

# the same measurement for a one-loop @njit(cache=True) function: what any
# Numba-compiled library pays on its first call in a new process (Numba loads
# its typing and lowering registries on first use, cached or not)
_COLD_FLOOR = """
import time
import numpy as np
t1 = time.perf_counter()
from floor_kernel import total
x = np.ones(8)
total(x)
t2 = time.perf_counter()
total(x)
t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
"""

_FLOOR_MODULE = """
from numba import njit


@njit(cache=True)
def total(x):
    s = 0.0
    for v in x:
        s += v
    return s
"""


def cold_start(repeat=5):
    """Median (first call, warm call) seconds in new processes, ours and the floor.

    "First call" runs from after ``import numpy`` to the first result: importing
    the library (and Numba), building the operands and the call.

    Both run with their Numba cache already on disk (a first process fills it).
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "floor_kernel.py").write_text(_FLOOR_MODULE)
        env = dict(os.environ, PYTHONPATH=tmp + os.pathsep + os.environ.get("PYTHONPATH", ""))
        results = {}
        for name, code in (("ours", _COLD_OURS), ("floor", _COLD_FLOOR)):
            runs = []
            for i in range(repeat + 1):
                out = subprocess.run([sys.executable, "-c", code], check=True, env=env,
                                     capture_output=True, text=True)
                if i:  # the first run fills the cache
                    runs.append([float(v) for v in out.stdout.split()])
            results[name] = np.median(np.array(runs), axis=0)
    return results


def scatter_bound(repeat):
    """Serial ``A.T @ X`` against ``A @ X`` with every operand in L1.

    A 32 x 32 CSR with 16 column draws per row (407 distinct entries in all once
    duplicates are summed) and ``X`` of ``k <= 64`` columns (32 KB at most for
    ``X`` and the output together), each kernel called 2000 times in a compiled
    loop on one chunk (no thread pool).  No memory traffic, so the ratio is the
    core's: the scatter loads, adds to and stores an output row per stored
    entry where the gather only loads (the scatter also zeroes its 32 output
    rows per call, against the 407 entries).  Returns rows
    ``(k, dtype, gather ns/entry, scatter ns/entry)``.
    """
    from numba import njit

    from sparseopt.kernels import _spmm

    one_chunk = np.array([0, 32], dtype=np.int64)
    calls = 2000

    @njit
    def gathers(indptr, indices, data, X, out):
        for _ in range(calls):
            _spmm.csr_spmm(indptr, indices, data, X, out, one_chunk)

    @njit
    def scatters(indptr, indices, data, X, out):
        for _ in range(calls):
            _spmm.csr_spmm_t(indptr, indices, data, X, out, one_chunk, True)

    rows = []
    for k in (1, 8, 32, 64):
        for dtype in (np.float64, np.float32):
            A = uniform_rows(32, 16, seed=1).astype(dtype)
            indptr = A.indptr.astype(np.int32).view(np.uint32)
            indices = A.indices.astype(np.int32).view(np.uint32)
            X = np.ones((32, k), dtype)
            out_f, out_t = np.empty_like(X), np.empty_like(X)
            t = round_robin({"gather": lambda: gathers(indptr, indices, A.data, X, out_f),
                             "scatter": lambda: scatters(indptr, indices, A.data, X, out_t)},
                            repeat, min_seconds=MIN_SAMPLE_SECONDS)
            per_entry = 1e9 / (calls * A.nnz)
            rows.append((k, np.dtype(dtype).name, t["gather"] * per_entry,
                         t["scatter"] * per_entry))
            print(f"in-L1 k={k} {np.dtype(dtype).name}: gather {rows[-1][2]:.2f} ns/entry, "
                  f"scatter {rows[-1][3]:.2f}", flush=True)
    return rows


def plot(spmm_rows, bsr_rows, spgemm_rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    labels = [f"{r[0]}\nk={r[1]} {r[2]}" for r in spmm_rows]
    axes[0].barh(labels, [r[5] / r[3] for r in spmm_rows], label="vs scipy")
    axes[0].barh(labels, [(r[6] or np.nan) / r[3] for r in spmm_rows], alpha=0.6,
                 label="vs MKL")
    axes[0].set_title("SpMM speedup")
    labels = [f"block {r[0]}" for r in bsr_rows]
    axes[1].barh(labels, [r[3] / r[1] for r in bsr_rows], label="vs scipy BSR")
    axes[1].barh(labels, [r[5] / r[1] for r in bsr_rows], alpha=0.6, label="vs dense matmul")
    axes[1].set_title("BSR SpMM speedup")
    labels = [r[0] for r in spgemm_rows]
    axes[2].barh(labels, [r[5] / r[3] for r in spgemm_rows], label="vs scipy")
    axes[2].barh(labels, [(r[6] or np.nan) / r[3] for r in spgemm_rows], alpha=0.6,
                 label="vs MKL (unsorted)")
    axes[2].set_title("SpGEMM speedup (unsorted)")
    for ax in axes:
        ax.axvline(1.0, color="k", lw=0.8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large", action="store_true",
                        help="add SpGEMM on R-MAT scale 18 (needs ~20 GB of memory)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import numba

    import sparseopt as so

    mkl = _load_mkl()
    gb = _load_graphblas()
    numba.set_num_threads(args.threads)
    if mkl is not None:
        mkl.mkl_set_num_threads(args.threads)
    if gb is not None:
        gb.ss.config["nthreads"] = args.threads
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        bw = triad_bandwidth(args.threads)
        numba.set_num_threads(args.threads)
        print(f"triad bandwidth {bw:.1f} GB/s", flush=True)
        spmm_rows = bench_spmm(so, mkl, gb, args.repeat, args.quick)
        bound_rows = scatter_bound(3 * args.repeat)
        bsr_rows = bench_bsr(so, mkl, args.repeat, args.quick)
        spgemm_rows = bench_spgemm(so, mkl, gb, max(3, args.repeat - 2), args.quick,
                                   args.large)
    peaks = spgemm_peak_memory(args.threads)
    cold = cold_start()

    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    plot(spmm_rows, bsr_rows, spgemm_rows, img / "kernels_speedup.png")
    load = os.getloadavg()
    lines = [
        "# Kernel benchmarks",
        "",
        "Written by `python asv_benchmarks/compare_kernels.py` "
        f"({'--quick, ' if args.quick else ''}{args.threads} threads): contenders interleaved "
        f"in an order shuffled every round, each sample a batch of calls lasting at least "
        f"{MIN_SAMPLE_SECONDS * 1e3:.0f} ms, median of {args.repeat} rounds ({3 * args.repeat} "
        "for SpMM at k <= 8) "
        "(asv_benchmarks/timing.py).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; numpy {np.__version__}, "
        f"scipy {sp.__name__ and __import__('scipy').__version__}, numba {numba.__version__}; "
        f"MKL {'yes' if mkl else 'n/a'}, GraphBLAS {'yes' if gb else 'n/a'}.",
        "Ratios are anchor time / sparseopt time from the same run: above 1 means sparseopt is "
        "faster.  Absolute times on this shared machine are noisy; ratios within a row are "
        "what to read.  A ratio marked * was read from medians whose samples spread over "
        f"{STALL_SPREAD:g}x or more (slowest over fastest) for one of its two contenders: some "
        "rounds met a stall of the host (a preempted thread, slow page faults on a large fresh "
        "output), so that ratio says less about the kernels than the others.",
        "",
        f"Triad bandwidth (Numba, {args.threads} threads): **{bw:.1f} GB/s**.",
        "",
        "## SpMM (CSR x dense)",
        "",
        "| matrix | k | dtype | sparseopt ms | A.T@X / A@X | vs scipy | vs MKL | vs GraphBLAS "
        "| GB/s (compulsory) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, k, dt, ours, ours_t, sc, mk, g, gbs, spread in spmm_rows:
        lines.append(f"| {name} | {k} | {dt} | {ours * 1e3:.2f} | "
                     f"{transposed_cell(ours, ours_t, spread)} | "
                     f"{ratio_cells(ours, spread, [(sc, 'scipy'), (mk, 'mkl'), (g, 'gb')])} | "
                     f"{gbs:.1f} |")
    lines += [
        "",
        "### A.T@X against A@X with the operands in L1",
        "",
        "One thread, a 32 x 32 CSR with about 13 entries per row, `X` and the output at "
        "most 32 KB together, 2000 calls per sample in a compiled loop: no memory traffic, "
        "only the core.  Per stored entry the scatter (`A.T @ X`) loads an output row, adds "
        "to it and stores it, where the gather (`A @ X`) loads a row of `X` into a sum held "
        "in registers (the scatter also zeroes its output once per call).  Where this "
        "ratio is above 1.3, the A.T@X target is out of a scatter's reach: only forming "
        "`A.T` (a gather again) would go under it, and the target rules that out.",
        "",
        "| k | dtype | A@X ns/entry | A.T@X ns/entry | A.T@X / A@X |",
        "|---|---|---|---|---|",
    ]
    for k, dt, gather_ns, scatter_ns in bound_rows:
        lines.append(f"| {k} | {dt} | {gather_ns:.2f} | {scatter_ns:.2f} | "
                     f"{scatter_ns / gather_ns:.2f} |")
    lines += [
        "",
        "## BSR SpMM (4096 x 4096, 10% of blocks, x 4096 x 256, float64)",
        "",
        "| block | sparseopt ms | A.T@X / A@X | vs scipy BSR | vs MKL BSR | vs dense matmul |",
        "|---|---|---|---|---|---|",
    ]
    for block, ours, ours_t, sc, mk, dense_t, spread in bsr_rows:
        anchors = ratio_cells(ours, spread, [(sc, "scipy"), (mk, "mkl"), (dense_t, "dense")])
        lines.append(f"| {block} | {ours * 1e3:.1f} | {transposed_cell(ours, ours_t, spread)} | "
                     f"{anchors} |")
    lines += [
        "",
        "## SpGEMM A @ A",
        "",
        "| matrix | nnz(A) | nnz(C) | sparseopt ms (unsorted / sorted) | vs scipy | "
        "vs MKL unsorted | vs MKL sorted (ours sorted) | vs GraphBLAS (ours sorted) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, nnz_a, nnz_c, ours, ours_s, sc, mk, mk_s, g, spread in spgemm_rows:
        unsorted = ratio_cells(ours, spread, [(sc, "scipy"), (mk, "mkl")])
        by_sorted = ratio_cells(ours_s, spread, [(mk_s, "mkl_sorted"), (g, "gb")], "ours_sorted")
        lines.append(f"| {name} | {nnz_a} | {nnz_c} | {ours * 1e3:.1f} / {ours_s * 1e3:.1f} | "
                     f"{unsorted} | {by_sorted} |")
    lines += [
        "",
        "### SpGEMM peak memory",
        "",
        "Rise of the peak resident set during one `A @ A` over the resident set before it, "
        "in a fresh process per matrix and library, glibc's mmap threshold fixed at 64 KiB (every "
        "large array mapped when allocated and unmapped when freed, so the rise counts all "
        "the memory a call needs, its result included); "
        f"{args.threads} threads.  Target: no more than scipy's.",
        "",
        "| matrix | sparseopt MB (unsorted / sorted) | scipy MB | sparseopt / scipy |",
        "|---|---|---|---|",
    ]
    for name, ours, ours_s, sc in peaks:
        lines.append(f"| {name} | {ours / 1e6:.1f} / {ours_s / 1e6:.1f} | {sc / 1e6:.1f} | "
                     f"{max(ours, ours_s) / sc:.3f} |")
    lines += [
        "",
        "## Cold start",
        "",
        "New processes with the Numba cache on disk (median of 5). First call: from after "
        "`import numpy` to the first result (import, operands, the call); then a second call. "
        "The floor is the same for a one-loop `@njit(cache=True)` function in its own module, "
        "what any Numba-compiled library pays (importing Numba and loading its typing and "
        "lowering registries on first use, cached or not).",
        "",
        "| | first call | warm call | first - warm |",
        "|---|---|---|---|",
        f"| sparseopt.spmm (64 x 64 CSR) | {cold['ours'][0]:.3f} s | "
        f"{cold['ours'][1] * 1e6:.0f} us | {cold['ours'][0] - cold['ours'][1]:.3f} s |",
        f"| one-loop njit (floor) | {cold['floor'][0]:.3f} s | "
        f"{cold['floor'][1] * 1e6:.0f} us | {cold['floor'][0] - cold['floor'][1]:.3f} s |",
        "",
        f"Target (first call within 0.5 s of the warm time): "
        f"{'met' if cold['ours'][0] - cold['ours'][1] <= 0.5 else 'missed'}; "
        f"sparseopt's first call costs {cold['ours'][0] - cold['floor'][0]:+.3f} s "
        "over the Numba floor.",
        "",
        "![speedups](img/kernels_speedup.png)",
        "",
    ]
    (ROOT / "docs" / "benchmarks_kernels.md").write_text("\n".join(lines))
    print("wrote docs/benchmarks_kernels.md")


if __name__ == "__main__":
    main()
