r"""Robust PCA: principal component pursuit (inexact ALM) and accelerated AltProj.

Robust PCA splits a data matrix into a low-rank part and a sparse part,
:math:`M = L + S`.

**Principal component pursuit** (Candès, Li, Ma & Wright 2011) solves the convex
program

.. math::

    \min_{L, S} \|L\|_* + \lambda \|S\|_1 \quad \text{s.t.} \quad L + S = M,

with :math:`\lambda = 1/\sqrt{\max(m, n)}` by default.  :func:`ialm` is the
inexact augmented Lagrange multiplier method of Lin, Chen & Ma (2010): with
the augmented Lagrangian
:math:`\|L\|_* + \lambda\|S\|_1 + \langle Y, M - L - S\rangle + \tfrac{\mu}{2}\|M - L - S\|_F^2`
each iteration takes one exact block step in each variable and a dual ascent,

.. math::

    S &\leftarrow \mathcal{S}_{\lambda/\mu}(M - L + Y/\mu), \qquad
    L \leftarrow \mathcal{D}_{1/\mu}(M - S + Y/\mu),\\
    Y &\leftarrow Y + \mu (M - L - S), \qquad \mu \leftarrow \min(\rho\mu, \bar\mu),

where :math:`\mathcal{S}_\tau` is entrywise soft thresholding and
:math:`\mathcal{D}_\tau` singular value thresholding, computed by a partial SVD
with rank prediction (:class:`~sparseopt.solvers._partial_svd.ThresholdedSVD`).
It stops when :math:`\|M - L - S\|_F / \|M\|_F \le` ``tol``.  Starting values
are those of the reference code: :math:`Y_0 = M / \max(\|M\|_2, \|M\|_\infty/\lambda)`,
:math:`\mu_0 = 1.25/\|M\|_2`, :math:`\bar\mu = 10^7 \mu_0`, :math:`\rho = 1.5`.

**Accelerated AltProj** (Cai, Cai & Wei 2019) is a non-convex method for a
known rank :math:`r`: alternate a rank-:math:`r` projection restricted to the
tangent space of the current low-rank iterate (two QR factorisations of
:math:`n \times r` blocks and one :math:`2r \times 2r` SVD, :math:`O(mnr)` per
iteration) with hard thresholding of the residual at
:math:`\zeta_k = \beta(\sigma_{r+1} + \gamma^k \sigma_1)`.  Much faster than
PCP when the rank is known and the problem is in its regime.

**Missing entries.** Both accept a boolean ``mask`` (True = observed) and then
solve the problem restricted to the observed entries: for PCP,
:math:`\min \|L\|_* + \lambda\|P_\Omega S\|_1` s.t. :math:`L + S = M` with
:math:`S` free (unpenalised) off :math:`\Omega`, which equals
:math:`\min \|L\|_* + \lambda\|S\|_1` s.t. :math:`P_\Omega(L + S) = P_\Omega M`; for
AltProj the unobserved entries are imputed by the current low-rank iterate.
``L`` is then also a completion of the matrix; ``S`` is zero off the mask.

References
----------
E. J. Candès, X. Li, Y. Ma and J. Wright, "Robust principal component
analysis?", Journal of the ACM 58(3), 2011.

Z. Lin, M. Chen and Y. Ma, "The augmented Lagrange multiplier method for exact
recovery of corrupted low-rank matrices", arXiv:1009.5055, 2010.

H. Cai, J.-F. Cai and K. Wei, "Accelerated alternating projections for robust
principal component analysis", Journal of Machine Learning Research 20, 2019.
"""

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from sparseopt._config import get_config, numba_threads
from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._result import SolverResult
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.solvers import rpca_kernels as K
from sparseopt.solvers._partial_svd import (
    ThresholdedSVD,
    array_namespace,
    randomized_svd,
    spectral_norm,
)
from sparseopt.solvers._rpca_xp import prepare_xp, robust_pca_xp, to_sparse_output_xp
from sparseopt.solvers._xp_checks import device_backend

__all__ = ["RobustPCAResult", "accaltproj", "ialm", "robust_pca"]

METHODS = ("ialm", "accaltproj")
SVD_METHODS = ("auto", "randomized", "lanczos", "full")
# "auto": return S as CSR when at most this fraction of its entries are nonzero
SPARSE_DENSITY = 0.1
# below this many entries BLAS threads cost more than they bring (small GEMMs,
# thin QRs); an oversubscribed host makes spinning BLAS threads 5-10x slower
SMALL_PROBLEM = 300 * 300


