"""Tour: distributed sparse products and a Lasso on a Dask LocalCluster."""

import numpy as np
import scipy.sparse as sp

TITLE = "Distributed on Dask (reference: scipy.sparse, scikit-learn Lasso)"
ORDER = 90


def run(report):
    try:
        import distributed
    except ImportError:  # pragma: no cover - optional extra
        report.note("dask[distributed] not installed (pip install 'sparseopt[dist]'): skipped")
        return
    from sklearn.linear_model import Lasso as SkLasso

    from sparseopt._tour._report import timed
    from sparseopt.distributed import from_scipy, lasso, spgemm, spmm, spmm_t

    # In-process workers (threads): a process cluster takes seconds to start
    # and to load the kernels, too slow for the tour; the code is the same.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        report.note("LocalCluster: 2 in-process workers x 1 thread (processes=False for speed)")
        rng = np.random.default_rng(0)
        A = sp.random_array((20_000, 2_000), density=2e-3, format="csr", random_state=rng)
        dA = client.persist(from_scipy(A, 5_000))
        X = rng.standard_normal((2_000, 16))
        Z = rng.standard_normal((20_000, 16))
        for what, ours, ref in [
            ("spmm   A @ X, 4 row blocks", lambda: spmm(dA, X).compute(), lambda: A @ X),
            ("spmm_t A.T @ Z (tree-summed)", lambda: spmm_t(dA, Z).compute(), lambda: A.T @ Z),
        ]:
            ours()
            y, t = timed(ours, repeat=3)
            y_ref, t_ref = timed(ref, repeat=3)
            err = float(np.max(np.abs(y - y_ref)) / np.max(np.abs(y_ref)))
            report.compare(what + " max rel. diff", err, 0.0, t, t_ref, ref_name="scipy")
        B = sp.random_array((2_000, 500), density=5e-3, format="csr", random_state=rng)
        C, t = timed(lambda: spgemm(dA, B, method="summa").compute())
        C_ref, t_ref = timed(lambda: A @ B)
        report.compare("spgemm A @ B (SUMMA) max |diff|", float(abs(C - C_ref).max()), 0.0,
                       t, t_ref, ref_name="scipy")

        Xl = sp.random_array((2_000, 200), density=0.05, format="csr", random_state=rng)
        w = np.zeros(200)
        w[:10] = rng.standard_normal(10)
        y = Xl @ w + 0.01 * rng.standard_normal(2_000)
        dX = client.persist(from_scipy(Xl, 500))
        res, t = timed(lambda: lasso(dX, y, alpha=1e-3, tol=1e-4))
        sk, t_ref = timed(lambda: SkLasso(alpha=1e-3, tol=1e-4).fit(Xl, y))

        def obj(c, b):
            return 0.5 * np.mean((y - Xl @ c - b) ** 2) + 1e-3 * np.abs(c).sum()

        report.compare("Lasso objective (distributed FISTA)", obj(res.coef, res.intercept),
                       obj(sk.coef_, sk.intercept_), t, t_ref, ref_name="sklearn")
        report.note(f"{res.n_iter} FISTA iterations, {res.n_passes} distributed passes: "
                    "each pass is a scheduler round trip, so small problems are "
                    "latency-bound (see docs/benchmarks_distributed.md)")
