"""Lazily refreshed gradients for the Lasso / elastic-net outer loop.

The outer check of the working-set solver needs the full gradient ``X^T r``
for three things: the fixed-point violation, the dual rescaling
``max_j |x_j^T u|`` of the duality gap and the gap-safe screening test.  For a
feature whose coefficient is zero, all three only depend on whether
``|g_j|`` exceeds ``alpha``.  :class:`LazyGradient` keeps the last exactly
computed ``g_j`` with the residual drift accumulated since, and the kernel
:func:`sparseopt.kernels._cd.lasso_outer` recomputes ``x_j^T r`` only for the
features whose bound ``|g_j| + min(||x_j||_2 drift_2, ||x_j||_1 drift_inf)``
could exceed ``alpha`` (and the non-zero ones).  The duality gap is exactly the one of a
full pass -- the skipped features provably do not enter it -- but late outer
iterations and the first check of each ``alpha`` of a path touch a fraction
of the design.  The object carries over from one ``alpha`` of a path to the
next (the gradient does not depend on ``alpha``).

This is the "dynamic" use of the gradient bound behind the Gap Safe / strong
sequential rules (Fercoq, Gramfort & Salmon 2015; Tibshirani et al. 2012),
applied to skip work rather than to discard features.
"""

import math

import numpy as np

from sparseopt.kernels import _cd

__all__ = ["LazyGradient"]

# relative slack on the drift bound: covers the rounding of the norms
_SLACK = 1.0 + 1e-9


class LazyGradient:
    """Stored gradient and drift bookkeeping of one prepared design.

    Start from the gradient at ``w = 0`` (``design.grad0``, exact at the
    null model's residual); every :meth:`check` first adds the distance from
    the previous check's residual to the drift.
    """

    def __init__(self, design):
        self.design = design
        self.grad = np.array(design.grad0, dtype=np.float64, copy=True)
        p = design.p
        self.ref_drift = np.zeros(p)
        self.ref_inf = np.zeros(p)
        self.ref_bdrift = np.zeros(p)
        self.drift = 0.0
        self.drift_inf = 0.0
        self.bdrift = 0.0
        w0 = np.zeros(p, dtype=design.dtype)
        self.st_prev, self.b_prev = design.state(w0, design.b0)
        self.stats = np.zeros(7)
        lips = np.asarray(design.lips, np.float64)
        with np.errstate(divide="ignore"):
            self.inv_sqrt_lips = np.where(lips > 0, 1.0 / np.sqrt(lips), 0.0)
        self.n_computed = 0

    def _advance(self, st, b):
        d = st - self.st_prev
        step = math.sqrt(float(d @ d)) / self.design.n
        if step > 0.0:
            self.drift += step * _SLACK
            self.drift_inf += float(np.max(np.abs(d))) / self.design.n * _SLACK
        db = abs(float(b) - self.b_prev)
        if db > 0.0:
            self.bdrift += db * _SLACK
        self.st_prev = st.copy()
        self.b_prev = float(b)

    def check(self, st, b, w, pen, skip, score, force=False):
        """Outer check at ``(w, st, b)``; returns ``(kkt_max, dual_norm, excess_sq,
        l1, sq, n_active)`` (see :func:`~sparseopt.kernels._cd.lasso_outer`)."""
        self._advance(st, b)
        dz = self.design
        _cd.lasso_outer(dz.is_sparse, dz.X, dz.indptr, dz.indices, dz.data,
                        1.0 / dz.n_scale, st, float(b), dz.mu, dz.fit_intercept,
                        pen.alpha, pen.l2, pen.positive, dz.lips, self.inv_sqrt_lips,
                        dz.rawnorm, dz.rawnorm1, w, skip, bool(force), self.drift,
                        self.drift_inf, self.bdrift, self.grad, self.ref_drift,
                        self.ref_inf, self.ref_bdrift, score, self.stats)
        self.n_computed += int(self.stats[5])
        kkt_max, dn, excess, l1, sq, _, n_active = (float(v) for v in self.stats)
        return kkt_max, dn, excess, l1, sq, int(n_active)

    def screen(self, pen, c, radius, skip, score):
        """Gap-safe screening with the stored gradients (safe: bounded drift)."""
        dz = self.design
        return int(_cd.lasso_screen(pen.alpha, float(c), float(radius), pen.positive,
                                    dz.colnorm, dz.rawnorm, dz.rawnorm1, dz.mu,
                                    dz.fit_intercept, self.drift, self.drift_inf,
                                    self.bdrift, self.grad, self.ref_drift,
                                    self.ref_inf, self.ref_bdrift, skip, score))
