"""Greedy coordinate descent with a max-heap: the O(log p) per-iteration path.

Used by :func:`~sparseopt.solvers.bcd.minimize` for single-coordinate blocks
with the GS, GSL, GSD or GSQ rule and a Lipschitz (= matrix, for one
coordinate) update on a sparse least-squares / logistic problem or a sparse
quadratic.  Scores depend on ``(x_i, \\nabla_i f, L_i)`` only, so after a step
only the coordinates whose gradient changed are re-keyed in the heap (Nutini
et al. 2015, Sec. 8; Meshi et al. 2012).  Gives exactly the iterates of the
general loop (up to ties between equal scores).
"""

import time

import numpy as np

from sparseopt.kernels._bcd import coord_scores, glm_greedy_cd, heap_build, quad_greedy_cd
from sparseopt.solvers.bcd._partitions import FixedPartition
from sparseopt.solvers.bcd._problems import GLMProblem, QuadraticProblem

__all__ = ["FastGreedy", "fast_eligible"]

_CODES = {"gs": 0, "gsl": 1, "gsd": 1, "gsq": 2}


def fast_eligible(problem, partition, rule, update, active_set):
    """Whether the heap-based coordinate path applies."""
    if active_set or rule not in _CODES:
        return False
    if not isinstance(partition, FixedPartition) or partition.forest:
        return False
    if partition.n_blocks != partition.p or (partition.sizes != 1).any():
        return False
    if type(problem) is QuadraticProblem:
        return update in ("lipschitz", "matrix", "newton")
    if type(problem) is GLMProblem:
        return (problem.design.sparse and problem.n_outputs == 1
                and problem.loss in ("squared", "logistic")
                and (update in ("lipschitz", "matrix")
                     or (update == "newton" and problem.loss == "squared")))
    return False


class FastGreedy:
    """Runs chunks of heap-based greedy coordinate steps on a problem's state."""

    def __init__(self, problem, state, rule):
        self.problem = problem
        self.state = state
        self.code = _CODES[rule]
        pen = problem.penalty
        p = problem.n_vars
        self.L = np.ascontiguousarray(problem.lipschitz(), dtype=np.float64)
        self.key = np.empty(p)
        coord_scores(self.code, state.x, state.grad, self.L, pen.l1, pen.lower,
                     pen.upper, self.key)
        self.heap = np.empty(p, np.int64)
        self.pos = np.empty(p, np.int64)
        heap_build(self.heap, self.pos, self.key)
        if type(problem) is GLMProblem:
            self.mark = np.zeros(p, np.int64)
            self.touched = np.empty(p, np.int64)
            self.stamp = 0

    def run(self, n_steps, F0):
        """Run up to ``n_steps`` steps; returns ``(objective history, selected, F)``."""
        prob = self.problem
        st = self.state
        pen = prob.penalty
        obj = np.empty(n_steps)
        sel = np.empty(n_steps, np.int64)
        if type(prob) is GLMProblem:
            d = prob.design
            loss = 0 if prob.loss == "squared" else 1
            done, _, self.stamp = glm_greedy_cd(
                d.csc.indptr, d.csc.indices, d.csc.data, d.csr.indptr, d.csr.indices,
                d.csr.data, prob.Y[:, 0], loss, prob.l2, st.M.reshape(-1),
                st.S.reshape(-1), st.grad, st.x, self.L, pen.l1, pen.lower, pen.upper,
                self.code, n_steps, self.heap, self.pos, self.key, self.mark,
                self.touched, self.stamp, F0, obj, sel)
            # refresh the smooth value exactly (removes rounding drift)
            st.fval = prob._loss_rows(st.M, prob.Y) + 0.5 * prob.l2 * float(st.x @ st.x)
        else:
            Q = prob.Q
            done, _ = quad_greedy_cd(Q.indptr, Q.indices, Q.data, self.L, st.grad,
                                     st.x, pen.l1, pen.lower, pen.upper, self.code,
                                     n_steps, self.heap, self.pos, self.key, F0, obj,
                                     sel)
            st.fval = (0.5 * float(st.x @ (Q @ st.x)) - float(prob.c @ st.x)
                       + prob.const)
        return obj[:done], sel[:done]


def timed_run(fast, n_steps, F0):
    t0 = time.perf_counter()
    obj, sel = fast.run(n_steps, F0)
    return obj, sel, time.perf_counter() - t0
