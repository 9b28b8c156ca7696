r"""Block selection rules (Nutini, Laradji & Schmidt, Sec. 2-4).

With ``s`` the minimum-norm subgradient of ``F = f + g`` (``s = \nabla f`` when
``g = 0``), the block scores are

=========  ==============================================  ==========================
rule       fixed block ``b``                               variable blocks (size tau)
=========  ==============================================  ==========================
cyclic     blocks in turn                                  windows of tau in turn
random     uniform                                         tau uniform coordinates
lipschitz  probability proportional to ``L_b``             tau sampled prop. to ``L_i``
gs         ``\|s_b\|^2``                                   top tau of ``|s_i|``
gsl        ``\|s_b\|^2 / L_b``                             top tau of ``|s_i| / \sqrt{L_i}``
gsd        ``\sum_{i\in b} s_i^2 / d_i``                   top tau of ``s_i^2 / d_i``
gsq        ``\nabla_b f^T H_b^{-1} \nabla_b f``            IHT approximation (below)
=========  ==============================================  ==========================

``L_b`` is the largest eigenvalue of the block's Hessian bound ``H_b`` and
``d_i = \sum_j |H_{ij}|`` (a diagonal bound, Gershgorin) taken within the block
for fixed blocks and over all variables for variable blocks.  GSQ is the
progress of the matrix update ``d = -H_b^{-1}\nabla_b f``; with an L1 term or
bounds it becomes the proximal GS-q rule: the decrease guaranteed by a
proximal step on the block's quadratic model with curvature ``L_b``
(fixed blocks) or ``L_i`` (variable blocks).  On variable blocks the smooth GSQ
rule is a sparse quadratic problem; as the paper does, it is approximated by
10 steps of iterative hard thresholding on ``q(d) = \nabla f^T d + d^T H d / 2``
with ``|supp(d)| \le tau``.

``active_set=True`` (variable blocks with an L1 term or bounds) updates the
free variables (non-zero, off the bounds) together with the ``block_size`` best
GS-q coordinates outside them: once the active manifold is identified and the block
covers the support, matrix/Newton updates converge superlinearly, and exact
updates of quadratics terminate finitely (Sec. 6).
"""

import numpy as np

from sparseopt.kernels._bcd import greedy_forest

__all__ = ["RULES", "Selector"]

RULES = ("cyclic", "random", "lipschitz", "gs", "gsl", "gsd", "gsq")
_CODES = {"gs": 0, "gsl": 1, "gsq": 2}
IHT_STEPS = 10


def _top(scores, k):
    k = min(k, scores.shape[0])
    if k >= scores.shape[0]:
        idx = np.arange(scores.shape[0])
    else:
        idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


