"""Penalties as plain parameters plus a kind code for the kernels.

A :class:`Penalty` carries what :func:`sparseopt.kernels._cd.cd_inner` needs
(``kind``, ``alpha``, ``l2``, ``gamma``, ``positive``, group structure) and the
NumPy-side pieces of the outer loop: its value, the threshold ``alpha_max``
above which ``w = 0`` is optimal, and, for the convex penalties, the Fenchel
conjugate used in the duality gap.

=========  ===========================================================  =======
kind       penalty of one coordinate (or group)                          convex
=========  ===========================================================  =======
``l1``     ``a |w| + l2 / 2 w^2`` (Lasso, elastic net)                    yes
``group``  ``a c_g ||w_g||_2`` (group Lasso, weights ``c_g``)             yes
``mcp``    ``a|w| - w^2/(2 gamma)`` if ``|w| <= gamma a``, else
           ``gamma a^2 / 2`` (Zhang 2010)                                 no
``scad``   Fan & Li (2001), ``gamma > 2``                                 no
``l0``     ``a 1[w != 0] + l2 / 2 w^2`` (L0L2, Hazimeh & Mazumder 2020)   no
=========  ===========================================================  =======

``positive=True`` adds the constraint ``w >= 0`` to any of them.
"""

import numpy as np

from sparseopt.kernels import _cd

__all__ = ["Penalty", "group_penalty", "l0_penalty", "l1_penalty", "mcp_penalty",
           "scad_penalty"]

_EMPTY_I = np.zeros(1, np.int64)


