"""Kronecker-structured sparse Bayesian learning (He & Joseph, IEEE TSP 2024).

Model: ``y = (A₁ ⊗ A₂ ⊗ … ⊗ A_I) x + e`` with ``A_i`` of shape ``(M_i, N_i)``,
``e ~ N(0, σ² I)`` and the Kronecker-structured prior
``x ~ N(0, diag(γ₁ ⊗ γ₂ ⊗ … ⊗ γ_I))``.  ``x`` is the C-order vectorisation of
an ``N₁ × … × N_I`` tensor, matching :func:`numpy.kron`.

**Posterior without the Kronecker product.**  With ``B_i = A_i Γ_i A_iᵀ =
U_i P_i U_iᵀ`` (eigendecomposition, ``M_i × M_i``),

.. math::

    Σ_y = σ^2 I + ⊗_i B_i = (⊗_i U_i)\\,(σ^2 I + ⊗_i P_i)\\,(⊗_i U_i)^T,

so ``Σ_y⁻¹ y``, the posterior mean ``μ = Γ Aᵀ Σ_y⁻¹ y`` and
``diag Σ = γ − γ² ∘ diag(Aᵀ Σ_y⁻¹ A)`` (with ``diag(Aᵀ Σ_y⁻¹ A) =
(⊗_i (U_iᵀA_i)^{∘2})ᵀ (σ² + ⊗ p_i)^{-1}``) are mode products costing
``O(Σ_i M_i³ + (M + N) Σ_i max(M_i, N_i))``; the ``M × N`` dictionary is
never formed.

**EM.**  The E-step gives ``Λ = μ² + diag Σ`` (a tensor of shape
``N₁ × … × N_I``).  The M-step maximises
``−Σ_j (log γ_j + Λ_j / γ_j)`` over Kronecker-structured ``γ``:

* ``method="am"`` (AM-KroSBL): alternating minimisation, closed-form cyclic
  updates ``γ_{1,a} = mean_{b,c} Λ_{abc} / (γ_{2,b} γ_{3,c})`` (and likewise
  for the other factors) until the Kronecker product stops changing, then the
  factors are rescaled to unit norm except the last.  Converges to a
  stationary point of the SBL cost.
* ``method="svd"`` (SVD-KroSBL): the best rank-one Kronecker approximation of
  ``Λ`` by successive rank-one SVDs: ``Λ`` as ``N₁ × (N₂…N_I)`` gives ``γ₁ =
  |u|``, then ``σ v`` as ``N₂ × (N₃…N_I)`` gives ``γ₂``, and so on.
* ``method="am_block"``: AM where each factor's ``γ_i`` is constant on known
  blocks (block sparsity, as for the IRS channel in the paper): the AM update
  is averaged over each block.
* ``method="classic"``: classic EM-SBL (unstructured ``γ``) on the explicit
  Kronecker product, the baseline of the paper (``O(M² N)`` per iteration).

The noise variance is known in the paper; here it may also be learned with
the EM update ``σ² ← (‖y − Aμ‖² + σ²(M − σ² tr Σ_y⁻¹))/M``.

Stopping rule (the reference code): ``‖γ − γ_old‖ / ‖γ_old‖ < tol`` on the
full Kronecker hyperparameter.  Pruning (reference code): entries of a factor
below ``prune · max`` of that factor are set to zero (``prune`` = 1e-3 for
SVD and classic, 1e-2 for AM).

References
----------
Y. He and G. Joseph, "Bayesian algorithms for Kronecker-structured sparse
vector recovery with application to IRS-MIMO channel estimation", IEEE
Transactions on Signal Processing, 2024 (arXiv:2307.14719).
"""

import time
from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import (
    check_array,
    check_positive_int,
    check_scalar,
    float_dtype,
)
from sparseopt.solvers._xp_linalg import device_backend
from sparseopt.solvers.sbl import _LOG2PI, SBLResult, blas_threads

__all__ = [
    "KroneckerSBLResult",
    "kron_apply",
    "kron_posterior",
    "kronecker_sbl",
]

_METHODS = ("svd", "am", "am_block", "classic")
_DEFAULT_PRUNE = {"svd": 1e-3, "classic": 1e-3, "am": 1e-2, "am_block": 1e-2}


