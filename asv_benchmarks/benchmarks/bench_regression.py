"""asv benchmarks of the sparse linear models beside scikit-learn, skglm and celer.

Problems as in issue 5 but smaller, so a full asv run stays short (the
comparison script ``compare_regression.py`` runs the issue's sizes): a wide
sparse design (density 0.5 %, N(0, 1) entries) and a dense AR(1)-correlated
design (rho = 0.9), y = X w* + noise at SNR 3.  The JIT is warmed in ``setup``.
"""

import warnings

import numpy as np
import scipy.sparse as sp


def _target(X, w, rng):
    signal = X @ w
    noise = rng.standard_normal(X.shape[0])
    return signal + noise * np.linalg.norm(signal) / (3 * np.linalg.norm(noise))


def _problem(kind):
    rng = np.random.default_rng(0)
    if kind == "sparse":
        n, p = 2000, 20_000
        k = int(5e-3 * n * p)
        X = sp.csc_matrix((rng.standard_normal(k), (rng.integers(0, n, k),
                                                    rng.integers(0, p, k))),
                          shape=(n, p))
        X.sum_duplicates()
    else:
        n, p = 500, 2000
        X = np.empty((n, p), order="F")
        X[:, 0] = rng.standard_normal(n)
        for j in range(1, p):
            X[:, j] = 0.9 * X[:, j - 1] + np.sqrt(1 - 0.81) * rng.standard_normal(n)
    w = np.zeros(p)
    w[rng.choice(p, 50, replace=False)] = rng.standard_normal(50)
    return X, _target(X, w, rng)


def _warm():
    from sparseopt.linear_model import Lasso, lasso_path

    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 30))
    y = rng.standard_normal(20)
    Lasso(alpha=0.01).fit(X, y)
    lasso_path(sp.csc_matrix(X), y, n_alphas=3)


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


class LassoPath:
    """50-alpha path alpha_max -> alpha_max / 100 (sparseopt tol = relative gap 1e-6)."""

    params = (["sparse", "dense"], ["sparseopt", "sklearn", "skglm", "celer"])
    param_names = ("design", "library")
    timeout = 600

    def setup(self, design, library):
        self.X, self.y = _problem(design)
        amax = np.max(np.abs(self.X.T @ self.y)) / self.X.shape[0]
        self.alphas = np.geomspace(amax, amax / 100, 50)
        if library in ("skglm", "celer"):
            try:
                __import__(library)
            except ImportError as exc:  # pragma: no cover
                raise NotImplementedError(f"{library} not installed") from exc
            if library == "skglm":
                self._run(design, library)  # compile skglm's jitclasses
        _warm()

    def _run(self, design, library):
        if library == "sparseopt":
            from sparseopt.linear_model import lasso_path

            return _quiet(lasso_path, self.X, self.y, alphas=self.alphas, tol=1e-6).coefs
        if library == "sklearn":
            from sklearn.linear_model import lasso_path

            return _quiet(lasso_path, self.X, self.y, alphas=self.alphas, tol=5e-7,
                          max_iter=100_000)[1]
        if library == "celer":
            from celer import celer_path

            return _quiet(celer_path, self.X, self.y, "lasso", alphas=self.alphas,
                          tol=1e-8, max_epochs=100_000)[1]
        from skglm import Lasso

        est = Lasso(fit_intercept=False, tol=1e-9, max_epochs=100_000)
        return _quiet(est.path, self.X, self.y, self.alphas)[1]

    def time_path(self, design, library):
        self._run(design, library)

    def peakmem_path(self, design, library):
        self._run(design, library)


class SingleFit:
    """One fit of each sparseopt model at a moderate alpha (time, memory, iterations)."""

    params = (["sparse", "dense"],
              ["lasso", "enet", "group", "mcp", "scad", "l0", "logistic"])
    param_names = ("design", "model")
    timeout = 300

    def setup(self, design, model):
        from sparseopt import linear_model as lm

        X, y = _problem(design)
        amax = np.max(np.abs(X.T @ (y - y.mean()))) / X.shape[0]
        self.X, self.y = X, y
        self.est = {
            "lasso": lm.Lasso(alpha=amax / 20, tol=1e-6),
            "enet": lm.ElasticNet(alpha=amax / 10, l1_ratio=0.5, tol=1e-6),
            "group": lm.GroupLasso(groups=5, alpha=amax / 10, tol=1e-6),
            "mcp": lm.MCPRegression(alpha=amax / 20, gamma=3.0, tol=1e-6),
            "scad": lm.SCADRegression(alpha=amax / 20, tol=1e-6),
            "l0": lm.L0Regression(alpha=amax ** 2 / 400, tol=1e-6),
            "logistic": lm.SparseLogisticRegression(alpha=amax / 20 / np.std(y),
                                                    tol=1e-6),
        }[model]
        if model == "logistic":
            self.y = (y > np.median(y)).astype(int)
        _quiet(self.est.fit, X[:50], self.y[:50])   # JIT warm-up

    def time_fit(self, design, model):
        _quiet(self.est.fit, self.X, self.y)

    def peakmem_fit(self, design, model):
        _quiet(self.est.fit, self.X, self.y)

    def track_n_iter(self, design, model):
        return _quiet(self.est.fit, self.X, self.y).n_iter_

    def track_epochs(self, design, model):
        return _quiet(self.est.fit, self.X, self.y).result_.n_epochs


class EasyLasso:
    """Single Lasso fit from zero on a moderately sparse design (the issue's "easy"
    problem, 2000 x 8000 at density 1 %): sparseopt must not be slower than
    scikit-learn here (Python-level set-up and the outer loop dominate)."""

    params = ([20, 100], ["sparseopt", "sklearn"])
    param_names = ("alpha_max_over", "library")
    timeout = 300

    def setup(self, ratio, library):
        rng = np.random.default_rng(1)
        n, p = 2000, 8000
        k = int(1e-2 * n * p)
        X = sp.csc_matrix((rng.standard_normal(k), (rng.integers(0, n, k),
                                                    rng.integers(0, p, k))),
                          shape=(n, p))
        X.sum_duplicates()
        w = np.zeros(p)
        w[rng.choice(p, 100, replace=False)] = rng.standard_normal(100)
        self.X, self.y = X, _target(X, w, rng)
        self.alpha = np.max(np.abs(X.T @ self.y)) / n / ratio
        if library == "sparseopt":
            from sparseopt.linear_model import Lasso
            est = Lasso(alpha=self.alpha, fit_intercept=False, tol=1e-6, max_iter=500)
        else:
            from sklearn.linear_model import Lasso
            est = Lasso(alpha=self.alpha, fit_intercept=False, tol=5e-7,
                        max_iter=100_000)
        self.est = est
        _warm()

    def time_fit(self, ratio, library):
        _quiet(self.est.fit, self.X, self.y)

    def peakmem_fit(self, ratio, library):
        _quiet(self.est.fit, self.X, self.y)

    def track_n_iter(self, ratio, library):
        return int(_quiet(self.est.fit, self.X, self.y).n_iter_)
