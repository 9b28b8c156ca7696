"""Tour: sparse regression beside scikit-learn on the same objectives."""


import numpy as np
import scipy.sparse as sp

TITLE = "Sparse regression: Lasso, elastic net, group, MCP/SCAD/L0, logistic, paths"
ORDER = 20


def _objective(X, y, w, b, alpha):
    r = y - X @ w - b
    return 0.5 * float(r @ r) / len(y) + alpha * float(np.abs(w).sum())


def run(report):
    from sklearn import linear_model as sk

    from sparseopt import linear_model as lm
    from sparseopt._tour._report import timed

    rng = np.random.default_rng(0)
    n, p = 1000, 5000
    X = sp.random(n, p, density=0.02, format="csc", random_state=0,
                  data_rvs=rng.standard_normal)
    w_true = np.zeros(p)
    w_true[rng.choice(p, 50, replace=False)] = rng.standard_normal(50)
    y = X @ w_true + 0.3 * rng.standard_normal(n) + 1.0
    alpha = float(np.max(np.abs(X.T @ (y - y.mean())))) / n / 50
    lm.Lasso(alpha=1.0).fit(X[:30], y[:30])          # load the JIT cache

    # 1. Lasso on a sparse design, same relative-gap accuracy
    ours, t = timed(lambda: lm.Lasso(alpha=alpha, tol=1e-8).fit(X, y), repeat=3)
    ref, t_ref = timed(lambda: sk.Lasso(alpha=alpha, tol=5e-9, max_iter=10**5)
                       .fit(X, y), repeat=3)
    report.note(f"Lasso, sparse X {n}x{p} (2% dense), alpha = alpha_max/50, relative "
                f"duality gap {ours.stop_crit_:.1e} (working sets + Anderson + "
                "gap-safe screening)")
    report.compare("objective", _objective(X, y, ours.coef_, ours.intercept_, alpha),
                   _objective(X, y, ref.coef_, ref.intercept_, alpha), t, t_ref,
                   ref_name="sklearn")
    report.compare("non-zeros", int(np.count_nonzero(ours.coef_)),
                   int(np.count_nonzero(ref.coef_)), ref_name="sklearn")

    # 2. the 30-alpha path with warm starts
    Xd = X[:500, :600].toarray(order="F")
    yc = y[:500] - y[:500].mean()
    path, t = timed(lambda: lm.lasso_path(Xd, yc, n_alphas=30, eps=1e-2, tol=1e-6))
    ref_path, t_ref = timed(lambda: sk.lasso_path(Xd, yc, alphas=path.alphas,
                                                   tol=5e-7, max_iter=10**5))
    worst = max(abs(_objective(Xd, yc, path.coefs[:, k], 0, a)
                    - _objective(Xd, yc, ref_path[1][:, k], 0, a))
                / _objective(Xd, yc, ref_path[1][:, k], 0, a)
                for k, a in enumerate(path.alphas))
    report.compare("lasso_path (30 alphas, dense 500x600): worst relative objective "
                   "difference", f"{worst:.1e}", "-", t, t_ref, ref_name="sklearn")

    # 3. logistic regression
    yb = (y > np.median(y)).astype(int)
    a_log = 0.002
    ours, t = timed(lambda: lm.SparseLogisticRegression(
        alpha=a_log, tol=1e-8, fit_intercept=False).fit(X, yb))
    ref, t_ref = timed(lambda: sk.LogisticRegression(
        l1_ratio=1.0, C=1 / (a_log * n), solver="liblinear", tol=1e-8,
        fit_intercept=False, max_iter=10**4).fit(X, yb))

    def logloss(w):
        z = X @ w
        return float(np.mean(np.logaddexp(0, -(2 * yb - 1) * z))
                     + a_log * np.abs(w).sum())

    report.compare("L1 logistic regression objective (no intercept)",
                   logloss(ours.coef_[0]), logloss(ref.coef_[0]), t, t_ref,
                   ref_name="sklearn liblinear")

    # 4. nonconvex penalties: less shrinkage of the large coefficients
    Xn = rng.standard_normal((500, 200))
    beta = np.r_[rng.uniform(1, 2, 10), np.zeros(190)]
    yn = Xn @ beta + 0.5 * rng.standard_normal(500)
    a = 0.1
    fits = {name: est.fit(Xn, yn) for name, est in [
        ("Lasso", lm.Lasso(alpha=a)), ("MCP", lm.MCPRegression(alpha=a, gamma=3.0)),
        ("SCAD", lm.SCADRegression(alpha=a)), ("L0", lm.L0Regression(alpha=a ** 2))]}
    report.note("dense 500x200, 10 true non-zeros, alpha = 0.1: estimation error "
                "||w - w*|| and support size (skglm's MCP/SCAD agree to 1e-6 in the "
                "tests; its JIT is too slow for the tour)")
    for name, m in fits.items():
        report.compare(f"{name}: error / support",
                       f"{np.linalg.norm(m.coef_ - beta):.3f} / "
                       f"{np.count_nonzero(m.coef_)}", "- / 10", ref_name="truth")
