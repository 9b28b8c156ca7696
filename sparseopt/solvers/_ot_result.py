"""The result object of the entropic-OT solvers."""

from dataclasses import dataclass, field

import numpy as np

from sparseopt._result import SolverResult

__all__ = ["OTResult"]


@dataclass(kw_only=True, repr=False)
class OTResult(SolverResult):
    """Outcome of :func:`sparseopt.sinkhorn` or :func:`sparseopt.sinkhorn_newton_sparse`.

    With ``P = exp((f_i + g_j - M_ij) / reg)`` the returned plan, the fields are

    Attributes
    ----------
    plan : ndarray of shape (n, m), sparse CSR matrix, or None
        The transport plan (dense by default; CSR with ``plan="sparse"``; None
        with ``plan=None``).  For a batch of k targets, an array of shape
        ``(k, n, m)`` or a list of k CSR matrices.
    cost : float or ndarray of shape (k,)
        The transport cost ``<P, M>`` (what POT's ``sinkhorn2`` returns).
    objective : float or ndarray of shape (k,)
        The entropic objective ``<P, M> + reg * Σ P_ij log P_ij`` (POT's convention),
        evaluated exactly as ``Σ_i r_i f_i + Σ_j c_j g_j`` with ``r = P 1``, ``c = Pᵀ 1``.
        At convergence it equals ``<a, f> + <b, g>``, i.e. the dual value
        ``<a, f> + <b, g> - reg Σ P`` plus ``reg`` times the mass (the
        difference between the ``Σ P log P`` and ``Σ P (log P - 1)`` entropies).
    f, g : ndarray of shape (n,) and (m,) (or (n, k), (m, k))
        Dual potentials, in the units of ``M``.  Entries where ``a`` (``b``) is
        zero are ``-inf`` (the plan's row or column is zero).  They are defined
        up to adding a constant to ``f`` and subtracting it from ``g``.
    n_sinkhorn : int or ndarray of int
        Sinkhorn sweeps (one ``g`` and one ``f`` update each), stage 1 plus any
        fallback sweeps in SNS.
    n_newton : int or ndarray of int
        Newton steps (0 for :func:`sinkhorn`).
    marginal_error : ndarray (or list of ndarray for a batch)
        History of the L1 marginal error ``||P 1 - a||_1 + ||Pᵀ 1 - b||_1`` at
        each check; the last entry is measured on the returned plan.
    converged : bool
        Whether the error reached ``tol`` (for a batch: every problem did).
    reg : float
        The regularisation used.
    n_cg : int
        Conjugate-gradient iterations spent in the Newton stage (SNS only).
    """

    plan: object = None
    cost: object = np.nan
    objective: object = np.nan
    f: object = None
    g: object = None
    n_sinkhorn: object = 0
    n_newton: object = 0
    marginal_error: object = field(default_factory=lambda: np.empty(0))
    reg: float = np.nan
    n_cg: object = 0
