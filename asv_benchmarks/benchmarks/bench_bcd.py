"""asv benchmarks of block coordinate descent (sparseopt.bcd).

* ``GreedyCoordinateScaling``: per-iteration cost of greedy (GSL/GSQ) coordinate
  steps on a sparse L1 least-squares problem as ``p`` grows, for the heap path
  and the general O(p) loop.  The issue's target: the heap path grows
  sub-linearly in ``p`` (``track_us_per_iter``).
* ``RuleProgress``: suboptimality after a fixed number of iterations for each
  selection rule (the paper's per-iteration comparison).
* ``LabelPropagation``: message passing on forest blocks vs small blocks.
* ``LassoVsSklearn``: time to solve the same Lasso as scikit-learn.
"""

import numpy as np
import scipy.sparse as sp

from sparseopt import bcd


def _sparse_ls(n, p, nnz_per_col, seed):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, (p, nnz_per_col)).ravel()
    cols = np.repeat(np.arange(p), nnz_per_col)
    A = sp.coo_array((rng.standard_normal(p * nnz_per_col), (rows, cols)), shape=(n, p))
    A = sp.csr_array(A @ sp.diags_array(rng.uniform(0, 10, p) ** 1.5 + 0.1))
    b = A @ rng.standard_normal(p) + rng.standard_normal(n)
    return A, b


def _lattice(m):
    idx = np.arange(m * m).reshape(m, m)
    r = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    c = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    W = sp.coo_array((np.ones(len(r)), (r, c)), shape=(m * m, m * m))
    return sp.csr_array(W + W.T)


class GreedyCoordinateScaling:
    params = ([1_000, 10_000, 100_000, 1_000_000], ["heap", "general"])
    param_names = ("p", "path")
    timeout = 300
    n_steps = 20_000

    def setup(self, p, path):
        if path == "general" and p > 100_000:
            raise NotImplementedError("the O(p) loop is too slow at this size")
        A, b = _sparse_ls(p, p, 5, 0)
        self.prob = bcd.least_squares(A, b, l1=0.01 * np.abs(A.T @ b).max())
        self.fast = path == "heap"
        self.steps = self.n_steps if self.fast else 200
        bcd.minimize(self.prob, rule="gsl", max_iter=5, tol=0, fast=self.fast)

    def _run(self):
        return bcd.minimize(self.prob, rule="gsl", max_iter=self.steps, tol=0,
                            fast=self.fast, check_every=self.steps)

    def time_greedy_steps(self, p, path):
        self._run()

    def track_us_per_iter(self, p, path):
        res = self._run()
        return 1e6 * res.timings["loop"] / res.n_iter

    track_us_per_iter.unit = "microseconds"

    def peakmem_greedy_steps(self, p, path):
        self._run()


class RuleProgress:
    params = (["cyclic", "random", "lipschitz", "gs", "gsl", "gsd", "gsq"],
              ["lipschitz", "matrix"])
    param_names = ("rule", "update")
    timeout = 300

    def setup(self, rule, update):
        A, b = _sparse_ls(1000, 500, 20, 1)
        self.prob = bcd.least_squares(A, b)
        x = np.linalg.lstsq(A.toarray(), b, rcond=None)[0]
        self.fstar = 0.5 * float(np.sum((A @ x - b) ** 2))
        bcd.minimize(self.prob, partition="sort", block_size=5, rule=rule,
                     update=update, max_iter=2, tol=0)

    def _run(self, rule, update):
        return bcd.minimize(self.prob, partition="sort", block_size=5, rule=rule,
                            update=update, max_iter=300, tol=0, random_state=0)

    def time_300_iterations(self, rule, update):
        self._run(rule, update)

    def track_relative_suboptimality(self, rule, update):
        return (self._run(rule, update).objective[-1] - self.fstar) / self.fstar

    track_relative_suboptimality.unit = "relative"


class LabelPropagation:
    params = (["red-black", "tree", "greedy-tree", "blocks-of-5"],)
    param_names = ("blocks")
    timeout = 300

    def setup(self, blocks):
        rng = np.random.default_rng(0)
        lab = -np.ones(2500, dtype=np.int64)
        idx = rng.choice(2500, 100, replace=False)
        lab[idx] = (idx % 50 < 25).astype(np.int64)
        self.prob = bcd.label_propagation(_lattice(50), lab, reg=1e-3)
        if blocks == "blocks-of-5":
            self.kw = dict(partition="variable", block_size=5, rule="gsq",
                           update="matrix")
        else:
            self.kw = dict(partition=blocks, rule="gsl" if blocks != "tree" else "gsq",
                           update="message-passing")
        self.xs = sp.linalg.spsolve(sp.csc_matrix(self.prob.Q), self.prob.c)
        self.fstar = float(0.5 * self.xs @ (self.prob.Q @ self.xs) - self.prob.c @ self.xs
                           + self.prob.const)
        bcd.minimize(self.prob, max_iter=2, tol=0, **self.kw)

    def _run(self):
        return bcd.minimize(self.prob, max_iter=100, tol=0, **self.kw)

    def time_100_iterations(self, blocks):
        self._run()

    def track_relative_suboptimality(self, blocks):
        return (self._run().objective[-1] - self.fstar) / abs(self.fstar)

    track_relative_suboptimality.unit = "relative"


class LassoVsSklearn:
    params = ([0.1, 0.01], ["sparseopt", "sklearn"])
    param_names = ("l1_over_l1max", "library")
    timeout = 300

    def setup(self, frac, library):
        self.A, self.b = _sparse_ls(5000, 2000, 25, 4)
        self.l1 = frac * float(np.abs(self.A.T @ self.b).max())
        self.prob = bcd.least_squares(self.A, self.b, l1=self.l1)
        if library == "sparseopt":
            bcd.minimize(self.prob, rule="gsq", max_iter=5, tol=0)

    def time_solve(self, frac, library):
        if library == "sparseopt":
            bcd.minimize(self.prob, rule="gsq", tol=1e-8, max_iter=10**7)
        else:
            from sklearn.linear_model import Lasso

            Lasso(alpha=self.l1 / self.A.shape[0], fit_intercept=False, tol=1e-10,
                  max_iter=100000).fit(self.A, self.b)