@dataclass(kw_only=True, repr=False)
class KroneckerSBLResult(SBLResult):
    """Outcome of :func:`kronecker_sbl`.

    ``x`` is the posterior mean of the ``N = Π N_i`` coefficients (C-order
    vectorisation of the ``N₁ × … × N_I`` tensor), ``alpha = 1/γ``.

    Attributes
    ----------
    gammas : list of ndarray
        The factor hyperparameters ``γ_i`` (``γ = γ₁ ⊗ … ⊗ γ_I``); ``None``
        for ``method="classic"``.
    sigma_diag : ndarray of shape (N,)
        Posterior variances of the coefficients.
    method : str
    """

    gammas: list = field(default=None)
    sigma_diag: np.ndarray = None
    method: str = ""


# ---------------------------------------------------------------------------
# tensor helpers
# ---------------------------------------------------------------------------
def _mode_dot(T, M, mode):
    """``T ×_mode M``: multiply mode ``mode`` of tensor ``T`` by matrix ``M``.

    One batched matmul on the ``(before, N_mode, after)`` view of ``T``.
    """
    shape = T.shape
    a = int(np.prod(shape[:mode], dtype=np.int64))
    out = np.matmul(M, T.reshape(a, shape[mode], -1))
    return out.reshape((*shape[:mode], M.shape[0], *shape[mode + 1:]))


def kron_apply(factors, x, transpose=False):
    """``(A₁ ⊗ … ⊗ A_I) x`` (or ``ᵀ``) by mode products, never forming the product.

    Parameters
    ----------
    factors : list of ndarray of shape (M_i, N_i)
    x : ndarray of shape (N,) (or (M,) with ``transpose``)
    transpose : bool

    Returns
    -------
    ndarray of shape (M,) (or (N,))
    """
    shape = [A.shape[1] if not transpose else A.shape[0] for A in factors]
    T = np.asarray(x).reshape(shape)
    for i, A in enumerate(factors):
        T = _mode_dot(T, A.T if transpose else A, i)
    return T.ravel()


def _kron_vec(vectors):
    return reduce(np.multiply.outer, vectors)


def kron_posterior(factors, y, gammas, noise_variance):
    """Posterior of the Kronecker SBL model for given factor hyperparameters.

    Parameters
    ----------
    factors : list of ndarray of shape (M_i, N_i)
    y : ndarray of shape (M,)
    gammas : list of ndarray of shape (N_i,)
        Non-negative factor prior variances.
    noise_variance : float

    Returns
    -------
    mu : ndarray of shape (N,)
        Posterior mean.
    sigma_diag : ndarray of shape (N,)
        Posterior variances.
    loglik : float
        Log evidence ``−½(M log 2π + log|Σ_y| + yᵀΣ_y⁻¹y)``.
    trace_inv : float
        ``tr Σ_y⁻¹`` (for the noise update).
    """
    s2 = float(noise_variance)
    Us, Ps = [], []
    for A, g in zip(factors, gammas, strict=True):
        B = (A * g) @ A.T
        p_i, U = np.linalg.eigh(B)
        Us.append(U)
        Ps.append(np.maximum(p_i, 0.0))
    D = _kron_vec(Ps) + s2                      # eigenvalues of Σ_y, tensor M1×…×MI
    Y = y.reshape([A.shape[0] for A in factors])
    Z = Y
    for i, U in enumerate(Us):
        Z = _mode_dot(Z, U.T, i)
    Zs = Z / D
    quad = float((Z * Zs).sum())
    V = Zs
    for i, U in enumerate(Us):
        V = _mode_dot(V, U, i)                  # Σ_y⁻¹ y
    Mu = V
    for i, (A, g) in enumerate(zip(factors, gammas, strict=True)):
        Mu = _mode_dot(Mu, A.T * g[:, None], i)
    T = 1.0 / D
    for i, (A, U) in enumerate(zip(factors, Us, strict=True)):
        W = U.T @ A
        T = _mode_dot(T, (W * W).T, i)          # diag(Aᵀ Σ_y⁻¹ A)
    gam = _kron_vec(gammas)
    sigma_diag = np.maximum(gam - gam * gam * T, 0.0)
    M = y.size
    loglik = -0.5 * (M * _LOG2PI + float(np.log(D).sum()) + quad)
    return Mu.ravel(), sigma_diag.ravel(), loglik, float((1.0 / D).sum())


