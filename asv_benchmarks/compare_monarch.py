"""Monarch products and projection against their anchors, in one process.

Anchors (issue 10):

* dense ``X @ W.T`` on the dense Monarch matrix (BLAS ``sgemm``/``dgemm``);
* the straightforward batched-matmul Monarch of the authors' ``fly`` repository
  (``blockdiag_butterfly_multiply_reference``: two ``np.matmul`` over blocks in
  the ``(batch, n)`` layout, permutations by reshape/transpose copies);
* for the projection, the full batched SVD of every slab (what ``fly``'s
  ``blockdiag_butterfly_project`` does with ``torch.linalg.svd``).

Ours: ``MonarchMatrix.matmul`` with the ``blockdiag`` kernel (default: one
GEMM per block, permutations in the strides),
the shared BSR SpMM kernels (``bsr``), and our NumPy batched-matmul in the
column layout (``bmm``); ``monarch_project``.

Everything runs on ONE thread (threadpoolctl and Numba), timings are medians of
``--repeat`` runs taken round-robin over the methods so that load changes hit
all of them alike, and every ratio is taken within one run.  Writes
``docs/benchmarks_monarch.md`` and ``docs/img/monarch_speedup.png``.

Usage: ``python asv_benchmarks/compare_monarch.py [--n 4096] [--batch 1024]
[--repeat 5] [--quick]``.
"""

import argparse
import os
import platform
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits
from timing import round_robin

import sparseopt
from sparseopt.solvers.monarch import dense_to_slabs, make_layout

ROOT = Path(__file__).resolve().parents[1]


def fly_bmm(x, w1, w2):
    """``fly``'s reference Monarch multiply, NumPy port: ``x`` (batch, n)."""
    B = x.shape[0]
    k, _, p = w1.shape
    l, s, r = w2.shape
    out1 = np.matmul(x.reshape(B, k, p).transpose(1, 0, 2), w1.transpose(0, 2, 1))
    out1 = out1.transpose(1, 0, 2).reshape(B, r, l).transpose(2, 0, 1)     # (l, B, r)
    out2 = np.matmul(out1, w2.transpose(0, 2, 1))                            # (l, B, s)
    return out2.transpose(1, 2, 0).reshape(B, l * s)


CPU_TIMES = {}   # name -> median thread CPU seconds of the last round_robin call


