"""Penalties as elementwise array-namespace code, for the generic (device) solver.

:class:`PenaltyXP` wraps a host :class:`~sparseopt.solvers.regression.Penalty`
(its kind, levels and group structure) and evaluates, with ``nx.xp`` only, what
the accelerated proximal-gradient solver needs:

* the proximal operator for a step ``1 / L`` (``L`` a scalar, or one value per
  coordinate for the fixed-point violation): soft thresholding with a ridge
  shrinkage (L1, elastic net), hard thresholding (L0), the exact scalar
  minimisers of MCP and SCAD chosen among the stationary points and region
  boundaries, vectorised from :func:`sparseopt.kernels._cd.prox_1d` (same
  candidates, same tie-breaking), and the group soft thresholding
  ``max(0, 1 - a c_g / (L ||u_g||)) u_g``;
* the penalty value, the per-block dual norms and, for the convex penalties,
  the Fenchel conjugate with the dual scaling of the duality gap (as
  :meth:`Penalty.conjugate_and_scale`).

Groups live on the device as a padded ``(n_groups, max_size)`` index matrix
(grouped sums by a gather and a row sum, standard operations only) plus the
group of every feature (to broadcast a per-group factor back).
"""

import numpy as np

from sparseopt.kernels import _cd
from sparseopt.solvers._xp_linalg import padded_groups, segment_sum

__all__ = ["PenaltyXP"]