def _rank1_factors(Lam):
    """Successive rank-one SVDs: ``Λ ≈ γ₁ ⊗ … ⊗ γ_I`` (SVD-KroSBL M-step)."""
    shape = Lam.shape
    R = Lam
    out = []
    for i in range(len(shape) - 1):
        Rm = R.reshape(shape[i], -1)
        G = Rm @ Rm.T
        evecs = np.linalg.eigh(G)[1]
        u = np.abs(evecs[:, -1])
        out.append(u)
        R = (u @ Rm).reshape(shape[i + 1:])     # σ v = Rmᵀ u
    out.append(np.abs(np.asarray(R).ravel()))
    return out


def _block_mean(g, labels):
    if labels is None:
        return g
    sums = np.bincount(labels, weights=g)
    counts = np.bincount(labels)
    return (sums / counts)[labels]


def _am_update(Lam, gammas, labels, inner_tol, inner_max_iter):
    """Alternating minimisation of the M-step (AM-KroSBL, optionally block-wise)."""
    I = len(gammas)
    gammas = [g.copy() for g in gammas]
    old = _kron_vec(gammas)
    for _ in range(inner_max_iter):
        for i in range(I):
            others = [gammas[j] for j in range(I) if j != i]
            other = _kron_vec(others).ravel() if others else np.ones(1)
            mask = other > 0
            Li = np.moveaxis(Lam, i, 0).reshape(Lam.shape[i], -1)
            if mask.any():
                gi = (Li[:, mask] / other[mask]).mean(axis=1)
            else:
                gi = np.zeros(Lam.shape[i])
            gi = _block_mean(gi, labels[i])
            gi[gammas[i] == 0] = 0.0
            gammas[i] = gi
        new = _kron_vec(gammas)
        dn = float(np.linalg.norm(new - old))
        ref = float(np.linalg.norm(old))
        old = new
        if ref == 0 or dn <= inner_tol * ref:
            break
    # rescale: unit norm for all factors but the last, which takes the scale
    scale = 1.0
    for i in range(I - 1):
        nrm = float(np.linalg.norm(gammas[i]))
        if nrm > 0:
            gammas[i] = gammas[i] / nrm
            scale *= nrm
    gammas[-1] = gammas[-1] * scale
    return gammas


def _check_factors(y, factors):
    if isinstance(factors, np.ndarray) and factors.ndim == 2:
        factors = [factors]
    try:
        factors = list(factors)
    except TypeError as exc:
        raise TypeError("factors must be a sequence of 2-D arrays") from exc
    if not factors:
        raise ValueError("factors must hold at least one matrix")
    out = [check_array(A, f"factors[{i}]", ndim=2).astype(np.float64, copy=False)
           for i, A in enumerate(factors)]
    M = int(np.prod([A.shape[0] for A in out]))
    if M != y.shape[0]:
        shapes = " ⊗ ".join(f"{A.shape[0]}×{A.shape[1]}" for A in out)
        raise ValueError(
            f"factors do not match y: the Kronecker product {shapes} has {M} rows, "
            f"y has {y.shape[0]} entries")
    for i, A in enumerate(out):
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"factors[{i}] has an empty dimension: shape {A.shape}")
    return out