def _thread_limits(size, xp):
    """Apply ``config n_threads`` to Numba and BLAS; one BLAS thread for small M."""
    n = get_config()["n_threads"]
    if n is None and size <= SMALL_PROBLEM:
        n = 1
    stack = contextlib.ExitStack()
    stack.enter_context(numba_threads(n))
    if n is not None and xp is np:
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(n, user_api="blas"))
    return stack


@dataclass(kw_only=True, repr=False)
class RobustPCAResult(SolverResult):
    r"""Outcome of :func:`robust_pca`.

    Attributes
    ----------
    low_rank : (m, n) ndarray
        The low-rank component ``L`` (also ``x``).
    sparse : (m, n) ndarray or CSR
        The sparse component ``S`` (a :class:`sparseopt.CSR` when sparse enough
        and ``sparse_output`` allows it).
    U, s, Vt : ndarray
        Thin SVD of ``low_rank``: ``low_rank = U @ diag(s) @ Vt``.
    rank : int
        ``len(s)``.
    lam : float or None
        The ℓ1 weight used (PCP only).
    method : str
        ``"ialm"`` or ``"accaltproj"``.
    n_svd : int
        Partial or full SVDs computed (IALM).
    dual : (m, n) ndarray or None
        IALM's final Lagrange multiplier ``Y``, a dual certificate: at a PCP
        solution ``Y`` is a subgradient of :math:`\|L\|_*` at ``L`` and of
        :math:`\lambda\|S\|_1` at ``S`` (zero off the mask).  None for
        AccAltProj.
    history : dict
        ``"residual"``: relative residual ``||P(M - L - S)||_F / ||P M||_F`` per
        iteration; ``"rank"``: rank of ``L`` per iteration.
    """

    low_rank: object = None
    sparse: object = None
    U: object = None
    s: object = None
    Vt: object = None
    rank: int = 0
    lam: float | None = None
    method: str = ""
    n_svd: int = 0
    dual: object = None

    @property
    def residual(self):
        """History of the relative residual (``history["residual"]``)."""
        return self.history.get("residual")


# ---------------------------------------------------------------------------
# input handling


def _prepare(M, mask, name="M"):
    """Validate ``M`` and ``mask``; return (xp, D (C-contiguous working copy
    with unobserved entries set to 0), mask (bool or None))."""
    xp = array_namespace(M, mask)
    if hasattr(M, "toarray") or hasattr(M, "todense"):
        raise TypeError(f"{name} must be a dense array, got sparse {type(M).__name__}")
    D = xp.asarray(M)
    if D.dtype.kind in "biu":
        D = D.astype(xp.float64)
    elif D.dtype.kind == "f":
        if D.dtype not in (xp.float32, xp.float64):
            D = D.astype(xp.float64)
    else:
        raise TypeError(f"{name} must hold real numbers, got dtype {D.dtype}")
    if D.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {D.shape}")
    if D.shape[0] == 0 or D.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {D.shape}")
    if mask is not None:
        mask = xp.asarray(mask)
        if mask.shape != D.shape:
            raise ValueError(
                f"mask must have the shape of {name} {D.shape}, got {mask.shape}")
        if mask.dtype != xp.bool_:
            if mask.dtype.kind not in "biu" or bool(((mask != 0) & (mask != 1)).any()):
                raise TypeError("mask must be a boolean array (True = observed)")
            mask = mask.astype(xp.bool_)
        if not bool(mask.any()):
            raise ValueError("mask observes no entry of " + name)
        if bool(mask.all()):
            mask = None
    finite = xp.isfinite(D)
    bad = ~finite if mask is None else (~finite & mask)
    if bool(bad.any()):
        what = "NaN" if bool(xp.isnan(D[bad]).any()) else "infinity"
        hint = "" if mask is None else " observed"
        raise ValueError(
            f"{name} contains {what} at{hint} entries; all observed entries must be "
            "finite (mark missing entries with mask=)")
    D = xp.array(D, order="C", copy=True)  # never modify the caller's array
    if mask is not None:
        D[~mask] = 0
        mask = xp.ascontiguousarray(mask)
    return xp, D, mask


def _effective_tol(tol, dtype):
    # the residual cannot be measured below a few ulps of the data: floor the
    # tolerance at 10 eps of the working precision (only binds for float32)
    return max(tol, 10 * float(np.finfo(dtype).eps))


