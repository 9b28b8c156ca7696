"""Tour: sparse Bayesian learning against scikit-learn's ARDRegression."""

from functools import reduce

import numpy as np

from sparseopt._tour._report import timed

TITLE = "Sparse Bayesian learning (RVM / ARD, Kronecker SBL, RVC)"
ORDER = 50


def _nmse_db(w_hat, w):
    return 10 * np.log10(np.sum((w_hat - w) ** 2) / np.sum(w**2))


def run(report):
    import scipy.linalg  # noqa: F401  (load every BLAS before limiting it)
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    import sparseopt.bayes  # noqa: F401

    # small dense products everywhere: one BLAS thread for every library
    # (extra threads only slow these problems down on a shared machine)
    with threadpool_limits(limits=1, user_api="blas"):
        _run(report)
    report.note("all solvers ran with single-threaded BLAS")


def _run(report):
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.linear_model import ARDRegression, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from sparseopt.bayes import (
        RelevanceVectorClassifier,
        SparseBayesianRegression,
        kronecker_sbl,
        log_marginal_likelihood,
    )

    # 1. diabetes: same optimum as ARDRegression
    X, y = load_diabetes(return_X_y=True)
    SparseBayesianRegression().fit(X[:50], y[:50])      # JIT warm-up
    ours, t_ours = timed(lambda: SparseBayesianRegression(tol=1e-6).fit(X, y))
    ard, t_ard = timed(lambda: ARDRegression(tol=1e-6, max_iter=2000).fit(X, y))
    Xc, yc = X - X.mean(0), y - y.mean()
    lam = np.where(ard.lambda_ < ard.threshold_lambda, ard.lambda_, np.inf)
    report.compare("diabetes: log evidence", float(ours.log_marginal_likelihood_),
                   float(log_marginal_likelihood(Xc, yc, lam, 1 / ard.alpha_)),
                   t_ours, t_ard, ref_name="ARDRegression")
    diff = np.abs(ours.predict(X) - ard.predict(X)).max() / np.abs(ard.predict(X)).max()
    report.note(f"max relative difference of the predictions: {diff:.1e}; "
                f"relevant features {ours.active_.tolist()}")

    # 2. the recovery problem
    rng = np.random.default_rng(0)
    n, p, k = 200, 1000, 20
    X = rng.standard_normal((n, p))
    X /= np.linalg.norm(X, axis=0)
    w = np.zeros(p)
    support = rng.choice(p, k, replace=False)
    w[support] = rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 1.5, k)
    y = X @ w
    y += np.linalg.norm(y) / np.sqrt(n) * 0.1 * rng.standard_normal(n)
    ours, t_ours = timed(lambda: SparseBayesianRegression(fit_intercept=False).fit(X, y))
    ard, t_ard = timed(lambda: ARDRegression(fit_intercept=False).fit(X, y))
    report.compare("n=200, p=1000, k=20, 20 dB: NMSE (dB)",
                   round(float(_nmse_db(ours.coef_, w)), 2),
                   round(float(_nmse_db(ard.coef_, w)), 2), t_ours, t_ard,
                   ref_name="ARDRegression")
    top = set(np.argsort(-np.abs(ours.coef_))[:k]) == set(support)
    report.note(f"true support = 20 largest coefficients: {top}")

    # 3. Kronecker SBL against classic SBL on the explicit product
    N, M = 10, 6
    factors = [rng.standard_normal((M, N)) / np.sqrt(M) for _ in range(3)]
    xs = []
    for _ in range(3):
        xi = np.zeros(N)
        xi[rng.choice(N, 2, replace=False)] = rng.standard_normal(2)
        xs.append(xi)
    x = reduce(np.kron, xs)
    yk = reduce(np.kron, factors) @ x
    s2 = float(np.mean(yk**2) * 1e-2)
    yk = yk + np.sqrt(s2) * rng.standard_normal(yk.size)
    svd, t_svd = timed(lambda: kronecker_sbl(yk, factors, noise_variance=s2))
    classic, t_cl = timed(lambda: kronecker_sbl(yk, factors, method="classic",
                                                noise_variance=s2))
    report.compare(f"Kronecker SBL (p={N**3}, m={M**3}, 20 dB): NMSE (dB)",
                   round(float(_nmse_db(svd.x, x)), 2),
                   round(float(_nmse_db(classic.x, x)), 2), t_svd, t_cl,
                   ref_name="classic SBL on the explicit product")

    # 4. relevance vector classification
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = StandardScaler().fit_transform(Xb)
    rvc, t_rvc = timed(lambda: RelevanceVectorClassifier().fit(Xb, yb))
    lr, t_lr = timed(lambda: LogisticRegression(max_iter=1000).fit(Xb, yb))
    report.compare("breast cancer: training accuracy", round(rvc.score(Xb, yb), 4),
                   round(lr.score(Xb, yb), 4), t_rvc, t_lr,
                   ref_name="LogisticRegression")
    report.note(f"the RVM uses {rvc.active_[0].size} of 30 features")
