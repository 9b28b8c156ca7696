"""The separable non-smooth part ``g(x) = l1 |x|_1 + indicator[lower <= x <= upper]``."""

import numpy as np

from sparseopt._validation import check_scalar
from sparseopt.kernels._bcd import box_l1_qp, coord_scores, prox_grad_map

__all__ = ["Penalty"]


class Penalty:
    """Separable penalty ``g(x) = l1 * |x|_1 + indicator[lower <= x <= upper]``.

    Covers the cases of the paper: none (``l1=0``, no bounds), L1
    regularisation, non-negativity (``lower=0``) and box constraints.  The
    proximal operator of each coordinate is a soft-threshold followed by a clip,
    which is exact for a one-dimensional convex function plus an interval.

    Parameters
    ----------
    n : int
        Number of variables.
    l1 : float
        L1 weight, ``>= 0``.
    lower, upper : float or array of shape (n,), optional
        Bounds (``-inf`` / ``+inf`` when omitted); ``lower <= upper``.
    """

    def __init__(self, n, l1=0.0, lower=None, upper=None):
        self.n = int(n)
        self.l1 = check_scalar(l1, "l1", low=0.0)
        lo = -np.inf if lower is None else lower
        hi = np.inf if upper is None else upper
        lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (self.n,)).copy()
        hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (self.n,)).copy()
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise ValueError("bounds must not contain NaN")
        if (lo > hi).any():
            raise ValueError("bounds: every lower bound must be <= its upper bound")
        if (lo == np.inf).any() or (hi == -np.inf).any():
            raise ValueError("bounds: lower bounds cannot be +inf nor upper bounds -inf")
        self.lower = lo
        self.upper = hi
        self.has_bounds = bool(np.isfinite(lo).any() or np.isfinite(hi).any())

    @property
    def smooth(self):
        """True when ``g = 0`` (no L1 term, no bounds)."""
        return self.l1 == 0.0 and not self.has_bounds

    def value(self, x):
        """``g(x)`` (``inf`` outside the bounds)."""
        if self.has_bounds and ((x < self.lower).any() or (x > self.upper).any()):
            return np.inf
        return self.l1 * float(np.abs(x).sum()) if self.l1 else 0.0

    def block_value(self, z, idx):
        """``sum_{i in idx} g_i(z_i)`` for values ``z`` of the variables ``idx``."""
        if self.has_bounds and ((z < self.lower[idx]).any() or (z > self.upper[idx]).any()):
            return np.inf
        return self.l1 * float(np.abs(z).sum()) if self.l1 else 0.0

    def project(self, x):
        """Project onto the bounds (a copy)."""
        return np.clip(x, self.lower, self.upper) if self.has_bounds else x.copy()

    def prox(self, v, t, idx=None):
        """Coordinate-wise ``prox_{t g}(v)`` for the variables ``idx`` (all if None)."""
        lo = self.lower if idx is None else self.lower[idx]
        hi = self.upper if idx is None else self.upper[idx]
        out = v
        if self.l1:
            a = t * self.l1
            out = np.sign(v) * np.maximum(np.abs(v) - a, 0.0)
        if self.has_bounds:
            out = np.clip(out, lo, hi)
        return out

    def scores(self, rule_code, x, g, L):
        """Coordinate greedy scores: 0 GS (min-norm subgradient), 1 GSL, 2 GS-q."""
        out = np.empty_like(x)
        return coord_scores(rule_code, x, g, L, self.l1, self.lower, self.upper, out)

    def scores_at(self, rule_code, x, g, L, idx):
        """Scores for the coordinates ``idx`` only."""
        out = np.empty(len(idx))
        return coord_scores(rule_code, x[idx], g[idx], L, self.l1, self.lower[idx],
                            self.upper[idx], out)

    def grad_map(self, x, g, L):
        """Proximal-gradient mapping ``L_i (x_i - prox_{g/L_i}(x_i - g_i / L_i))``."""
        out = np.empty_like(x)
        return prox_grad_map(x, g, L, self.l1, self.lower, self.upper, out)

    def free_mask(self, x):
        """Variables not at a bound and (with L1) non-zero: the active manifold's free set."""
        free = np.ones(x.shape, bool)
        if self.has_bounds:
            free &= (x > self.lower) & (x < self.upper)
        if self.l1:
            free &= x != 0.0
        return free

    def solve_qp(self, H, q, z0, idx, tol=1e-10, max_sweeps=10000):
        """Minimise ``q^T z + z^T H z / 2 + g_idx(z)`` for a small dense ``H``.

        An active-set ("feature-sign") method: on the current free set (non-zero,
        off the bounds) solve the sign-fixed linear system; if its solution keeps
        the signs and bounds, take it, otherwise move towards it up to the first
        sign change or bound and drop that variable.  A few coordinate-descent
        sweeps free the fixed variables that violate the optimality conditions.
        The result is exact up to rounding, so exact block updates of quadratics
        terminate finitely once the active set is identified.
        """
        lo, hi = self.lower[idx], self.upper[idx]
        l1 = self.l1
        z = np.clip(np.array(z0, dtype=np.float64), lo, hi)
        H = np.ascontiguousarray(H, dtype=np.float64)
        q = np.ascontiguousarray(q, dtype=np.float64)
        diag = np.diag(H).copy()
        if (diag <= 0).any():
            box_l1_qp(H, q, z, l1, lo, hi, tol, max_sweeps)
            return z
        box_l1_qp(H, q, z, l1, lo, hi, 1e-9, 3)
        for _ in range(4 * len(z) + 20):
            free = (z > lo) & (z < hi)
            if l1:
                free &= z != 0.0
            if free.any():
                fi = np.flatnonzero(free)
                s = np.sign(z[fi])
                rhs = -q[fi] - H[fi] @ np.where(free, 0.0, z)
                if l1:
                    rhs -= l1 * s
                try:
                    zf = np.linalg.solve(H[np.ix_(fi, fi)], rhs)
                except np.linalg.LinAlgError:
                    break
                d = zf - z[fi]
                # largest step keeping the free variables' signs and bounds
                inf = np.full(len(fi), np.inf)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r_zero = np.where((np.sign(zf) != s) & (d != 0), -z[fi] / d, inf) \
                        if l1 else inf
                    r_lo = np.where(d < 0, (lo[fi] - z[fi]) / d, inf)
                    r_hi = np.where(d > 0, (hi[fi] - z[fi]) / d, inf)
                R = np.vstack([r_zero, r_lo, r_hi])
                which, kmin = np.unravel_index(int(np.argmin(R)), R.shape)
                t = float(R[which, kmin])
                if t < 1.0:
                    z[fi] += max(t, 0.0) * d
                    j = fi[kmin]
                    z[j] = (0.0, lo[j], hi[j])[which]
                    z[fi] = np.clip(z[fi], lo[fi], hi[fi])
                    continue
                z[fi] = zf
            if self._qp_kkt(H, q, z, lo, hi) <= tol * max(1.0, float(np.abs(z).max())):
                return z
            # release the fixed variables that violate the optimality conditions
            box_l1_qp(H, q, z, l1, lo, hi, 1e-9, 1)
        box_l1_qp(H, q, z, l1, lo, hi, tol, max_sweeps)
        return z

    def _qp_kkt(self, H, q, z, lo, hi):
        if ((z < lo) | (z > hi)).any():
            return np.inf
        g = q + H @ z
        d = np.diag(H).copy()
        d[d <= 0] = 1.0
        out = np.empty_like(z)
        prox_grad_map(z, g, d, self.l1, lo, hi, out)
        return float(np.max(np.abs(out / d))) if out.size else 0.0