def _to_sparse_output(S, sparse_output, xp):
    if sparse_output is False:
        return S
    nnz = int(xp.count_nonzero(S))
    if sparse_output == "auto" and nnz > SPARSE_DENSITY * S.size:
        return S
    from sparseopt.formats import CSR

    return CSR.from_dense(S)


def _flat(a):
    return a.reshape(-1)


# ---------------------------------------------------------------------------
# inexact ALM


def ialm(D, mask, *, lam, tol, max_iter, svd_method, rng, rho=1.5, mu=None,
         verbose=0, callback=None, fused=None, n_power_iter=2, n_power_iter_warm=0,
         n_oversamples=10):
    """Inexact ALM for principal component pursuit on a prepared working copy.

    ``D`` is C-contiguous with zeros off ``mask``; it is not modified.
    Returns ``(L, S, U, s, Vt, info)``; see :func:`robust_pca` for the options.
    ``fused`` selects the Numba kernels (default: on NumPy arrays) or their
    array-namespace twins (CuPy; ``False`` runs them on NumPy for testing).
    """
    xp = array_namespace(D)
    numpy_path = (xp is np) if fused is None else bool(fused)
    fmask = K.kernel_mask(mask, D.size, xp)
    d_norm = float(xp.linalg.norm(D))
    tol = _effective_tol(tol, D.dtype)
    history = {"residual": [], "rank": []}
    t0 = time.perf_counter()
    if d_norm == 0.0:
        Z0 = xp.zeros_like(D)
        return Z0, Z0.copy(), Z0[:, :0], Z0[0, :0], Z0[:0], dict(
            n_iter=0, converged=True, stop_crit=0.0, history=history, n_svd=0,
            dual=Z0.copy(),
            message="M is zero", stopped=False, tol=tol,
            timings={"total": time.perf_counter() - t0})

    norm_two = spectral_norm(D, rng=rng)
    norm_inf = float(xp.max(xp.abs(D))) / lam
    Y = D / max(norm_two, norm_inf)
    if mu is None:
        mu = 1.25 / norm_two
    mu_bar = mu * 1e7
    A = xp.zeros_like(D)
    E = xp.empty_like(D)
    X = xp.empty_like(D)
    fD, fA, fE, fX, fY = _flat(D), _flat(A), _flat(E), _flat(X), _flat(Y)
    svt = ThresholdedSVD(D.shape, method="randomized" if svd_method == "auto"
                         else svd_method, rng=rng, n_power_iter=n_power_iter,
                         n_power_iter_warm=n_power_iter_warm,
                         n_oversamples=n_oversamples)
    monitor = IterationMonitor("robust_pca", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    # SVT inexactness enters the residual M - L - S directly: keep it an order
    # of magnitude below the current residual (errors then decay geometrically
    # with it, as inexact ALM needs) and below what the stopping rule can see
    svd_floor = 0.1 * tol * d_norm
    svd_atol = max(svd_floor, 0.01 * d_norm)
    U, s, Vt = D[:, :0], D[0, :0], D[:0]
    converged = stopped = False
    stop_crit = np.inf
    it = 0
    t_svd = 0.0
    try:
        for it in range(1, max_iter + 1):
            inv_mu = 1.0 / mu
            if numpy_path:
                K.ialm_sparse_step(fD, fA, fY, inv_mu, lam * inv_mu, fmask, fE, fX)
            else:
                K.ialm_sparse_step_xp(xp, D, A, Y, inv_mu, lam * inv_mu,
                                      _mask_or_empty(mask, xp), E, X)
            ts = time.perf_counter()
            U, s, Vt = svt(X, inv_mu, svd_atol)
            t_svd += time.perf_counter() - ts
            s = s - inv_mu
            if s.shape[0]:
                xp.matmul(U * s.astype(D.dtype, copy=False), Vt, out=A)
            else:
                A[...] = 0
            if numpy_path:
                z2 = K.ialm_dual_step(fD, fA, fE, fY, mu)
            else:
                z2 = K.ialm_dual_step_xp(xp, D, A, E, Y, mu)
            mu = min(mu * rho, mu_bar)
            stop_crit = float(np.sqrt(z2)) / d_norm
            svd_atol = max(svd_floor, 0.01 * float(np.sqrt(z2)))
            history["residual"].append(stop_crit)
            history["rank"].append(int(s.shape[0]))
            if stop_crit <= tol:
                converged = True
                break
            partial = None
            if callback is not None:
                partial = RobustPCAResult(
                    x=A, low_rank=A, sparse=E, U=U, s=s, Vt=Vt, rank=int(s.shape[0]),
                    n_iter=it, stop_crit=stop_crit, tol=tol, lam=lam, method="ialm",
                    history=history)
            if monitor.step(it, partial, residual=stop_crit, rank=s.shape[0],
                            mu=mu):
                stopped = True
                break
    finally:
        monitor.close()
    S = E
    if mask is not None:
        S[~mask] = 0
    message = ("converged" if converged else
               "stopped by callback" if stopped else "max_iter reached")
    info = dict(n_iter=it, converged=converged, stop_crit=stop_crit,
                history={k: np.asarray(v) for k, v in history.items()},
                n_svd=svt.n_svd, message=message, stopped=stopped, tol=tol,
                dual=Y, n_full_svd=svt.n_full,
                timings={"total": time.perf_counter() - t0, "svd": t_svd})
    return A, S, U, s, Vt, info


def _mask_or_empty(mask, xp):
    """``mask`` or an empty array (the kernels' "all observed")."""
    return xp.zeros(0, dtype=xp.bool_) if mask is None else mask


# ---------------------------------------------------------------------------
# accelerated AltProj


def _hard_threshold_step(fused, xp, fD, fL, zeta, inv_p, fmask, fS, fZ, D, L, mask, S,
                         Z):
    if fused:
        return K.altproj_threshold_step(fD, fL, zeta, inv_p, fmask, fS, fZ)
    return K.altproj_threshold_step_xp(xp, D, L, zeta, inv_p, _mask_or_empty(mask, xp),
                                       S, Z)


def accaltproj(D, mask, *, rank, tol, max_iter, rng, beta=None, beta_init=None,
               gamma=0.5, verbose=0, callback=None, fused=None):
    """Accelerated alternating projections (Cai, Cai & Wei 2019) for a known rank.

    ``D`` is C-contiguous with zeros off ``mask``; it is not modified.
    Returns ``(L, S, U, s, Vt, info)``; see :func:`robust_pca` for the options;
    ``fused`` as in :func:`ialm`.
    """
    xp = array_namespace(D)
    fused = (xp is np) if fused is None else bool(fused)
    m, n = D.shape
    r = rank
    dt = D.dtype
    fmask = K.kernel_mask(mask, D.size, xp)
    d_norm = float(xp.linalg.norm(D))
    tol = _effective_tol(tol, dt)
    history = {"residual": [], "rank": []}
    t0 = time.perf_counter()
    if beta is None:
        beta = 1.0 / (4.0 * (m * n) ** 0.25)
    if beta_init is None:
        beta_init = 4.0 * beta
    p_obs = 1.0 if mask is None else float(xp.count_nonzero(mask)) / D.size
    S = xp.zeros_like(D)
    L = xp.zeros_like(D)
    Z = xp.empty_like(D)
    if d_norm == 0.0:
        return L, S, D[:, :0], D[0, :0], D[:0], dict(
            n_iter=0, converged=True, stop_crit=0.0, history=history, n_svd=0,
            message="M is zero", stopped=False, tol=tol,
            timings={"total": time.perf_counter() - t0})
    fD, fL, fS, fZ = _flat(D), _flat(L), _flat(S), _flat(Z)

    def top_svd(A, k):
        if min(m, n) <= 3 * k + 20:
            U, s, Vt = xp.linalg.svd(A, full_matrices=False)
            return U[:, :k], s[:k], Vt[:k]
        return randomized_svd(A, k, n_oversamples=10, n_power_iter=3, rng=rng)

    # initialisation (Cai, Cai & Wei 2019, Algorithm 2)
    inv_p = 1.0 / p_obs
    sigma1 = spectral_norm(D, rng=rng) * inv_p
    zeta = beta_init * sigma1
    _hard_threshold_step(fused, xp, fD, fL, zeta, inv_p, fmask, fS, fZ,
                              D, L, mask, S, Z)
    # Z = P_obs(D - S_{-1}) / p (L is zero), the usual completion start
    U, s, Vt = top_svd(Z, r)
    zeta = beta * float(s[0])
    xp.matmul(U * s, Vt, out=L)
    V = Vt.T
    z2 = _hard_threshold_step(fused, xp, fD, fL, zeta, inv_p, fmask, fS, fZ,
                              D, L, mask, S, Z)
    stop_crit = float(np.sqrt(z2)) / d_norm
    history["residual"].append(stop_crit)
    history["rank"].append(r)
    monitor = IterationMonitor("robust_pca", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = stop_crit <= tol
    stopped = False
    it = 0
    gk = 1.0
    try:
        while not converged and it < max_iter:
            it += 1
            # tangent-space projection of Z = P_obs(D - S) + P_unobs(L)
            ZV = Z @ V                    # m x r
            ZtU = Z.T @ U                 # n x r
            C = U.T @ ZV                  # r x r
            Q2, R2 = xp.linalg.qr(ZV - U @ C)
            Q1, R1 = xp.linalg.qr(ZtU - V @ C.T)
            Mk = xp.concatenate([
                xp.concatenate([C, R1.T], axis=1),
                xp.concatenate([R2, xp.zeros_like(C)], axis=1)], axis=0)
            Um, sm, Vmt = xp.linalg.svd(Mk)
            U = xp.concatenate([U, Q2], axis=1) @ Um[:, :r]
            V = xp.concatenate([V, Q1], axis=1) @ Vmt[:r].T
            s = sm[:r]
            xp.matmul(U * s, V.T, out=L)
            gk *= gamma
            sig_next = float(sm[r]) if sm.shape[0] > r else 0.0
            zeta = beta * (sig_next + gk * float(sm[0]))
            z2 = _hard_threshold_step(fused, xp, fD, fL, zeta, inv_p, fmask, fS, fZ, D, L, mask,
                                      S, Z)
            stop_crit = float(np.sqrt(z2)) / d_norm
            history["residual"].append(stop_crit)
            history["rank"].append(r)
            if stop_crit <= tol:
                converged = True
                break
            partial = None
            if callback is not None:
                partial = RobustPCAResult(
                    x=L, low_rank=L, sparse=S, U=U, s=s, Vt=V.T, rank=r, n_iter=it,
                    stop_crit=stop_crit, tol=tol, method="accaltproj",
                    history=history)
            if monitor.step(it, partial, residual=stop_crit, zeta=zeta):
                stopped = True
                break
    finally:
        monitor.close()
    message = ("converged" if converged else
               "stopped by callback" if stopped else "max_iter reached")
    info = dict(n_iter=it, converged=converged, stop_crit=stop_crit,
                history={k: np.asarray(v) for k, v in history.items()},
                n_svd=it + 2, message=message, stopped=stopped, tol=tol,
                timings={"total": time.perf_counter() - t0})
    # sort the factors (the 2r x 2r SVD already returns s descending)
    return L, S, U, s, V.T, info


# ---------------------------------------------------------------------------
# public entry point


def robust_pca(M, lam=None, *, method="ialm", rank=None, mask=None, tol=1e-7,
               max_iter=None, svd_method="auto", beta=None, gamma=0.5,
               sparse_output="auto", random_state=None, verbose=0, callback=None):
    r"""Robust PCA: split ``M`` into a low-rank and a sparse matrix, ``M = L + S``.

    Parameters
    ----------
    M : (m, n) array_like
        The data (NumPy; CuPy arrays run the same code with ``cupy.linalg``).
        Integer data is converted to float64; float32 stays float32.
    lam : float, optional
        Weight of :math:`\|S\|_1` in principal component pursuit
        (``method="ialm"``); default :math:`1/\sqrt{\max(m, n)}`.
    method : {"ialm", "accaltproj"}
        ``"ialm"``: convex principal component pursuit by the inexact augmented
        Lagrange multiplier method (Lin, Chen & Ma 2010) with a partial SVD.
        ``"accaltproj"``: non-convex accelerated alternating projections (Cai,
        Cai & Wei 2019); needs ``rank``.
    rank : int, optional
        Rank of ``L``; required by ``"accaltproj"``, ignored by ``"ialm"``
        (whose rank follows from ``lam``).
    mask : (m, n) bool array, optional
        True where ``M`` is observed.  Unobserved entries may hold anything
        (NaN included); ``L`` completes them and ``S`` is zero there.
    tol : float
        Stop when :math:`\|P(M - L - S)\|_F / \|P M\|_F \le` ``tol`` (``P``
        keeps the observed entries).  Floored at ``10 * eps`` of the working
        dtype (1.2e-6 for float32), below which the residual is rounding noise.
    max_iter : int, optional
        Iteration cap; default 1000 for IALM (as the reference code) and 100
        for AccAltProj.
    svd_method : {"auto", "randomized", "lanczos", "full"}
        Singular value thresholding in IALM.  ``"auto"`` and ``"randomized"``:
        warm-started randomized range finder (Halko et al. 2011) with the
        requested rank predicted from the previous iterate; ``"lanczos"``:
        PROPACK through :func:`scipy.sparse.linalg.svds` (NumPy only);
        ``"full"``: LAPACK SVD every iteration.  The partial methods switch to
        a full SVD when the predicted rank exceeds ~30 % of ``min(m, n)``.
    beta, gamma : float, optional
        AccAltProj threshold parameters: :math:`\zeta_k = \beta(\sigma_{r+1} +
        \gamma^k\sigma_1)`, ``beta_init = 4 beta`` for the first threshold.
        ``beta`` defaults to :math:`1/(4 (mn)^{1/4})`, half the authors' code
        value: with theirs the run locks onto a wrong support when the outliers
        are ~100x larger than the entries of ``L`` (5 % of U[-500, 500] on a
        rank-50 ``N(0, 1)`` product), while half of it also solves the authors'
        own regime (10 % of outliers of the size of ``L``'s entries).  ``gamma``
        defaults to 0.5.  Lower ``beta`` if the run stalls with a wrong ``L``:
        AltProj's residual only measures the entries below the threshold, so a
        converged run is not a proof of recovery outside its regime.
    sparse_output : {"auto", True, False}
        Return ``S`` as a :class:`sparseopt.CSR` always (True), never (False),
        or when at most 10 % of its entries are nonzero ("auto").
    random_state : int, numpy.random.Generator or None
        Seed of the randomized SVDs.
    verbose : int
        Log progress (see :class:`sparseopt._monitor.IterationMonitor`).
        Threads: ``sparseopt.config_context(n_threads=...)`` limits both the
        Numba kernels and BLAS; by default matrices of at most 300 x 300
        entries run single-threaded (small products do not pay for threads).
    callback : callable, optional
        ``callback(result)`` after each iteration with a
        :class:`RobustPCAResult` whose arrays are the solver's live buffers
        (copy them to keep them); returning True stops the run.

    Returns
    -------
    result : RobustPCAResult
        ``low_rank``, ``sparse``, ``U``, ``s``, ``Vt``, ``rank``, ``n_iter``,
        ``converged``, ``residual`` (history of the relative residual), ...

    Raises
    ------
    ValueError
        For empty ``M``, non-finite observed entries, ``lam <= 0``, a missing
        or out-of-range ``rank``, or unknown options.

    Notes
    -----
    Exact recovery (Candès et al. 2011): if :math:`L_0` is incoherent with
    rank :math:`\le \rho_r \min(m, n) / (\mu \log^2 \max(m, n))` and
    :math:`S_0` has a uniformly random support of at most :math:`\rho_s mn`
    entries, PCP with the default ``lam`` returns :math:`(L_0, S_0)` with high
    probability.  The IALM iterate is within ``tol`` of the constraint, and
    converges to the PCP solution, so on such problems ``L`` and ``S`` match
    :math:`L_0, S_0` to about ``tol`` relative error.

    Memory: IALM keeps five ``m x n`` arrays (working copy of ``M``, ``L``,
    ``S``, multiplier, SVD input), AccAltProj four.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt.decomposition import robust_pca
    >>> rng = np.random.default_rng(0)
    >>> L0 = rng.standard_normal((100, 5)) @ rng.standard_normal((5, 80))
    >>> S0 = np.where(rng.random((100, 80)) < 0.05, 10.0, 0.0)
    >>> res = robust_pca(L0 + S0, random_state=0)
    >>> res.converged, res.rank
    (True, 5)
    >>> bool(np.linalg.norm(res.low_rank - L0) / np.linalg.norm(L0) < 1e-6)
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if svd_method not in SVD_METHODS:
        raise ValueError(f"svd_method must be one of {SVD_METHODS}, got {svd_method!r}")
    if sparse_output not in ("auto", True, False):
        raise ValueError(
            f"sparse_output must be 'auto', True or False, got {sparse_output!r}")
    tol = check_scalar(tol, "tol", low=0.0)
    nx = device_backend(M=M, mask=mask)   # None for host input: the NumPy path below
    if nx is not None:
        if svd_method == "lanczos":
            raise ValueError("svd_method='lanczos' is NumPy-only; use 'randomized' on CuPy")
        D, mask = prepare_xp(nx, M, mask)
        xp = nx.xp
    else:
        xp, D, mask = _prepare(M, mask)
    m, n = D.shape
    if svd_method == "lanczos" and xp is not np:
        raise ValueError("svd_method='lanczos' is NumPy-only; use 'randomized' on CuPy")
    rng = random_state if isinstance(random_state, np.random.Generator) \
        else np.random.default_rng(random_state)
    if method == "ialm":
        max_iter = check_positive_int(1000 if max_iter is None else max_iter,
                                      "max_iter")
        lam = 1.0 / float(np.sqrt(max(m, n))) if lam is None else check_scalar(
            lam, "lam", low=0.0, include_low=False)
        if nx is not None:
            L, S, U, s, Vt, info = robust_pca_xp(
                nx, D, mask, method=method, lam=lam, rank=None, tol=tol,
                max_iter=max_iter, svd_method=svd_method, beta=None, gamma=None, rng=rng,
                verbose=verbose, callback=callback, result_cls=RobustPCAResult)
        else:
            with _thread_limits(D.size, xp):
                L, S, U, s, Vt, info = ialm(D, mask, lam=lam, tol=tol, max_iter=max_iter,
                                            svd_method=svd_method, rng=rng,
                                            verbose=verbose, callback=callback)
    else:
        if rank is None:
            raise ValueError("method='accaltproj' needs the rank of L: pass rank=")
        rank = check_positive_int(rank, "rank")
        full_rank = rank == min(m, n) and mask is None
        if rank > min(m, n) or (rank == min(m, n) and mask is not None):
            op = "<=" if mask is None else "<"
            raise ValueError(
                f"rank must be {op} min(m, n) = {min(m, n)} for accaltproj, got {rank}")
        max_iter = check_positive_int(100 if max_iter is None else max_iter,
                                      "max_iter")
        if beta is not None:
            beta = check_scalar(beta, "beta", low=0.0, include_low=False)
        gamma = check_scalar(gamma, "gamma", low=0.0, high=1.0, include_low=False,
                             include_high=False)
        if lam is not None:
            raise ValueError("lam is a PCP (method='ialm') parameter; accaltproj "
                             "uses rank, beta and gamma")
        if nx is not None:
            L, S, U, s, Vt, info = robust_pca_xp(
                nx, D, mask, method=method, lam=None, rank=rank, tol=tol,
                max_iter=max_iter, svd_method=svd_method, beta=beta, gamma=gamma, rng=rng,
                verbose=verbose, callback=callback, result_cls=RobustPCAResult)
        elif full_rank:
            # every matrix has rank <= min(m, n): L = M, S = 0 is exact
            U, s, Vt = xp.linalg.svd(D, full_matrices=False)
            L, S = D, xp.zeros_like(D)
            info = dict(n_iter=0, converged=True, stop_crit=0.0, stopped=False,
                        tol=_effective_tol(tol, D.dtype), n_svd=1,
                        message="rank = min(m, n): L = M",
                        history={"residual": np.zeros(0), "rank": np.zeros(0, int)},
                        timings={})
        else:
            with _thread_limits(D.size, xp):
                L, S, U, s, Vt, info = accaltproj(
                    D, mask, rank=rank, tol=tol, max_iter=max_iter, rng=rng, beta=beta,
                    gamma=gamma, verbose=verbose, callback=callback)
        lam = None
    if not info["converged"] and not info["stopped"]:
        warn_not_converged(f"robust_pca(method={method!r})", info["stop_crit"],
                           info["tol"], info["n_iter"], what="relative residual")
    sparse = _to_sparse_output(S, sparse_output, xp) if nx is None else \
        to_sparse_output_xp(nx, S, sparse_output, SPARSE_DENSITY)
    return RobustPCAResult(
        x=L, low_rank=L, sparse=sparse,
        U=U, s=s, Vt=Vt, rank=int(s.shape[0]), lam=lam, method=method,
        n_iter=info["n_iter"], converged=info["converged"],
        stop_crit=info["stop_crit"], tol=info["tol"], message=info["message"],
        history=info["history"], timings=info["timings"], n_svd=info["n_svd"],
        dual=info.get("dual"))
