"""Tour: robust PCA (principal component pursuit and AccAltProj) on synthetic data."""

import numpy as np

TITLE = "Robust PCA (reference: the planted decomposition, scikit-learn PCA, pyrpca)"
ORDER = 60


def _problem(n, r, frac, amp, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, n))
    a = np.abs(L0).mean() if amp is None else amp
    S0 = np.where(rng.random((n, n)) < frac, rng.uniform(-a, a, (n, n)), 0.0)
    return L0, S0


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run(report):
    import scipy.linalg  # load scipy's own BLAS before limiting it
    import scipy.sparse.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    try:
        import pyrpca  # noqa: F401
    except ImportError:
        pass
    # single-threaded BLAS for everyone: small products do not pay for threads
    # and a busy 2-core host makes spinning BLAS threads very slow
    with threadpool_limits(1, user_api="blas"):
        _run(report)


def _run(report):
    from sklearn.decomposition import PCA

    from sparseopt._tour._report import timed
    from sparseopt.decomposition import RobustPCA, robust_pca

    n, r = 300, 15
    L0, S0 = _problem(n, r, 0.05, 500.0)
    M = L0 + S0
    report.note(f"M = L0 + S0: {n}x{n}, rank {r}, 5 % gross errors U[-500, 500]")
    robust_pca(M[:50, :50], random_state=0)  # compile the fused kernels
    res, t = timed(robust_pca, M, random_state=0)
    S = res.sparse.to_scipy() if hasattr(res.sparse, "to_scipy") else res.sparse
    report.compare("IALM rel. error of L vs planted", _rel(res.low_rank, L0), 0.0, t,
                   ref_name="planted")
    report.compare("IALM rel. error of S vs planted", _rel(S.toarray(), S0), 0.0,
                   ref_name="planted")
    report.note(f"{res.n_iter} iterations, rank {res.rank}, {res.n_svd} partial SVDs; "
                f"S returned as {type(res.sparse).__name__} with {S.nnz} nonzeros")
    full, t_full = timed(robust_pca, M, svd_method="full", random_state=0)
    report.compare("same IALM with a full SVD: iterations", full.n_iter, res.n_iter,
                   t, t_full, ref_name="full-SVD run")
    try:
        from pyrpca import rpca_pcp_ialm

        (Lp, _), t_p = timed(rpca_pcp_ialm, M, 1 / np.sqrt(n), verbose=False)
        report.compare("rel. error of L", _rel(res.low_rank, L0), _rel(Lp, L0), t, t_p,
                       ref_name="pyrpca")
    except ImportError:
        report.note("pyrpca not installed (pip install sparseopt[bench]): skipped")

    L0, S0 = _problem(n, 5, 0.1, None, seed=1)
    M = L0 + S0
    robust_pca(M[:50, :50], method="accaltproj", rank=5)
    res, t = timed(robust_pca, M, method="accaltproj", rank=5, random_state=0)
    ialm, t_i = timed(robust_pca, M, random_state=0)
    report.compare("rank 5, 10 % outliers: rel. error of L, AccAltProj vs IALM",
                   _rel(res.low_rank, L0), _rel(ialm.low_rank, L0), t, t_i,
                   ref_name="IALM")

    V0 = np.linalg.svd(L0, full_matrices=False)[2][:5]

    def gap(W):
        Q = np.linalg.qr(W.T)[0]
        return float(np.linalg.norm(Q - V0.T @ (V0 @ Q), 2))

    est, t = timed(lambda: RobustPCA(5, method="accaltproj", random_state=0).fit(M))
    pca, t_p = timed(lambda: PCA(5).fit(M))
    report.compare("RobustPCA subspace angle (sin) to the planted one", gap(est.components_),
                   gap(pca.components_), t, t_p, ref_name="sklearn PCA")