def bench_products(n, batch, dtype, nblocks_list, repeat, with_bsr_large):
    rng = np.random.default_rng(0)
    rows = []
    Xr = rng.standard_normal((batch, n)).astype(dtype)        # (batch, n) like fly
    Xc = np.ascontiguousarray(Xr.T)                           # (n, batch) ours
    W = None
    for b in nblocks_list:
        lay = make_layout((n, n), (b, b))
        M = sparseopt.MonarchMatrix(rng.standard_normal(lay.L_shape).astype(dtype),
                                    rng.standard_normal(lay.R_shape).astype(dtype))
        W = M.todense()
        # the anchors compute the same matrix
        ref = fly_bmm(Xr[:4], M.R_blocks, M.L_blocks)
        tol = (1e-4 if dtype == np.float32 else 1e-12) * np.abs(ref).max()
        np.testing.assert_allclose(ref, (W @ Xc[:, :4]).T, rtol=0, atol=tol)
        np.testing.assert_allclose(M.matmul(Xc[:, :4]), W @ Xc[:, :4], rtol=0, atol=tol)
        fns = {
            "dense": lambda W=W: Xr @ W.T,
            "fly_bmm": lambda M=M: fly_bmm(Xr, M.R_blocks, M.L_blocks),
            "ours_blockdiag": lambda M=M: M.matmul(Xc, kernel="blockdiag"),
            "ours_bmm": lambda M=M: M.matmul(Xc, kernel="bmm"),
        }
        if with_bsr_large or b >= 16:
            fns["ours_bsr"] = lambda M=M: M.matmul(Xc, kernel="bsr")
        t = round_robin(fns, repeat if b >= 16 else max(2, repeat // 2), cpu_times=CPU_TIMES)
        flop_ratio = (n * n) / lay.n_params
        rows.append({"nblocks": b, "block": n // b, "flop_ratio": flop_ratio, **t,
                     "cpu": dict(CPU_TIMES),
                     "gflops_blockdiag": lay.flops(batch) / t["ours_blockdiag"] / 1e9,
                     "gflops_dense": 2 * n * n * batch / t["dense"] / 1e9})
        print(dtype.__name__, b, {k: f"{v:.4f}" for k, v in t.items()}, flush=True)
    return rows


def bench_matvec(n, dtype, b, repeat):
    rng = np.random.default_rng(1)
    lay = make_layout((n, n), (b, b))
    M = sparseopt.MonarchMatrix(rng.standard_normal(lay.L_shape).astype(dtype),
                                rng.standard_normal(lay.R_shape).astype(dtype))
    W = M.todense()
    x = rng.standard_normal(n).astype(dtype)
    fns = {"dense": lambda: W @ x,
           "fly_bmm": lambda: fly_bmm(x[None, :], M.R_blocks, M.L_blocks),
           "ours_blockdiag": lambda: M @ x}
    return round_robin(fns, 20 * repeat, cpu_times=CPU_TIMES)


def bench_projection(n, b, repeat, with_svd_anchor):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((n, n))
    lay = make_layout((n, n), (b, b))

    def full_svd_anchor():
        U, S, Vt = np.linalg.svd(dense_to_slabs(A, lay), full_matrices=False)
        return U[..., :1] * np.sqrt(S[..., None, :1]), np.sqrt(S[..., :1, None]) * Vt[..., :1, :]

    fns = {"ours": lambda: sparseopt.monarch_project(A, b)}
    if with_svd_anchor:
        fns["batched_full_svd"] = full_svd_anchor
    t = round_robin(fns, repeat, cpu_times=CPU_TIMES)
    M = sparseopt.monarch_project(A, b)
    err = float(np.linalg.norm(M.todense() - A) / np.linalg.norm(A))
    return t, err


def write_markdown(path, meta, prods, matvec, proj):
    L = []
    L.append("# Monarch matrices: benchmark against the anchors\n")
    L.append("Generated by `asv_benchmarks/compare_monarch.py` (do not edit by hand).\n")
    L.append(f"- machine: {meta['cpu_count']} CPUs (`os.cpu_count()`), {meta['platform']}; "
             f"load average at start {meta['load_start']}, at end {meta['load_end']}")
    L.append(f"- numpy {np.__version__}, numba {numba.__version__}; ONE thread for "
             "BLAS (threadpoolctl) and Numba")
    L.append(f"- n = {meta['n']}, batch = {meta['batch']}; median of {meta['repeat']} "
             "round-robin runs (order shuffled every round); ratios are within this run\n")
    L.append("The machine is shared by several jobs: absolute times drift, ratios taken "
             "round-robin in one run are the reliable part.\n")
    for dtype, rows in prods.items():
        L.append(f"## `M @ X`, {dtype}\n")
        L.append("| nblocks | block | FLOP ratio | dense | fly bmm (anchor) | ours blockdiag | "
                 "ours bsr | ours bmm | dense / blockdiag | fly / blockdiag | "
                 "target dense/ours >= FLOP/2 |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            sp_dense = r["dense"] / r["ours_blockdiag"]
            sp_fly = r["fly_bmm"] / r["ours_blockdiag"]
            bsr = f"{r['ours_bsr']:.4f} s" if "ours_bsr" in r else "not run"
            ok = "met" if sp_dense >= r["flop_ratio"] / 2 else "MISSED"
            L.append(f"| {r['nblocks']} | {r['block']} | {r['flop_ratio']:.0f} | "
                     f"{r['dense']:.4f} s | {r['fly_bmm']:.4f} s | {r['ours_blockdiag']:.4f} s | "
                     f"{bsr} | {r['ours_bmm']:.4f} s | **{sp_dense:.1f}x** | "
                     f"**{sp_fly:.2f}x** | {ok} |")
        L.append("")
        cpu = [(r["nblocks"], r["cpu"]["dense"], r["cpu"]["ours_blockdiag"]) for r in rows]
        L.append("Same runs, median thread CPU time (not inflated by the time slices of "
                 "other jobs): dense / blockdiag "
                 + ", ".join(f"b={b}: {d / o:.1f}x ({d:.4f} s / {o:.4f} s)" for b, d, o in cpu)
                 + ".\n")
        L.append("Useful GFLOP/s (Monarch flop count) of the blockdiag kernel: "
                 + ", ".join(f"b={r['nblocks']}: {r['gflops_blockdiag']:.1f}" for r in rows)
                 + f"; dense GEMM runs at {rows[0]['gflops_dense']:.1f} GFLOP/s.")
        bsr_rows = [r for r in rows if "ours_bsr" in r]
        if bsr_rows:
            L.append("The shared generic BSR kernel against the fused kernel: "
                     + ", ".join(f"b={r['nblocks']}: {r['ours_bsr'] / r['ours_blockdiag']:.1f}x "
                                 "slower" for r in bsr_rows) + ".\n")
    L.append("## Matvec (batch 1)\n")
    L.append("| dtype | nblocks | dense | fly bmm | ours | dense / ours | fly / ours |")
    L.append("|---|---|---|---|---|---|---|")
    for (dtype, b), t in matvec.items():
        L.append(f"| {dtype} | {b} | {t['dense'] * 1e3:.3f} ms | {t['fly_bmm'] * 1e3:.3f} ms | "
                 f"{t['ours_blockdiag'] * 1e3:.3f} ms | {t['dense'] / t['ours_blockdiag']:.1f}x | "
                 f"{t['fly_bmm'] / t['ours_blockdiag']:.1f}x |")
    L.append("\n## Projection `monarch_project(W, nblocks)` of a Gaussian matrix (float64)\n")
    L.append("| n | nblocks | ours | batched full SVD (anchor) | anchor / ours | "
             "relative error | target < 2 s |")
    L.append("|---|---|---|---|---|---|---|")
    for (n, b), (t, err) in proj.items():
        anchor = t.get("batched_full_svd")
        a = f"{anchor:.3f} s" if anchor else "not run"
        ratio = f"{anchor / t['ours']:.1f}x" if anchor else "-"
        target = ("met" if t["ours"] < 2 else "MISSED") if (n, b) == (4096, 64) else "-"
        L.append(f"| {n} | {b} | {t['ours']:.3f} s | {a} | {ratio} | {err:.4f} | {target} |")
    L.append("\n![speedup over dense](img/monarch_speedup.png)\n")
    path.write_text("\n".join(L) + "\n")


def plot(prods, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=100)
    for dtype, rows in prods.items():
        b = [r["nblocks"] for r in rows]
        ax.plot(b, [r["dense"] / r["ours_blockdiag"] for r in rows], "o-",
                label=f"ours blockdiag {dtype}")
        ax.plot(b, [r["dense"] / r["fly_bmm"] for r in rows], "s--",
                label=f"fly batched matmul {dtype}")
    rows = next(iter(prods.values()))
    ax.plot([r["nblocks"] for r in rows], [r["flop_ratio"] for r in rows], "k:",
            label="FLOP ratio")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("nblocks")
    ax.set_ylabel("speedup over dense matmul")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = ap.parse_args()
    if args.quick:
        args.n, args.batch, args.repeat = 1024, 256, 3
    numba.set_num_threads(1)
    meta = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "n": args.n,
            "batch": args.batch, "repeat": args.repeat,
            "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    nblocks_list = [4, 16, 64] if not args.quick else [4, 16, 32]
    with threadpool_limits(1):
        prods = {}
        for dtype in (np.float32, np.float64):
            prods[np.dtype(dtype).name] = bench_products(
                args.n, args.batch, dtype, nblocks_list, args.repeat,
                with_bsr_large=args.quick)
        matvec = {}
        for dtype in (np.float32, np.float64):
            matvec[(np.dtype(dtype).name, nblocks_list[-1])] = bench_matvec(
                args.n, dtype, nblocks_list[-1], args.repeat)
        proj = {}
        sizes = [(1024, 32), (args.n, nblocks_list[-1]), (args.n, 16)]
        for n, b in dict.fromkeys(sizes):
            proj[(n, b)] = bench_projection(n, b, 3 if n <= 1024 else 2,
                                            with_svd_anchor=(b * b == n))
            print("projection", n, b, proj[(n, b)], flush=True)
    meta["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out = ROOT / "docs" / "benchmarks_monarch.md"
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    plot(prods, ROOT / "docs" / "img" / "monarch_speedup.png")
    write_markdown(out, meta, prods, matvec, proj)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
