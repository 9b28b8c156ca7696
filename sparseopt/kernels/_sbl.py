"""Numba kernels of the Tipping–Faul fast marginal likelihood loop.

One pass over the ``p`` candidate basis functions per iteration: the sparsity
and quality factors of every candidate, the change of the log evidence for
adding, re-estimating or deleting it, and the best action (Tipping & Faul
2003, eqs. (18)–(25); the priorities of SparseBayes v2).  All arrays are
float64 (the solver works in float64 whatever the input dtype), so each kernel
compiles for one signature.
"""

import numpy as np
from numba import njit

ACTION_REESTIMATE = 0
ACTION_ADD = 1
ACTION_DELETE = -1


@njit(cache=True, nogil=True)
def tf_select(S_in, Q_in, pos, alpha, candidate, zero_factor, m, priority_deletion):
    """Best action of one Tipping–Faul iteration.

    Parameters
    ----------
    S_in, Q_in : float64[p]
        ``S_j = φ_jᵀ C⁻¹ φ_j`` and ``Q_j = φ_jᵀ C⁻¹ y`` with the current model.
    pos : int64[p]
        Position of column ``j`` in the active set, ``-1`` outside it.
    alpha : float64[m]
        Precisions of the active columns.
    candidate : bool[p]
        Columns allowed to enter (non-zero and not aligned with an active one).
    zero_factor : float
        ``θ_j = q_j² − s_j`` at or below this counts as non-positive.
    m : int
        Size of the active set (a column is never deleted when ``m == 1``).
    priority_deletion : bool
        When some deletion increases the evidence, take the best deletion.

    Returns
    -------
    j : int
        Selected column (``-1`` if no action increases the evidence).
    action : int
        ``ACTION_ADD``, ``ACTION_REESTIMATE`` or ``ACTION_DELETE``.
    delta_ml : float
        Increase of the log evidence of the action.
    new_alpha : float
        New precision (add / re-estimate).
    any_delete : bool
        Whether some active column has ``θ ≤ zero_factor``.
    """
    p = S_in.shape[0]
    best = -1
    best_d = 0.0
    best_a = 0
    best_alpha = np.inf
    del_j = -1
    del_d = 0.0
    any_delete = False
    for j in range(p):
        k = pos[j]
        S = S_in[j]
        Q = Q_in[j]
        if k >= 0:
            a = alpha[k]
            r = a / (a - S)
            s = r * S
            q = r * Q
            theta = q * q - s
            if theta > zero_factor:
                na = s * s / theta
                delta = 1.0 / na - 1.0 / a
                d = 0.5 * (delta * Q * Q / (delta * S + 1.0) - np.log1p(S * delta))
                if d > best_d:
                    best_d = d
                    best = j
                    best_a = ACTION_REESTIMATE
                    best_alpha = na
            elif m > 1:
                any_delete = True
                d = -0.5 * (q * q / (s + a) - np.log1p(s / a))
                if d > del_d or del_j < 0:
                    del_d = d
                    del_j = j
        elif candidate[j]:
            theta = Q * Q - S
            if theta > zero_factor:
                quot = Q * Q / S
                d = 0.5 * (quot - 1.0 - np.log(quot))
                if d > best_d:
                    best_d = d
                    best = j
                    best_a = ACTION_ADD
                    best_alpha = S * S / theta
    if any_delete and (priority_deletion or del_d > best_d):
        return del_j, ACTION_DELETE, del_d, np.inf, any_delete
    return best, best_a, best_d, best_alpha, any_delete


@njit(cache=True, nogil=True)
def tf_rank1(S_in, Q_in, v, a, b):
    """In place ``S_in += a v²`` and ``Q_in += b v`` (the rank-one factor updates)."""
    for j in range(S_in.shape[0]):
        vj = v[j]
        S_in[j] += a * vj * vj
        Q_in[j] += b * vj


@njit(cache=True, nogil=True)
def max_abs_rows(G, m):
    """``max_k |G[j, k]|`` over the first ``m`` columns, for every row ``j``."""
    p = G.shape[0]
    out = np.zeros(p)
    for k in range(m):
        for j in range(p):
            g = abs(G[j, k])
            if g > out[j]:
                out[j] = g
    return out


@njit(cache=True, nogil=True)
def tf_reestimate(Sigma, mu, G, S_in, Q_in, k, kappa, beta):
    """Rank-one update of a re-estimation of ``α_k`` (Tipping & Faul, app. A).

    In place: ``Σ -= κ s sᵀ``, ``μ -= κ μ_k s`` with ``s = Σ[:, k]``, and with
    ``v = β G s`` (``G = Φᵀ Φ_active``, Fortran order): ``S += κ v²``,
    ``Q += κ μ_k v``.  ``κ = 1 / (Σ_kk + 1/(α_new − α_k))``.
    """
    m = Sigma.shape[0]
    p = G.shape[0]
    s = Sigma[:, k].copy()
    mu_k = mu[k]
    for i in range(m):
        ks = kappa * s[i]
        for j in range(m):
            Sigma[i, j] -= ks * s[j]
        mu[i] -= mu_k * ks
    v = np.zeros(p)
    for j in range(m):
        sj = s[j]
        for i in range(p):
            v[i] += G[i, j] * sj
    c = mu_k * kappa
    for i in range(p):
        vi = beta * v[i]
        S_in[i] += kappa * vi * vi
        Q_in[i] += c * vi
