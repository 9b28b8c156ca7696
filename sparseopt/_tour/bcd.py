"""Tour: block coordinate descent (Nutini, Laradji & Schmidt) beside its references."""

import warnings

import numpy as np
import scipy.sparse as sp

TITLE = "Block coordinate descent: greedy rules, message passing, active sets"
ORDER = 30


def _lattice(m):
    idx = np.arange(m * m).reshape(m, m)
    r = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    c = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    W = sp.coo_array((np.ones(len(r)), (r, c)), shape=(m * m, m * m))
    return sp.csr_array(W + W.T)


def run(report):
    from sklearn.linear_model import Lasso

    from sparseopt import bcd
    from sparseopt._tour._report import timed

    rng = np.random.default_rng(0)
    n, p = 2000, 1000
    A = sp.random(n, p, density=0.005, random_state=0, format="csr",
                  data_rvs=rng.standard_normal)
    b = A @ rng.standard_normal(p) + 0.1 * rng.standard_normal(n)
    l1 = 0.1 * float(np.abs(A.T @ b).max())

    # 1. Lasso by greedy GS-q coordinate descent on the heap path
    prob = bcd.least_squares(A, b, l1=l1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bcd.minimize(prob, rule="gsq", max_iter=5, tol=0)  # compile / load the JIT cache
    res, t = timed(lambda: bcd.minimize(prob, rule="gsq", tol=1e-8, max_iter=10**7))
    las, t_ref = timed(lambda: Lasso(alpha=l1 / n, fit_intercept=False, tol=1e-10,
                                     max_iter=100000).fit(A, b))
    w = las.coef_
    f_ref = 0.5 * float(np.sum((A @ w - b) ** 2)) + l1 * float(np.abs(w).sum())
    report.note(f"L1 least squares, sparse A {n}x{p}, l1 = l1_max/10; greedy GS-q "
                f"coordinate steps with an O(log p) max-heap ({res.n_iter} steps)")
    report.compare("objective", float(res.objective[-1]), f_ref, t, t_ref,
                   ref_name="sklearn Lasso")

    # 2. greedy rules vs random, per iteration (the paper's Fig. 4)
    As = sp.random(800, 400, density=0.02, random_state=1, format="csr",
                   data_rvs=rng.standard_normal)
    scaled = sp.csr_array(As @ sp.diags_array(rng.uniform(0, 10, 400) ** 1.5 + 0.1))
    bs = scaled @ rng.standard_normal(400) + rng.standard_normal(800)
    ls = bcd.least_squares(scaled, bs, l2=1e-3)
    x_star = np.linalg.solve((scaled.T @ scaled).toarray() + 1e-3 * np.eye(400),
                             scaled.T @ bs)
    f_star = 0.5 * float(np.sum((scaled @ x_star - bs) ** 2)) + 0.5e-3 * x_star @ x_star
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gaps = {rule: (bcd.minimize(ls, partition="sort", block_size=5, rule=rule,
                                    max_iter=100, tol=0, random_state=0).objective[-1]
                       - f_star) / f_star
                for rule in ("random", "cyclic", "gs", "gsl")}
    report.note("least squares with scaled columns, fixed blocks of 5 sorted by L_i "
                "(100 iterations) relative suboptimality " + ", ".join(f"{k.upper()} {v:.2e}"
                                                      for k, v in gaps.items()))

    # 3. label propagation: forest blocks solved by message passing
    lab = -np.ones(2500, dtype=np.int64)
    idx = rng.choice(2500, 100, replace=False)
    lab[idx] = (idx % 50 < 25).astype(np.int64)
    lp = bcd.label_propagation(_lattice(50), lab, reg=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bcd.minimize(lp, partition="tree", rule="gsq", update="message-passing",
                     max_iter=2, tol=0)
    res, t = timed(lambda: bcd.minimize(lp, partition="tree", rule="gsq",
                                        update="message-passing", tol=1e-10,
                                        max_iter=10000))
    xs, t_ref = timed(lambda: sp.linalg.spsolve(sp.csc_matrix(lp.Q), lp.c))
    f_ref = 0.5 * float(xs @ (lp.Q @ xs)) - float(lp.c @ xs) + lp.const
    report.note(f"label propagation on a 50x50 lattice: 2 tree blocks, exact solves by "
                f"message passing ({res.n_iter} block updates)")
    report.compare("objective", float(res.objective[-1]), f_ref, t, t_ref,
                   ref_name="scipy spsolve")

    # 4. active-set identification, then exact Newton: finite termination
    nn = bcd.least_squares(A, b, l1=l1, bounds=(0, None))
    res, t = timed(lambda: bcd.minimize(nn, partition="variable", block_size=20,
                                        rule="gsq", update="matrix", active_set=True,
                                        tol=1e-12, max_iter=5000))
    report.note(f"non-negative L1 least squares: free set identified at iteration "
                f"{res.active_set_iter}, converged (tol 1e-12) at iteration "
                f"{res.n_iter}, {res.support_size} non-zeros, {t * 1e3:.0f} ms")
