r"""Block update rules (Nutini, Laradji & Schmidt, Sec. 4-6).

==================  =================================================================
update              step on the selected block ``b``
==================  =================================================================
``lipschitz``       ``x_b \leftarrow prox_{g/L_b}(x_b - \nabla_b f / L_b)``, ``L_b`` the
                    largest eigenvalue of the block's Hessian bound
``matrix``          ``x_b \leftarrow \arg\min_z \nabla_b f^T (z - x_b) +
                    \frac12 (z - x_b)^T H_b (z - x_b) + g_b(z)`` with the Hessian bound
                    ``H_b`` (for ``g = 0``: ``x_b - H_b^{-1}\nabla_b f``)
``newton``          the same model with the exact block Hessian, then an Armijo
                    backtracking line search on ``F`` (proximal Newton)
``message-passing`` exact solve ``Q_{bb} d = -\nabla_b f`` of a quadratic on a forest
                    block by Gaussian elimination on the tree, ``O(|b|)``
==================  =================================================================

The proximal sub-problems of ``matrix``/``newton`` are solved to machine
precision (coordinate descent to find the free set, then the sign-fixed linear
system on it).
"""

import numpy as np
import scipy.linalg as sla

from sparseopt.solvers.bcd._blocks import block_lipschitz

__all__ = ["UPDATES", "Updater"]

UPDATES = ("lipschitz", "matrix", "newton", "message-passing")
ARMIJO = 1e-4


def _solve_psd(H, rhs):
    try:
        c = sla.cho_factor(H, check_finite=False)
        return sla.cho_solve(c, rhs, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return np.linalg.lstsq(H, rhs, rcond=None)[0]


class Updater:
    """Computes and applies the update of a block."""

    def __init__(self, problem, partition, update, cache, forest_solver):
        self.problem = problem
        self.part = partition
        self.update = update
        self.cache = cache
        self.forest = forest_solver
        self.pen = problem.penalty

    def _block_index(self, block):
        """Index of a fixed block (or -1 for a variable one)."""
        if self.part.variable:
            return -1
        return int(self.part.labels[block[0]])

    def _lipschitz(self, block):
        k = self._block_index(block)
        if k >= 0:
            return float(self.cache.lipschitz()[k])
        return block_lipschitz(self.problem, block)

    def _bound(self, block):
        k = self._block_index(block)
        if k >= 0 and self.part.uniform_small:
            m = len(block)
            return self.cache.hessians()[k, :m, :m]
        return self.problem.hessian_bound(block)

    def direction(self, state, block):
        """The step ``d`` for the block (before any line search)."""
        x = state.x
        g = self.problem.gradient(state)
        gb = g[block]
        xb = x[block]
        pen = self.pen
        upd = self.update
        if upd == "lipschitz":
            Lb = self._lipschitz(block)
            if Lb <= 0:
                return np.zeros_like(xb)
            if pen.smooth:
                return -gb / Lb
            return pen.prox(xb - gb / Lb, 1.0 / Lb, block) - xb
        if upd == "message-passing":
            if not pen.smooth:
                raise ValueError("update='message-passing' supports smooth problems "
                                 "only (no l1, no bounds)")
            return self.forest.solve(block, -gb)
        if upd == "matrix":
            k = self._block_index(block)
            if pen.smooth and k >= 0 and self.part.uniform_small:
                m = len(block)
                return -self.cache.inverses()[k, :m, :m] @ gb
            H = self._bound(block)
        else:
            H = np.asarray(self.problem.hessian(state, block), dtype=np.float64)
        if pen.smooth:
            return -_solve_psd(H, gb)
        z = pen.solve_qp(H, gb - H @ xb, xb, block)
        return z - xb

    def apply(self, state, block):
        """Update the block in place; returns the number of coordinates changed."""
        d = self.direction(state, block)
        if self.update == "newton" and not getattr(self.problem, "is_quadratic", False):
            d = self._line_search(state, block, d)
        nz = d != 0
        if not nz.any():
            return 0
        if not nz.all():
            block, d = block[nz], d[nz]
        self.problem.update_state(state, block, d)
        return len(block)

    def _line_search(self, state, block, d):
        prob = self.problem
        pen = self.pen
        xb = state.x[block]
        gb = prob.gradient(state)[block]
        f0 = prob.value(state)
        g0 = pen.block_value(xb, block) if not pen.smooth else 0.0
        full = pen.block_value(xb + d, block) if not pen.smooth else 0.0
        decrease = float(gb @ d) + full - g0
        if abs(decrease) <= 1e-12 * max(1.0, abs(f0 + g0)):
            # within rounding of the optimum on this block: Armijo cannot be
            # tested any more, and the unit Newton step is the right one there
            return d
        if decrease > 0:
            return np.zeros_like(d)
        alpha = 1.0
        for _ in range(50):
            step = alpha * d
            gn = pen.block_value(xb + step, block) if not pen.smooth else 0.0
            fn = prob.value_after(state, block, step)
            if fn + gn <= f0 + g0 + ARMIJO * alpha * decrease:
                return step
            alpha *= 0.5
        return np.zeros_like(d)
