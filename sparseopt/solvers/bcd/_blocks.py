"""Per-block quantities: Hessian bounds, their (pseudo-)inverses, Lipschitz constants.

For a fixed partition of small blocks the bounds are constant, so they are
computed once and stacked (padded to the largest block with an identity on the
dummy slots) for vectorised GSQ scores and matrix updates.  Large blocks (the
forest blocks) keep only their Lipschitz constant, computed with a sparse
eigensolver.
"""

import numpy as np
import scipy.sparse.linalg as spla

from sparseopt.kernels._bcd import forest_solve

__all__ = ["BlockCache", "ForestSolver", "block_lipschitz"]

_SMALL = 64


def _lambda_max_dense(H):
    if H.shape[0] == 1:
        return float(H[0, 0])
    return float(np.linalg.eigvalsh(H)[-1])


def block_lipschitz(problem, block):
    """Largest eigenvalue of the block's Hessian bound (the block Lipschitz constant)."""
    if len(block) == 1:
        return float(problem.lipschitz()[block[0]])
    if len(block) > _SMALL and callable(getattr(problem, "hessian_csr", None)):
        Q = problem.hessian_csr()[block][:, block]
        if len(block) <= 400:
            return _lambda_max_dense(Q.toarray())
        v0 = np.ones(len(block))
        val = spla.eigsh(Q, k=1, which="LA", v0=v0, tol=1e-8,
                         return_eigenvectors=False)[0]
        return float(val) * (1.0 + 1e-7)
    return _lambda_max_dense(problem.hessian_bound(block))


class BlockCache:
    """Lazily computed constants of a fixed partition."""

    def __init__(self, problem, partition):
        self.problem = problem
        self.part = partition
        self._L = None
        self._H = None
        self._Hinv = None
        self._gsd = None

    @property
    def small(self):
        return self.part.uniform_small

    def lipschitz(self):
        """Block Lipschitz constants ``L_b`` (array of n_blocks)."""
        if self._L is None:
            if self.small:
                H = self.hessians()
                self._L = np.linalg.eigvalsh(H)[:, -1]
            else:
                self._L = np.array([block_lipschitz(self.problem, b)
                                    for b in self.part.blocks])
        return self._L

    def hessians(self):
        """Stack of padded block Hessian bounds, shape (n_blocks, t, t)."""
        if self._H is None:
            part = self.part
            nb, t = part.padded.shape
            H = np.zeros((nb, t, t))
            for k, b in enumerate(part.blocks):
                m = len(b)
                H[k, :m, :m] = self.problem.hessian_bound(b)
            self._H = H
        return self._H

    def inverses(self):
        """Stack of padded pseudo-inverses of the block bounds (zero on dummy slots)."""
        if self._Hinv is None:
            self._Hinv = np.linalg.pinv(self.hessians(), hermitian=True)
        return self._Hinv

    def gsd_diag(self):
        """Per-block Gershgorin diagonal ``d_i = sum_{j in b} |H_ij|`` (GSD)."""
        if self._gsd is None:
            p = self.part.p
            d = np.empty(p)
            if self.small:
                H = self.hessians()
                rs = np.abs(H).sum(axis=2)
                for k, b in enumerate(self.part.blocks):
                    d[b] = rs[k, :len(b)]
            else:
                Q = getattr(self.problem, "hessian_csr", None)
                if callable(Q):
                    Qm = Q()
                    for b in self.part.blocks:
                        d[b] = np.asarray(abs(Qm[b][:, b]).sum(axis=1)).ravel()
                else:
                    for b in self.part.blocks:
                        d[b] = np.abs(self.problem.hessian_bound(b)).sum(axis=1)
            self._gsd = d
        return self._gsd


class ForestSolver:
    """Exact solves ``Q[b, b] z = r`` on forest blocks by message passing."""

    def __init__(self, Q):
        self.Q = Q
        p = Q.shape[0]
        self.posb = np.full(p, -1, np.int64)
        self.parent = np.empty(p, np.int64)
        self.order = np.empty(p, np.int64)
        self.pw = np.empty(p)
        self.dw = np.empty(p)
        self.rw = np.empty(p)

    def solve(self, block, rhs):
        nb = len(block)
        self.posb[block] = np.arange(nb)
        z = np.empty(nb)
        try:
            status = forest_solve(self.Q.indptr, self.Q.indices, self.Q.data, block,
                                  self.posb, np.ascontiguousarray(rhs, dtype=np.float64),
                                  z, self.parent, self.order, self.pw, self.dw, self.rw)
        finally:
            self.posb[block] = -1
        if status == 1:
            raise ValueError("update='message-passing' needs forest blocks: a selected "
                             "block's Hessian graph has a cycle")
        if status == 2:
            raise ValueError("message passing met a non-positive pivot: the block's "
                             "Hessian is not positive definite")
        return z