class Penalty:
    """Parameters of a penalty for the working-set CD solver.

    Use the factories (:func:`l1_penalty`, :func:`group_penalty`, ...).
    """

    def __init__(self, kind, alpha, *, l2=0.0, gamma=np.inf, positive=False,
                 grp_ptr=None, grp_idx=None, grp_w=None, name=""):
        self.kind = int(kind)
        self.alpha = float(alpha)
        self.l2 = float(l2)
        self.gamma = float(gamma)
        self.positive = bool(positive)
        self.grouped = grp_ptr is not None
        self.grp_ptr = np.asarray(grp_ptr if self.grouped else _EMPTY_I, np.int64)
        self.grp_idx = np.asarray(grp_idx if self.grouped else _EMPTY_I, np.int64)
        self.grp_w = np.asarray(grp_w if self.grouped else np.zeros(1), np.float64)
        self.name = name

    @property
    def convex(self):
        return self.kind == _cd.PEN_L1

    def with_alpha(self, alpha):
        """Same penalty at another regularisation level ``alpha`` (user units)."""
        new = Penalty.__new__(Penalty)
        new.__dict__.update(self.__dict__)
        if self.kind == _cd.PEN_L1 and not self.grouped:
            new.alpha = float(alpha) * self._a_scale
            new.l2 = float(alpha) * (1.0 - self._a_scale)
        else:
            new.alpha = float(alpha)
        return new

    _a_scale = 1.0

    def n_blocks(self, p):
        return self.grp_ptr.shape[0] - 1 if self.grouped else p

    def value(self, w):
        """Penalty value at ``w`` (float64)."""
        w = np.asarray(w, dtype=np.float64)
        a = self.alpha
        if self.grouped:
            sq = np.add.reduceat(w[self.grp_idx] ** 2, self.grp_ptr[:-1]) \
                if w.size else np.zeros(0)
            sizes = np.diff(self.grp_ptr)
            sq = np.where(sizes > 0, sq, 0.0)
            return float(a * np.sum(self.grp_w * np.sqrt(sq)))
        aw = np.abs(w)
        ridge = 0.5 * self.l2 * float(np.square(w).sum()) if self.l2 else 0.0
        if self.kind == _cd.PEN_L1:
            return float(a * aw.sum()) + ridge
        if self.kind == _cd.PEN_L0:
            return float(a * np.count_nonzero(w)) + ridge
        g = self.gamma
        if self.kind == _cd.PEN_MCP:
            v = np.where(aw <= g * a, a * aw - aw ** 2 / (2 * g), 0.5 * g * a * a)
            return float(v.sum())
        v = np.where(aw <= a, a * aw,
                     np.where(aw <= g * a,
                              (2 * g * a * aw - aw ** 2 - a * a) / (2 * (g - 1)),
                              0.5 * a * a * (g + 1)))
        return float(v.sum())

    def block_norms(self, z):
        """Per-block dual norm of ``z`` (``|z_j|`` or ``||z_g||``; positive part
        when ``positive``)."""
        z = np.maximum(z, 0.0) if self.positive else np.abs(z)
        if self.grouped:
            sq = np.add.reduceat(z[self.grp_idx] ** 2, self.grp_ptr[:-1])
            return np.sqrt(np.where(np.diff(self.grp_ptr) > 0, sq, 0.0))
        return z

    def block_weights(self):
        return self.grp_w if self.grouped else 1.0

    def alpha_max(self, grad0, lips):
        """Smallest ``alpha`` (in the user's units) for which ``w = 0`` is a fixed point."""
        z = -grad0 if self.positive else grad0
        if self.kind == _cd.PEN_L0:
            lips = np.asarray(lips, np.float64)
            g = np.maximum(z, 0.0) if self.positive else np.abs(z)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(lips > 0, g ** 2 / (2 * (lips + self.l2)), 0.0)
            return float(t.max(initial=0.0))
        nrm = self.block_norms(z)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = nrm / self.block_weights()
        return float(np.max(r, initial=0.0)) / self._a_scale

    # -- convex duality (kind l1 / group) ---------------------------------
    def conjugate_and_scale(self, z):
        """Dual scaling ``c`` in (0, 1] and ``sum h*(c z)`` for the gap.

        ``z = X_c^T u`` at the unscaled dual point (zero on screened features:
        the gap is then the reduced problem's, which has the same optimum).  With a ridge part
        (``l2 > 0``) the conjugate is finite everywhere: ``c = 1`` and
        ``h*(z) = (|z| - a)_+^2 / (2 l2)``.  Otherwise ``c`` rescales ``u`` into
        the dual feasible set ``{ ||z_k|| <= a c_k }``.
        """
        a = self.alpha
        nrm = self.block_norms(z)
        if self.l2 > 0 and not self.grouped:
            excess = np.maximum(nrm - a, 0.0)
            return 1.0, float(excess @ excess) / (2 * self.l2)
        with np.errstate(divide="ignore", invalid="ignore"):
            dn = float(np.max(nrm / self.block_weights(), initial=0.0))
        c = 1.0 if dn <= a else a / dn
        return c, 0.0


def l1_penalty(alpha, l1_ratio=1.0, positive=False):
    """Elastic net ``alpha (l1_ratio ||w||_1 + (1 - l1_ratio) / 2 ||w||^2)``."""
    pen = Penalty(_cd.PEN_L1, alpha * l1_ratio, l2=alpha * (1 - l1_ratio),
                  positive=positive, name="l1" if l1_ratio == 1 else "enet")
    pen._a_scale = float(l1_ratio)
    return pen


def group_penalty(alpha, grp_ptr, grp_idx, weights, positive=False):
    """Group Lasso ``alpha sum_g weights_g ||w_g||_2``."""
    return Penalty(_cd.PEN_L1, alpha, positive=positive, grp_ptr=grp_ptr,
                   grp_idx=grp_idx, grp_w=weights, name="group")


def mcp_penalty(alpha, gamma, positive=False):
    return Penalty(_cd.PEN_MCP, alpha, gamma=gamma, positive=positive, name="mcp")


def scad_penalty(alpha, gamma, positive=False):
    return Penalty(_cd.PEN_SCAD, alpha, gamma=gamma, positive=positive, name="scad")


def l0_penalty(alpha, l2=0.0, positive=False):
    pen = Penalty(_cd.PEN_L0, alpha, l2=l2, positive=positive, name="l0")
    return pen
