"""asv benchmarks of sparse Bayesian learning (issue: SBL / RVM / Kronecker SBL).

* ``SBLRegression``: the issue's recovery problem (n=200, k=20, 20 dB) for the
  fast (Tipping–Faul) and EM solvers, p up to 20000 for the fast solver (peak
  memory O(n·p + p·m), never the p × p covariance of ARDRegression).
* ``ARDReference``: scikit-learn's ARDRegression on the same problems (p ≤ 4000:
  its p × p covariance needs 3.2 GB at p = 20000).
* ``KroneckerSBL``: IRS-MIMO-style Kronecker problem (p=1728, m=512).
* ``RVC``: relevance vector classification on the breast-cancer data.
"""

from functools import reduce

import numpy as np
from threadpoolctl import threadpool_limits


def _recovery(p, n=200, k=20, snr_db=20.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X /= np.linalg.norm(X, axis=0)
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.choice([-1.0, 1.0], k) * rng.uniform(
        0.5, 1.5, k)
    signal = X @ w
    sigma = np.linalg.norm(signal) / np.sqrt(n) * 10 ** (-snr_db / 20)
    return X, signal + sigma * rng.standard_normal(n), w


def _nmse_db(w_hat, w):
    return float(10 * np.log10(np.sum((w_hat - w) ** 2) / np.sum(w**2)))


class SBLRegression:
    params = (["fast", "em"], [1000, 4000, 20000])
    param_names = ("solver", "p")
    timeout = 300

    def setup(self, solver, p):
        if solver == "em" and p > 4000:
            raise NotImplementedError("EM-SBL needs a dense n × p work array per step")
        from sparseopt.bayes import sbl_regression

        self.fit = sbl_regression
        self.X, self.y, self.w = _recovery(p)
        self._limits = threadpool_limits(limits=1, user_api="blas")
        Xw, yw, _ = _recovery(50, n=20, k=3)
        self.fit(Xw, yw, solver=solver)      # JIT warm-up

    def teardown(self, solver, p):
        self._limits.restore_original_limits()

    def time_fit(self, solver, p):
        self.fit(self.X, self.y, solver=solver)

    def peakmem_fit(self, solver, p):
        self.fit(self.X, self.y, solver=solver)

    def track_nmse_db(self, solver, p):
        return _nmse_db(self.fit(self.X, self.y, solver=solver).x, self.w)

    track_nmse_db.unit = "dB"


class ARDReference:
    params = ([1000, 4000],)
    param_names = ("p",)
    timeout = 300

    def setup(self, p):
        from sklearn.linear_model import ARDRegression

        self.est = ARDRegression(fit_intercept=False)
        self.X, self.y, self.w = _recovery(p)
        self._limits = threadpool_limits(limits=1, user_api="blas")

    def teardown(self, p):
        self._limits.restore_original_limits()

    def time_fit(self, p):
        self.est.fit(self.X, self.y)

    def peakmem_fit(self, p):
        self.est.fit(self.X, self.y)

    def track_nmse_db(self, p):
        return _nmse_db(self.est.fit(self.X, self.y).coef_, self.w)

    track_nmse_db.unit = "dB"


class KroneckerSBL:
    params = (["svd", "am", "classic"],)
    param_names = ("method",)
    timeout = 300

    def setup(self, method):
        from sparseopt.bayes import kronecker_sbl

        rng = np.random.default_rng(0)
        self.factors = [rng.standard_normal((8, 12)) / np.sqrt(8) for _ in range(3)]
        xs = []
        for _ in range(3):
            x = np.zeros(12)
            x[rng.choice(12, 3, replace=False)] = rng.standard_normal(3)
            xs.append(x)
        self.x = reduce(np.kron, xs)
        signal = reduce(np.kron, self.factors) @ self.x
        self.s2 = float(np.mean(signal**2) * 1e-2)
        self.y = signal + np.sqrt(self.s2) * rng.standard_normal(signal.size)
        self.solve = kronecker_sbl
        self._limits = threadpool_limits(limits=1, user_api="blas")

    def teardown(self, method):
        self._limits.restore_original_limits()

    def time_fit(self, method):
        self.solve(self.y, self.factors, method=method, noise_variance=self.s2)

    def peakmem_fit(self, method):
        self.solve(self.y, self.factors, method=method, noise_variance=self.s2)

    def track_nmse_db(self, method):
        r = self.solve(self.y, self.factors, method=method, noise_variance=self.s2)
        return _nmse_db(r.x, self.x)

    track_nmse_db.unit = "dB"


class RVC:
    params = ([None, "rbf"],)
    param_names = ("kernel",)

    def setup(self, kernel):
        from sklearn.datasets import load_breast_cancer
        from sklearn.preprocessing import StandardScaler

        from sparseopt.bayes import RelevanceVectorClassifier

        X, self.y = load_breast_cancer(return_X_y=True)
        self.X = StandardScaler().fit_transform(X)
        self.est = RelevanceVectorClassifier(kernel=kernel)
        self.est.fit(self.X[:60], self.y[:60])  # JIT warm-up

    def time_fit(self, kernel):
        self.est.fit(self.X, self.y)

    def track_accuracy(self, kernel):
        return float(self.est.fit(self.X, self.y).score(self.X, self.y))