class Selector:
    """Chooses the block of each iteration."""

    def __init__(self, problem, partition, rule, cache, rng, active_set, update):
        self.problem = problem
        self.part = partition
        self.rule = rule
        self.cache = cache
        self.rng = rng
        self.active_set = active_set
        self.update = update
        self.pen = problem.penalty
        self.L = problem.lipschitz()
        self._cursor = 0
        self._dcoord = None
        self._mu = None
        if partition.forest and partition.variable:
            Q = problem.hessian_csr()
            p = problem.n_vars
            self._forest_graph = (Q.indptr, Q.indices)
            self._uf = np.empty(p, np.int64)
            self._inset = np.empty(p, np.bool_)
            self._rootmark = np.empty(p, np.int64)
            self._out = np.empty(p, np.int64)
            self._allowed = np.ones(p, np.bool_)
        if rule == "lipschitz" and not partition.variable:
            Lb = cache.lipschitz()
            self._probs = Lb / Lb.sum()
        if rule == "lipschitz" and partition.variable:
            self._pcoord = self.L / self.L.sum()

    # ---------------------------------------------------------------- helpers
    def _coord_scores(self, code, x, g, L=None):
        return self.pen.scores(code, x, g, self.L if L is None else L)

    def _diag(self):
        if self._dcoord is None:
            fn = getattr(self.problem, "diag_bound", None)
            if not callable(fn):
                raise ValueError(f"rule='gsd' needs problem.diag_bound(), which "
                                 f"{type(self.problem).__name__} lacks")
            self._dcoord = np.asarray(fn(), dtype=np.float64)
        return self._dcoord

    def _step_size(self):
        """``1 / lambda_max`` of the global Hessian bound (power iteration)."""
        if self._mu is None:
            mv = self.problem.hessian_bound_matvec
            v = self.rng.standard_normal(self.problem.n_vars)
            lam = 0.0
            for _ in range(30):
                nv = np.linalg.norm(v)
                if nv == 0:
                    break
                v /= nv
                w = mv(v)
                lam = float(v @ w)
                v = w
            self._mu = 1.0 / (1.02 * lam) if lam > 0 else 1.0 / self.L.max()
        return self._mu

    # ---------------------------------------------------------------- fixed
    def _fixed(self, it, x, g):
        part = self.part
        rule = self.rule
        if rule == "cyclic":
            return part.blocks[it % part.n_blocks]
        if rule == "random":
            return part.blocks[self.rng.integers(part.n_blocks)]
        if rule == "lipschitz":
            return part.blocks[self.rng.choice(part.n_blocks, p=self._probs)]
        lab = part.labels
        nb = part.n_blocks
        if rule == "gsq":
            if self.pen.smooth and part.uniform_small:
                gp = np.append(g, 0.0)[part.padded]
                score = np.einsum("bi,bij,bj->b", gp, self.cache.inverses(), gp)
            elif self.pen.smooth and part.forest:
                score = np.array([float(g[b] @ self._forest.solve(b, g[b]))
                                  for b in part.blocks])
            else:
                Lb = self.cache.lipschitz()[lab]
                score = np.bincount(lab, self._coord_scores(2, x, g, Lb), nb)
            return part.blocks[int(np.argmax(score))]
        s = self._coord_scores(0, x, g)
        s2 = s * s
        if rule == "gs":
            score = np.bincount(lab, s2, nb)
        elif rule == "gsl":
            score = np.bincount(lab, s2, nb) / self.cache.lipschitz()
        else:  # gsd
            score = np.bincount(lab, s2 / self.cache.gsd_diag(), nb)
        return part.blocks[int(np.argmax(score))]

    # ---------------------------------------------------------------- variable
    def _iht(self, x, g):
        tau = self.part.block_size
        L = self.L
        mv = self.problem.hessian_bound_matvec
        mu = self._step_size()
        init = _top(np.abs(g) / np.sqrt(L), tau)
        d = np.zeros_like(g)
        d[init] = -g[init] / L[init]
        for _ in range(IHT_STEPS):
            d = d - mu * (g + mv(d))
            keep = _top(np.abs(d), tau)
            dn = np.zeros_like(d)
            dn[keep] = d[keep]
            d = dn
        block = np.flatnonzero(d)
        if len(block) < tau:
            rest = np.abs(g) / np.sqrt(L)
            rest[block] = -1.0
            extra = _top(rest, tau - len(block))
            block = np.concatenate([block, extra[rest[extra] > 0]])
        return block

    def _greedy_tree(self, x, g):
        code = _CODES.get(self.rule, 1)
        if self.rule in ("cyclic", "random", "lipschitz"):
            if self.rule == "cyclic":
                order = np.roll(np.arange(self.part.p), -self._cursor)
                self._cursor = (self._cursor + self.part.p // 2 + 1) % self.part.p
            else:
                order = self.rng.permutation(self.part.p)
        else:
            if self.rule == "gsd":
                s = self._coord_scores(0, x, g)
                score = s * s / self._diag()
            else:
                score = self._coord_scores(code, x, g)
            order = np.argsort(-score, kind="stable")
            order = order[score[order] > 0]
        indptr, indices = self._forest_graph
        size = greedy_forest(indptr, indices, order.astype(np.int64), self._allowed,
                             self.part.block_size, self._uf, self._inset,
                             self._rootmark, self._out)
        return self._out[:size].copy()

    def _variable(self, it, x, g):
        tau = self.part.block_size
        p = self.part.p
        rule = self.rule
        if self.part.forest:
            return self._greedy_tree(x, g)
        if self.active_set:
            return self._active(x, g)
        if rule == "cyclic":
            start = (it * tau) % p
            return (np.arange(start, start + tau) % p)[:min(tau, p)]
        if rule == "random":
            return self.rng.choice(p, size=min(tau, p), replace=False)
        if rule == "lipschitz":
            return self.rng.choice(p, size=min(tau, p), replace=False, p=self._pcoord)
        if rule == "gsq":
            if self.pen.smooth and tau > 1:
                return self._iht(x, g)
            return _top(self._coord_scores(2, x, g), tau)
        s = self._coord_scores(0, x, g)
        if rule == "gs":
            return _top(np.abs(s), tau)
        if rule == "gsl":
            return _top(np.abs(s) / np.sqrt(self.L), tau)
        return _top(s * s / self._diag(), tau)

    def _active(self, x, g):
        tau = self.part.block_size
        q = self._coord_scores(2, x, g)
        free = np.flatnonzero(self.pen.free_mask(x))
        rest = q.copy()
        rest[free] = -1.0
        extra = _top(rest, tau)
        extra = extra[rest[extra] > 0]
        block = np.concatenate([free, extra]).astype(np.int64)
        if len(block) == 0:
            block = _top(q, tau)
        return block

    def select(self, it, x, g):
        """Indices (int64) of the block to update at iteration ``it``."""
        if self.part.variable:
            out = self._variable(it, x, g)
        else:
            out = self._fixed(it, x, g)
        return np.asarray(out, dtype=np.int64)
