"""asv benchmarks of robust PCA (issue 9).

``RobustPCAIALM``: principal component pursuit by inexact ALM on the Lin, Chen &
Ma protocol (rank n/20, 5 % gross errors U[-500, 500]) with each singular value
thresholding backend; the partial SVDs must keep the full SVD's iteration count
(``track_n_iter``) and accuracy (``track_rel_error_L``).  ``RobustPCAAltProj``:
accelerated AltProj in its regime (rank 5, 10 % outliers of L's size).  The
comparison with pyrpca, tensorly and the rpca port is ``compare_rpca.py``.
"""

import numpy as np

from sparseopt.decomposition import robust_pca


def _pcp_problem(n, r, frac, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, n))
    S0 = np.zeros((n, n))
    idx = rng.random((n, n)) < frac
    S0[idx] = rng.uniform(-500, 500, idx.sum())
    return L0, S0


def _altproj_problem(n, r, frac, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, n))
    a = np.abs(L0).mean()
    S0 = np.where(rng.random((n, n)) < frac, rng.uniform(-a, a, (n, n)), 0.0)
    return L0, S0


class RobustPCAIALM:
    params = ([500, 1000], ["randomized", "lanczos", "full"])
    param_names = ("n", "svd_method")
    timeout = 600

    def setup(self, n, svd_method):
        self.L0, S0 = _pcp_problem(n, n // 20, 0.05)
        self.M = self.L0 + S0
        robust_pca(self.M[:60, :60], random_state=0)  # warm the JIT
        self.res = robust_pca(self.M, svd_method=svd_method, random_state=0,
                              sparse_output=False)

    def time_robust_pca(self, n, svd_method):
        robust_pca(self.M, svd_method=svd_method, random_state=0, sparse_output=False)

    def peakmem_robust_pca(self, n, svd_method):
        robust_pca(self.M, svd_method=svd_method, random_state=0, sparse_output=False)

    def track_n_iter(self, n, svd_method):
        return self.res.n_iter

    def track_rel_error_L(self, n, svd_method):
        return float(np.linalg.norm(self.res.low_rank - self.L0) / np.linalg.norm(self.L0))


class RobustPCAAltProj:
    params = ([500, 1000], ["accaltproj", "ialm"])
    param_names = ("n", "method")
    timeout = 300

    def setup(self, n, method):
        self.L0, S0 = _altproj_problem(n, 5, 0.1)
        self.M = self.L0 + S0
        self.kw = {"rank": 5} if method == "accaltproj" else {}
        robust_pca(self.M[:60, :60], method=method, random_state=0, **self.kw)
        self.res = robust_pca(self.M, method=method, random_state=0,
                              sparse_output=False, **self.kw)

    def time_robust_pca(self, n, method):
        robust_pca(self.M, method=method, random_state=0, sparse_output=False, **self.kw)

    def peakmem_robust_pca(self, n, method):
        robust_pca(self.M, method=method, random_state=0, sparse_output=False, **self.kw)

    def track_n_iter(self, n, method):
        return self.res.n_iter

    def track_rel_error_L(self, n, method):
        return float(np.linalg.norm(self.res.low_rank - self.L0) / np.linalg.norm(self.L0))
