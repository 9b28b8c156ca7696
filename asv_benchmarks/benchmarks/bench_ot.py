"""asv benchmarks of entropic OT: sparseopt's Sinkhorn and SNS beside POT.

Problems as in issue 7: n uniform points in the unit square, squared Euclidean
cost scaled to max 1, uniform weights, target L1 marginal error 1e-8 (POT gets
``stopThr = tol / sqrt(n)`` on its L2 column error).  Sizes are kept moderate
so that a full asv run stays short; ``compare_ot.py`` runs the issue's n = 2000.
"""

import warnings

import numpy as np

from sparseopt.ot import cost_matrix, sinkhorn, sinkhorn_newton_sparse

TOL = 1e-8


def _problem(n):
    rng = np.random.default_rng(n)
    M = cost_matrix(rng.random((n, 2)), rng.random((n, 2)), scale="max")
    return np.full(n, 1.0 / n), np.full(n, 1.0 / n), M


def _pot_sinkhorn(a, b, M, reg):
    import ot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ot.sinkhorn(a, b, M, reg, stopThr=TOL / np.sqrt(len(a)),
                           numItermax=100_000, log=True)


class EntropicOT:
    params = ([500, 1000], [1e-2, 1e-3], ["sns", "sinkhorn", "pot"])
    param_names = ("n", "reg", "solver")
    timeout = 300

    def setup(self, n, reg, solver):
        if solver == "pot":
            try:
                import ot  # noqa: F401
            except ImportError as exc:  # pragma: no cover
                raise NotImplementedError("POT not installed") from exc
        self.a, self.b, self.M = _problem(n)
        a, b, M = _problem(40)
        sinkhorn_newton_sparse(a, b, M, 1e-2)  # warm the JIT
        sinkhorn(a, b, M, 1e-2)

    def _run(self, n, reg, solver):
        if solver == "sns":
            return sinkhorn_newton_sparse(self.a, self.b, self.M, reg, tol=TOL)
        if solver == "sinkhorn":
            return sinkhorn(self.a, self.b, self.M, reg, tol=TOL)
        return _pot_sinkhorn(self.a, self.b, self.M, reg)

    def time_solve(self, n, reg, solver):
        self._run(n, reg, solver)

    def peakmem_solve(self, n, reg, solver):
        self._run(n, reg, solver)

    def track_iterations(self, n, reg, solver):
        out = self._run(n, reg, solver)
        if solver == "pot":
            return out[1]["niter"] + 1
        return int(out.n_sinkhorn + out.n_newton)

    track_iterations.unit = "iterations"

    def track_marginal_error(self, n, reg, solver):
        out = self._run(n, reg, solver)
        P = out[0] if solver == "pot" else out.plan
        return float(np.abs(P.sum(1) - self.a).sum() + np.abs(P.sum(0) - self.b).sum())

    track_marginal_error.unit = "L1"


class SinkhornSweep:
    """Cost of one iteration: our fused sweep against POT's two matrix-vector products."""

    params = ([1000, 2000], ["sparseopt", "pot"])
    param_names = ("n", "library")

    def setup(self, n, library):
        self.a, self.b, self.M = _problem(n)
        sinkhorn(self.a[:10] * n / 10, self.b[:10] * n / 10, self.M[:10, :10], 1e-2)

    def time_100_iterations(self, n, library):
        if library == "sparseopt":
            sinkhorn(self.a, self.b, self.M, 1e-3, max_iter=100, warn=False)
        else:
            import ot

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ot.sinkhorn(self.a, self.b, self.M, 1e-3, numItermax=100, stopThr=0.0)