class PenaltyXP:
    """A :class:`~sparseopt.solvers.regression.Penalty` on the backend ``nx``."""

    def __init__(self, nx, pen, p):
        xp = nx.xp
        self.nx, self.xp, self.pen, self.p = nx, xp, pen, p
        self.kind, self.alpha, self.l2 = pen.kind, pen.alpha, pen.l2
        self.gamma, self.positive, self.grouped = pen.gamma, pen.positive, pen.grouped
        self.convex = pen.convex
        if self.grouped:
            ptr = np.asarray(pen.grp_ptr, np.int64)
            idx = np.asarray(pen.grp_idx, np.int64)
            labels = np.empty(p, np.int64)
            labels[idx] = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
            self.n_groups = ptr.size - 1
            self.padded = xp.asarray(padded_groups(labels, self.n_groups))
            self.gid = xp.asarray(labels)
            self.gw = xp.asarray(np.asarray(pen.grp_w, np.float64))

    def with_alpha(self, alpha):
        """Same penalty at another level ``alpha`` (user units); device arrays shared."""
        new = PenaltyXP.__new__(PenaltyXP)
        new.__dict__.update(self.__dict__)
        new.pen = self.pen.with_alpha(alpha)
        new.alpha, new.l2 = new.pen.alpha, new.pen.l2
        return new

    # -- block structure ---------------------------------------------------
    def group_sums(self, values):
        """Per-group sums of a per-feature vector."""
        return segment_sum(self.xp, values, self.padded)

    def block_norms(self, z):
        """``|z_j|`` or ``||z_g||`` (positive part first when ``positive``)."""
        xp = self.xp
        z = xp.maximum(z, 0.0) if self.positive else xp.abs(z)
        if self.grouped:
            return xp.sqrt(self.group_sums(z * z))
        return z

    def block_weights(self):
        return self.gw if self.grouped else 1.0

    # -- value ---------------------------------------------------------------
    def value(self, w):
        """Penalty value at ``w`` (0-d float64 array)."""
        xp = self.xp
        a = self.alpha
        if self.grouped:
            return a * xp.vecdot(self.gw, xp.sqrt(self.group_sums(w * w)))
        aw = xp.abs(w)
        ridge = 0.5 * self.l2 * xp.vecdot(w, w) if self.l2 else 0.0
        if self.kind == _cd.PEN_L1:
            return a * xp.sum(aw) + ridge
        if self.kind == _cd.PEN_L0:
            return a * xp.sum(xp.astype(w != 0, xp.float64)) + ridge
        return xp.sum(self._value_1d(aw))

    def _value_1d(self, x):
        """Separable MCP / SCAD / L0 / L1 value of ``|x|`` entries, elementwise."""
        xp = self.xp
        a, g, l2 = self.alpha, self.gamma, self.l2
        if self.kind == _cd.PEN_L1:
            return a * x + 0.5 * l2 * x * x
        if self.kind == _cd.PEN_L0:
            return xp.where(x != 0, a + 0.5 * l2 * x * x, 0.0)
        if self.kind == _cd.PEN_MCP:
            return xp.where(x <= g * a, a * x - x * x / (2 * g), 0.5 * g * a * a)
        return xp.where(x <= a, a * x,
                        xp.where(x <= g * a, (2 * g * a * x - x * x - a * a) / (2 * (g - 1)),
                                 0.5 * a * a * (g + 1)))

    # -- proximal operator ---------------------------------------------------
    def prox(self, u, L):
        """``argmin_x L/2 ||x - u||^2 + pen(x)`` (over ``x >= 0`` when ``positive``).

        ``L`` is a positive Python float (a gradient step) or, for separable
        penalties, a per-coordinate array (entries with ``L <= 0`` return 0).
        """
        xp = self.xp
        if self.positive:
            u = xp.maximum(u, 0.0)
        if self.grouped:
            nrm = xp.sqrt(self.group_sums(u * u))
            safe = xp.where(nrm > 0, nrm, 1.0)
            scale = xp.where(nrm > 0, xp.maximum(1.0 - self.alpha * self.gw / (L * safe), 0.0),
                             0.0)
            return xp.take(scale, self.gid) * u
        scalar = isinstance(L, float | int)
        Ls = L if scalar else xp.where(L > 0, L, 1.0)
        a = xp.abs(u)
        sgn = xp.sign(u)   # 0 at u = 0, where every prox below is 0
        alpha, l2 = self.alpha, self.l2
        kind = self.kind
        if kind == _cd.PEN_L1:
            t = a - alpha / Ls
            out = xp.where(t > 0, sgn * t / (1.0 + l2 / Ls), 0.0)
        elif kind == _cd.PEN_L0:
            out = xp.where(Ls * a * a * Ls > 2.0 * alpha * (Ls + l2), sgn * Ls * a / (Ls + l2),
                           0.0)
        else:
            out = sgn * self._prox_concave(a, Ls)
        if not scalar:
            out = xp.where(L > 0, out, 0.0)
        return out

    def _obj1d(self, x, a, L):
        return 0.5 * L * (x - a) * (x - a) + self._value_1d(x)

    def _prox_concave(self, a, L):
        """Magnitude of the MCP / SCAD prox of ``|u| = a`` (as ``_cd.prox_1d``)."""
        xp = self.xp
        alpha, gamma = self.alpha, self.gamma
        ga = gamma * alpha
        best = xp.zeros_like(a)
        fbest = self._obj1d(best, a, L)

        def consider(x, ok=None):
            nonlocal best, fbest
            f = self._obj1d(x, a, L)
            take = f < fbest if ok is None else (f < fbest) & ok
            best = xp.where(take, x, best)
            fbest = xp.where(take, f, fbest)

        def where_ok(cond, x, other):
            # ``cond`` is a Python bool for a scalar ``L``, else an array
            if isinstance(cond, bool | np.bool_):
                return x if cond else other
            return xp.where(cond, x, other)

        if self.kind == _cd.PEN_MCP:
            consider(xp.maximum(a, ga))
            ok = gamma * L > 1.0
            if isinstance(ok, bool | np.bool_):
                if ok:
                    consider(xp.clip((L * a - alpha) / (L - 1.0 / gamma), 0.0, ga))
            else:
                den = xp.where(ok, L - 1.0 / gamma, 1.0)
                consider(xp.clip((L * a - alpha) / den, 0.0, ga), ok)
            return best
        consider(xp.clip(a - alpha / L, 0.0, alpha))
        den = L * (gamma - 1.0) - 1.0
        ok = den > 0.0
        x2 = xp.clip((L * a * (gamma - 1.0) - ga) / where_ok(ok, den, 1.0), alpha, ga)
        consider(where_ok(ok, x2, xp.full_like(a, ga)))
        consider(xp.maximum(a, ga))
        return best

    # -- optimality and duality ----------------------------------------------
    def fixed_point_violation(self, w, grad, lips, skip):
        """``L_j |w_j - prox_j(w_j - grad_j / L_j)|`` per coordinate (separable penalties)."""
        xp = self.xp
        safe = xp.where(lips > 0, lips, 1.0)
        viol = lips * xp.abs(w - self.prox(w - grad / safe, lips))
        return xp.where(skip | (lips <= 0), 0.0, viol)

    def conjugate_and_scale(self, z):
        """Dual scaling ``c`` and ``sum h*(c z)`` (0-d arrays), as the host Penalty's."""
        xp = self.xp
        a = self.alpha
        nrm = self.block_norms(z)
        if self.l2 > 0 and not self.grouped:
            excess = xp.maximum(nrm - a, 0.0)
            return xp.asarray(1.0, dtype=xp.float64), xp.vecdot(excess, excess) / (2 * self.l2)
        dn = xp.max(nrm / self.block_weights())
        c = xp.where(dn <= a, 1.0, a / xp.where(dn > 0, dn, 1.0))
        return c, xp.asarray(0.0, dtype=xp.float64)

    def alpha_max_dev(self, grad0):
        """``max_k ||grad0_k|| / c_k`` over blocks (0-d array; L1 and group penalties)."""
        xp = self.xp
        z = -grad0 if self.positive else grad0
        return xp.max(self.block_norms(z) / self.block_weights())
