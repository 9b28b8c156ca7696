"""Tour: entropic optimal transport (Sinkhorn, Sinkhorn-Newton-Sparse) beside POT."""

import warnings

import numpy as np

TITLE = "Entropic optimal transport: Sinkhorn and SNS (reference: POT)"
ORDER = 40


def run(report):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one thread for POT's BLAS too: same footing
        _run(report)


def _run(report):
    from sparseopt._tour._report import timed
    from sparseopt.ot import cost_matrix, sinkhorn, sinkhorn_newton_sparse, wasserstein_grid

    try:
        import ot
    except ImportError:  # pragma: no cover - POT is a test dependency
        ot = None
    n = 600
    rng = np.random.default_rng(n)
    M = cost_matrix(rng.random((n, 2)), rng.random((n, 2)), scale="max")
    a = b = np.full(n, 1.0 / n)
    tol = 1e-8
    report.note(f"{n} x {n} uniform points in the unit square, squared Euclidean cost "
                f"(max 1), target L1 marginal error {tol:g}")
    small = M[:50, :50]
    sinkhorn_newton_sparse(None, None, small, 1e-2)  # compile or load the JIT cache
    sinkhorn(None, None, small, 1e-2)
    for reg in (1e-2, 1e-3):
        res, t = timed(sinkhorn_newton_sparse, a, b, M, reg, tol=tol)
        sk, t_sk = timed(sinkhorn, a, b, M, reg, tol=tol)
        report.note(f"reg = {reg:g}: SNS {res.n_sinkhorn} Sinkhorn + {res.n_newton} Newton "
                    f"steps (~{np.mean(res.history['nnz_per_row']):.0f} kept entries/row); "
                    f"our Sinkhorn {sk.n_sinkhorn} iterations in {t_sk * 1e3:.0f} ms")
        if ot is None:
            report.compare(f"<P, M> at reg {reg:g}", res.cost, sk.cost, t, t_sk,
                           ref_name="our Sinkhorn")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P_ref, t_ref = timed(ot.sinkhorn, a, b, M, reg, stopThr=tol / np.sqrt(n),
                                 numItermax=100_000)
        report.compare(f"SNS <P, M> at reg {reg:g}", res.cost, float(np.sum(P_ref * M)),
                       t, t_ref, ref_name="POT ot.sinkhorn")
        report.compare("  max |P_SNS - P_POT|", float(np.abs(res.plan - P_ref).max()), 0.0,
                       ref_name="POT")
    if ot is not None:
        exact, t_emd = timed(lambda: float(np.sum(ot.emd(a, b, M) * M)))
        report.compare(f"entropic cost at reg {reg:g} vs the exact (reg -> 0) cost",
                       res.cost, exact, t, t_emd, ref_name="POT ot.emd")
    from sklearn.datasets import load_digits

    images = load_digits().images
    for p in (1, 2):
        d, t = timed(wasserstein_grid, images[0], images[10], 0.05, p=p)
        if ot is None:
            report.compare(f"digits 0 vs 10: entropic W{p}", d, float("nan"), t)
            continue
        from sparseopt.ot import grid_cost

        Mg = grid_cost((8, 8), p=p)
        x, y = images[0].ravel(), images[10].ravel()
        ref, t_ref = timed(lambda Mg=Mg, x=x, y=y, p=p: float(
            np.sum(ot.emd(x / x.sum(), y / y.sum(), Mg) * Mg) ** (1 / p)))
        report.compare(f"digits 0 vs 10: W{p} (entropic, reg 0.05 px^p)", d, ref, t, t_ref,
                       ref_name="POT ot.emd (exact)")