def _check_blocks(block_sizes, factors):
    if block_sizes is None:
        raise ValueError("method='am_block' needs block_sizes")
    if isinstance(block_sizes, (int, np.integer)) and not isinstance(block_sizes, bool):
        block_sizes = [int(block_sizes)] * len(factors)
    block_sizes = list(block_sizes)
    if len(block_sizes) != len(factors):
        raise ValueError(f"block_sizes needs one entry per factor ({len(factors)}), "
                         f"got {len(block_sizes)}")
    labels = []
    for i, (b, A) in enumerate(zip(block_sizes, factors, strict=True)):
        N = A.shape[1]
        if isinstance(b, (int, np.integer)) and not isinstance(b, bool):
            b = check_positive_int(int(b), f"block_sizes[{i}]")
            labels.append(np.arange(N) // b)
        else:
            lab = np.asarray(b)
            if lab.shape != (N,) or lab.dtype.kind not in "iu":
                raise ValueError(
                    f"block_sizes[{i}] must be an int or {N} integer block labels")
            labels.append(np.unique(lab, return_inverse=True)[1])
    return labels


def kronecker_sbl(y, factors, *, method="svd", noise_variance=None, block_sizes=None,
                  tol=1e-4, max_iter=500, prune=None, inner_tol=1e-5,
                  inner_max_iter=100, n_threads=None, verbose=0, callback=None):
    """Sparse recovery with a Kronecker dictionary by sparse Bayesian learning.

    Recovers a sparse ``x`` from ``y = (A₁ ⊗ … ⊗ A_I) x + e`` with a
    Kronecker-structured prior variance ``γ₁ ⊗ … ⊗ γ_I`` (He & Joseph).  See the
    module docstring for the algorithms.

    Parameters
    ----------
    y : array_like of shape (M,)
        Measurements, ``M = Π M_i``.
    factors : sequence of array_like of shape (M_i, N_i)
        The dictionary factors (one 2-D array is a single factor: classic SBL).
    method : {"svd", "am", "am_block", "classic"}, default="svd"
    noise_variance : float or None
        Known ``σ²`` (as in the paper); ``None`` learns it (floored at
        ``1e-6 ‖y‖²/M``).
    block_sizes : int, or sequence of (int or array of int), optional
        ``method="am_block"`` only: per factor, the size of consecutive
        blocks (or block labels) on which ``γ_i`` is constant.
    tol : float, default=1e-4
        Relative change of ``γ`` at which to stop.
    max_iter : int, default=500
        EM iterations.
    prune : float or None
        Relative per-factor pruning threshold (default 1e-3 for SVD and
        classic, 1e-2 for AM, as the reference code).
    inner_tol, inner_max_iter
        AM inner loop: relative change of ``γ₁ ⊗ … ⊗ γ_I`` and iteration cap.
    n_threads : int or None
        BLAS threads (default: the configured ``n_threads``, else 1).
    verbose : int
    callback : callable or None

    Returns
    -------
    KroneckerSBLResult
        ``history`` holds ``"log_marginal_likelihood"``, ``"stop_crit"`` and
        ``"noise_variance"`` per iteration.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import kronecker_sbl
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    >>> x1, x2 = np.zeros(10), np.zeros(10)
    >>> x1[[1, 4]], x2[[0, 7]] = [1.0, -1.0], [2.0, 1.0]
    >>> y = np.kron(A1, A2) @ np.kron(x1, x2)
    >>> res = kronecker_sbl(y, [A1, A2], noise_variance=1e-6)
    >>> sorted(np.flatnonzero(np.abs(res.x) > 1e-2))
    [np.int64(10), np.int64(17), np.int64(40), np.int64(47)]
    """
    nx = device_backend(y=y, factors=factors)
    if nx is not None:  # CuPy (or another non-NumPy namespace): the device path
        from sparseopt.solvers.sbl_xp_kron import kronecker_sbl_xp

        return kronecker_sbl_xp(nx, y, factors, method, noise_variance, block_sizes, tol,
                                max_iter, prune, inner_tol, inner_max_iter, verbose,
                                callback)
    t_start = time.perf_counter()
    y = check_array(y, "y", ndim=1)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    in_dtypes = [y.dtype] + [np.asarray(A).dtype for A in
                             (factors if not isinstance(factors, np.ndarray)
                              or factors.ndim != 2 else [factors])]
    y = y.astype(np.float64, copy=False)
    factors = _check_factors(y, factors)
    out_dtype = float_dtype(*in_dtypes)
    if noise_variance is not None:
        noise_variance = check_scalar(noise_variance, "noise_variance", low=0.0,
                                      include_low=False)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    inner_tol = check_scalar(inner_tol, "inner_tol", low=0.0)
    inner_max_iter = check_positive_int(inner_max_iter, "inner_max_iter")
    prune = _DEFAULT_PRUNE[method] if prune is None else check_scalar(
        prune, "prune", low=0.0, high=1.0, include_high=False)
    labels = _check_blocks(block_sizes, factors) if method == "am_block" else None
    if method != "am_block" and block_sizes is not None:
        raise ValueError("block_sizes is only used by method='am_block'")
    with blas_threads(n_threads, default=1):
        if method == "classic":
            res = _classic(y, factors, noise_variance, tol, max_iter, prune, verbose,
                           callback, t_start)
        else:
            res = _kron_em(y, factors, method, noise_variance, labels, tol, max_iter,
                           prune, inner_tol, inner_max_iter, verbose, callback, t_start)
    # working precision float64; outputs follow the inputs' dtype
    res.x = res.x.astype(out_dtype, copy=False)
    res.sigma_diag = res.sigma_diag.astype(out_dtype, copy=False)
    return res


def _kron_em(y, factors, method, noise_variance, labels, tol, max_iter, prune,
             inner_tol, inner_max_iter, verbose, callback, t_start):
    M = y.size
    Ns = [A.shape[1] for A in factors]
    learn = noise_variance is None
    yy = float(y @ y)
    var_y = yy / M if yy > 0 else 1e-10  # zero signal: the empty model
    s2 = noise_variance if not learn else 0.01 * var_y
    s2_floor = 1e-6 * var_y
    gammas = [np.ones(N) for N in Ns]
    if yy == 0.0:
        gammas = [np.zeros(N) for N in Ns]
    if labels is None:
        labels = [None] * len(factors)
    history = {"log_marginal_likelihood": [], "stop_crit": [], "noise_variance": []}
    result = KroneckerSBLResult(tol=tol, method=method)
    monitor = IterationMonitor("kronecker_sbl", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        mu, sdiag, ll, tr_inv = kron_posterior(factors, y, gammas, s2)
        history["log_marginal_likelihood"].append(ll)
        history["noise_variance"].append(s2)
        Lam = (mu * mu + sdiag).reshape(Ns)
        old = _kron_vec(gammas)
        if method == "svd":
            new = _rank1_factors(Lam)
            new = [np.where(g_old > 0, g, 0.0) for g, g_old in zip(new, gammas,
                                                                   strict=True)]
        else:
            new = _am_update(Lam, gammas, labels, inner_tol, inner_max_iter)
        for g in new:
            gmax = g.max(initial=0.0)
            g[g < prune * gmax] = 0.0
        if learn:
            r = y - kron_apply(factors, mu)
            s2 = max((float(r @ r) + s2 * (M - s2 * tr_inv)) / M, s2_floor)
        gammas = new
        full = _kron_vec(gammas)
        ref = float(np.linalg.norm(old))
        stop_crit = float(np.linalg.norm(full - old)) / ref if ref > 0 else 0.0
        history["stop_crit"].append(stop_crit)
        if stop_crit < tol:
            converged = True
            message = "converged: relative change of gamma below tol"
            break
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill(result, factors, y, gammas, s2, history, it, stop_crit, False,
                      message)
            if monitor.step(it, result, log_marginal_likelihood=ll,
                            stop_crit=stop_crit):
                message = "stopped by callback"
                break
    monitor.close()
    _fill(result, factors, y, gammas, s2, history, it, stop_crit, converged, message)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("kronecker_sbl", stop_crit, tol, it,
                           what="relative change of gamma")
    return result


def _fill(result, factors, y, gammas, s2, history, it, stop_crit, converged, message):
    mu, sdiag, ll, _ = kron_posterior(factors, y, gammas, s2)
    gam = _kron_vec(gammas).ravel()
    result.x = mu
    result.sigma_diag = sdiag
    result.gammas = [g.copy() for g in gammas]
    result.alpha = np.where(gam > 0, 1.0 / np.where(gam > 0, gam, 1.0), np.inf)
    result.active = np.flatnonzero(gam > 0)
    result.noise_variance = float(s2)
    result.log_marginal_likelihood = float(ll)
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}


def _classic(y, factors, noise_variance, tol, max_iter, prune, verbose, callback,
             t_start):
    """Classic EM-SBL on the explicit Kronecker product (the paper's baseline)."""
    from sparseopt.solvers.sbl_em import sbl_em

    A = reduce(np.kron, factors)
    res = sbl_em(A, y, noise_variance=noise_variance, tol=tol, max_iter=max_iter,
                 prune=prune, normalize=False, verbose=verbose, callback=callback)
    out = KroneckerSBLResult(tol=tol, method="classic")
    for name in ("x", "n_iter", "converged", "stop_crit", "message", "history",
                 "alpha", "active", "noise_variance", "log_marginal_likelihood"):
        setattr(out, name, getattr(res, name))
    out.sigma_diag = np.zeros(A.shape[1])
    out.sigma_diag[res.active] = np.diag(res.sigma)
    out.timings["total"] = time.perf_counter() - t_start
    return out
