r"""Robust PCA on device arrays: the backend-generic IALM and AccAltProj.

:func:`robust_pca_xp` runs the iterations of :func:`sparseopt.solvers.rpca.ialm`
and :func:`~sparseopt.solvers.rpca.accaltproj` with array-API operations of
``nx.xp`` only (``array_api_compat.cupy`` on a GPU: elementwise steps as CuPy
kernels, ``xp.linalg.qr`` / ``xp.linalg.svd`` / GEMMs on cuSOLVER and cuBLAS),
so the matrices never leave the device.  Host transfers:

* IALM, per iteration: the singular values and residual norms of the partial
  SVD (``2k`` floats: the number of values above the threshold decides the
  *shapes* of the next arrays, which live on the host) and the residual norm
  of the stopping test -- two small transfers.  Rank prediction, the
  refinement test of the randomized SVD (:class:`ThresholdedSVDXP`, one
  transfer per attempt: all ``k`` residual columns are formed at once instead
  of ``svp + 1``) and the full-SVD fallback are those of
  :class:`~sparseopt.solvers._partial_svd.ThresholdedSVD`.
* AccAltProj, per iteration: the residual norm only (the threshold
  ``zeta_k = beta (sigma_{r+1} + gamma^k sigma_1)`` stays a device scalar).

The Gaussian test matrices of the randomized SVD are drawn on the device
(``cupy.random`` seeded from ``random_state``), so runs are reproducible on one
device but draw other numbers than the NumPy path.  ``svd_method="lanczos"``
(PROPACK) is host-only and refused on device arrays.
"""

import time

import numpy as np

from sparseopt._monitor import IterationMonitor
from sparseopt.formats._common import index_dtype
from sparseopt.solvers._partial_svd import FULL_SVD_MIN_DIM, ThresholdedSVD
from sparseopt.solvers._xp_linalg import fetch

__all__ = ["ThresholdedSVDXP", "randomized_svd_xp", "robust_pca_xp"]


# ---------------------------------------------------------------------------
# randomness and partial SVDs


def device_rng(nx, rng):
    """A generator drawing on the device (CuPy), seeded from the host ``rng``."""
    import array_api_compat

    if array_api_compat.is_cupy_namespace(nx.xp):
        import cupy

        return cupy.random.default_rng(int(rng.integers(2**63 - 1)))
    return rng


def _gaussian(xp, rng, shape, dtype):
    g = rng.standard_normal(shape)
    if isinstance(g, np.ndarray):        # a host generator (non-CuPy namespaces)
        g = xp.asarray(g)
    return xp.astype(g, dtype)


def _orth(xp, Y):
    return xp.linalg.qr(Y)[0]


def randomized_svd_xp(xp, X, k, *, n_oversamples=10, n_power_iter=2, rng, init=None):
    """:func:`~sparseopt.solvers._partial_svd.randomized_svd` with array-API calls only."""
    m, n = X.shape
    ell = min(k + n_oversamples, min(m, n))
    if init is not None and init.shape[1] > 0:
        r = min(init.shape[1], ell)
        parts = [xp.astype(init[:, :r], X.dtype)]
        if ell > r:
            parts.append(_gaussian(xp, rng, (n, ell - r), X.dtype))
        omega = xp.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    else:
        omega = _gaussian(xp, rng, (n, ell), X.dtype)
    Q = _orth(xp, X @ omega)
    for _ in range(n_power_iter):
        Q = _orth(xp, X @ _orth(xp, X.T @ Q))
    Ub, s, Vt = xp.linalg.svd(Q.T @ X, full_matrices=False)
    return Q @ Ub[:, :k], s[:k], Vt[:k, :]


def spectral_norm_xp(nx, X, rng, n_power_iter=8):
    """``||X||_2`` as :func:`~sparseopt.solvers._partial_svd.spectral_norm` (host float)."""
    xp = nx.xp
    if min(X.shape) <= FULL_SVD_MIN_DIM:
        s = xp.linalg.svdvals(X)
    else:
        s = randomized_svd_xp(xp, X, 1, n_oversamples=5, n_power_iter=n_power_iter,
                              rng=rng)[1]
    return fetch(nx, s[0])[0]


class ThresholdedSVDXP(ThresholdedSVD):
    """:class:`~sparseopt.solvers._partial_svd.ThresholdedSVD` on a backend ``nx``.

    Same rank prediction, warm start, acceptance test and full-SVD fallback;
    each decomposition fetches its singular values and residual norms in one
    transfer.
    """

    def __init__(self, nx, shape, **kw):
        super().__init__(shape, **kw)
        self.nx = nx

    def _randomized_xp(self, X, k, tau, atol):
        xp = self.nx.xp
        q = self.n_power_iter if self._V is None else self.n_power_iter_warm
        init = self._V
        for _ in range(self.max_refine + 1):
            U, s, Vt = randomized_svd_xp(xp, X, k, n_oversamples=self.n_oversamples,
                                         n_power_iter=q, rng=self.rng, init=init)
            if atol is None:
                return U, s, Vt, np.asarray(self.nx.to_numpy(s), np.float64)
            # residuals X v_i - s_i u_i of every column, fetched with s at once
            R = X @ Vt.T - U * s
            both = xp.concat([xp.astype(s, xp.float64),
                              xp.astype(xp.linalg.vector_norm(R, axis=0), xp.float64)])
            host = np.asarray(self.nx.to_numpy(both), np.float64)
            s_h, rn = host[:k], host[k:]
            self.n_check += 1
            svp = int(np.count_nonzero(s_h > tau))
            if svp == k and k < self.p:
                return U, s, Vt, s_h
            ok = float(np.sqrt(np.sum(rn[:svp] ** 2))) <= atol
            if ok and svp < s_h.shape[0]:
                ok = s_h[svp] + rn[svp] <= tau
            if ok:
                return U, s, Vt, s_h
            init, q = Vt.T, 1
        return None

    def _decompose_xp(self, X, k, tau, atol):
        self.n_svd += 1
        if not self._use_full(k):
            out = self._randomized_xp(X, k, tau, atol)
            if out is not None:
                return out, False
        self.n_full += 1
        U, s, Vt = self.nx.xp.linalg.svd(X, full_matrices=False)
        return (U, s, Vt, np.asarray(self.nx.to_numpy(s), np.float64)), True

    def __call__(self, X, tau, atol=None):
        k = self.sv
        while True:
            (U, s, Vt, s_h), complete = self._decompose_xp(X, k, tau, atol)
            svp = int(np.count_nonzero(s_h > tau))
            if svp < k or complete or k >= self.p:
                break
            k = min(self.p, svp + self.step)
        if svp < k:
            self.sv = min(svp + 1, self.p)
        else:
            self.sv = min(svp + self.step, self.p)
        U, s, Vt = U[:, :svp], s[:svp], Vt[:svp, :]
        if svp:
            self._V = Vt.T
        return U, s, Vt


# ---------------------------------------------------------------------------
# input and output


def prepare_xp(nx, M, mask, name="M"):
    """Validate device ``M`` and ``mask`` as :func:`sparseopt.solvers.rpca._prepare` does.

    Returns ``(D, mask)``: a new working array with zeros off the mask (the
    caller's array is never modified) and a boolean mask or None.
    """
    xp = nx.xp
    if hasattr(M, "toarray") or hasattr(M, "todense") or hasattr(M, "indptr"):
        raise TypeError(f"{name} must be a dense array, got sparse {type(M).__name__}")
    D = M
    if xp.isdtype(D.dtype, ("integral", "bool")):
        D = xp.astype(D, xp.float64)
    elif xp.isdtype(D.dtype, "real floating"):
        if D.dtype != xp.float32 and D.dtype != xp.float64:
            D = xp.astype(D, xp.float64)
    else:
        raise TypeError(f"{name} must hold real numbers, got dtype {D.dtype}")
    if D.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {tuple(D.shape)}")
    if D.shape[0] == 0 or D.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(D.shape)}")
    if mask is not None:
        if tuple(mask.shape) != tuple(D.shape):
            raise ValueError(f"mask must have the shape of {name} {tuple(D.shape)}, got "
                             f"{tuple(mask.shape)}")
        if mask.dtype != xp.bool:
            if not xp.isdtype(mask.dtype, "integral"):
                raise TypeError("mask must be a boolean array (True = observed)")
            (bad,) = fetch(nx, xp.any((mask != 0) & (mask != 1)))
            if bad:
                raise TypeError("mask must be a boolean array (True = observed)")
            mask = mask != 0
        n_obs, = fetch(nx, xp.sum(xp.astype(mask, xp.int64)))
        if n_obs == 0:
            raise ValueError("mask observes no entry of " + name)
        if n_obs == D.shape[0] * D.shape[1]:
            mask = None
    finite = xp.isfinite(D)
    bad = ~finite if mask is None else (~finite & mask)
    any_bad, any_nan = fetch(nx, xp.any(bad), xp.any(bad & xp.isnan(D)))
    if any_bad:
        what = "NaN" if any_nan else "infinity"
        hint = "" if mask is None else " observed"
        raise ValueError(
            f"{name} contains {what} at{hint} entries; all observed entries must be "
            "finite (mark missing entries with mask=)")
    D = xp.asarray(D, copy=True) if mask is None else xp.where(mask, D, 0.0)
    return D, mask


def csr_from_dense_xp(nx, S):
    """A :class:`sparseopt.CSR` of the non-zeros of a device matrix (rows sorted)."""
    from sparseopt.formats import CSR

    xp = nx.xp
    m, n = S.shape
    rows, cols = xp.nonzero(S)
    nnz = int(rows.shape[0])
    idx = index_dtype(maxval=max(m, n, nnz))
    idx = xp.int32 if idx == np.int32 else xp.int64
    rows = xp.astype(rows, xp.int64)
    cols = xp.astype(cols, xp.int64)
    indptr = xp.searchsorted(rows, xp.arange(m + 1, dtype=xp.int64))
    data = xp.take(xp.reshape(S, (-1,)), rows * n + cols)
    out = CSR((data, xp.astype(cols, idx), xp.astype(indptr, idx)), (m, n), check=False)
    out._sorted = out._canonical = True
    return out


def to_sparse_output_xp(nx, S, sparse_output, density):
    """``S`` as returned by :func:`robust_pca` (dense, or CSR on the device)."""
    xp = nx.xp
    if sparse_output is False:
        return S
    (nnz,) = fetch(nx, xp.count_nonzero(S))
    if sparse_output == "auto" and nnz > density * S.shape[0] * S.shape[1]:
        return S
    return csr_from_dense_xp(nx, S)


# ---------------------------------------------------------------------------
# the solvers


def _sparse_step(xp, D, A, Y, inv_mu, thresh, mask):
    """``E = soft(D - A + Y/mu)`` on observed entries (free elsewhere); ``X = D - E + Y/mu``."""
    ym = Y * inv_mu
    t = D - A + ym
    e = xp.sign(t) * xp.maximum(xp.abs(t) - thresh, 0.0)
    if mask is not None:
        e = xp.where(mask, e, t)
    return e, D - e + ym


def ialm_xp(nx, D, mask, *, lam, tol, max_iter, svd_method, rng, rho=1.5, mu=None,
            verbose=0, callback=None, n_power_iter=2, n_power_iter_warm=0,
            n_oversamples=10, result_cls=None):
    """Inexact ALM (see :func:`sparseopt.solvers.rpca.ialm`) on ``nx``'s arrays."""
    xp = nx.xp
    history = {"residual": [], "rank": []}
    t0 = time.perf_counter()
    (d_norm,) = fetch(nx, xp.linalg.vector_norm(D))
    if d_norm == 0.0:
        Z0 = xp.zeros_like(D)
        return Z0, xp.zeros_like(D), D[:, :0], D[0, :0], D[:0, :], dict(
            n_iter=0, converged=True, stop_crit=0.0, history=history, n_svd=0,
            dual=xp.zeros_like(D), message="M is zero", stopped=False, tol=tol,
            timings={"total": time.perf_counter() - t0})
    norm_two = spectral_norm_xp(nx, D, rng)
    (dmax,) = fetch(nx, xp.max(xp.abs(D)))
    Y = D / max(norm_two, dmax / lam)
    if mu is None:
        mu = 1.25 / norm_two
    mu_bar = mu * 1e7
    A = xp.zeros_like(D)
    E = A
    svt = ThresholdedSVDXP(nx, D.shape, method="randomized" if svd_method == "auto"
                           else svd_method, rng=rng, n_power_iter=n_power_iter,
                           n_power_iter_warm=n_power_iter_warm, n_oversamples=n_oversamples)
    monitor = IterationMonitor("robust_pca", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    svd_floor = 0.1 * tol * d_norm
    svd_atol = max(svd_floor, 0.01 * d_norm)
    U, s, Vt = D[:, :0], D[0, :0], D[:0, :]
    converged = stopped = False
    stop_crit = np.inf
    it = 0
    t_svd = 0.0
    try:
        for it in range(1, max_iter + 1):
            inv_mu = 1.0 / mu
            E, X = _sparse_step(xp, D, A, Y, inv_mu, lam * inv_mu, mask)
            ts = time.perf_counter()
            U, s, Vt = svt(X, inv_mu, svd_atol)
            t_svd += time.perf_counter() - ts
            s = s - inv_mu
            A = (U * xp.astype(s, D.dtype)) @ Vt if s.shape[0] else xp.zeros_like(D)
            Z = D - A - E
            Y = Y + mu * Z
            (z2,) = fetch(nx, xp.sum(Z * Z))
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
                partial = result_cls(
                    x=A, low_rank=A, sparse=E, U=U, s=s, Vt=Vt, rank=int(s.shape[0]),
                    n_iter=it, stop_crit=stop_crit, tol=tol, lam=lam, method="ialm",
                    history=history)
            if monitor.step(it, partial, residual=stop_crit, rank=s.shape[0], mu=mu):
                stopped = True
                break
    finally:
        monitor.close()
    S = E if mask is None else xp.where(mask, E, 0.0)
    message = ("converged" if converged else
               "stopped by callback" if stopped else "max_iter reached")
    info = dict(n_iter=it, converged=converged, stop_crit=stop_crit,
                history={k: np.asarray(v) for k, v in history.items()},
                n_svd=svt.n_svd, message=message, stopped=stopped, tol=tol, dual=Y,
                n_full_svd=svt.n_full,
                timings={"total": time.perf_counter() - t0, "svd": t_svd})
    return A, S, U, s, Vt, info


def _threshold_step(xp, D, L, zeta, inv_p, mask):
    """``S = hard(D - L, zeta)`` on observed entries; ``Z = L + P_obs(D - L - S) / p``.

    Returns ``(S, Z, ||P_obs(D - L - S)||^2)`` (the last a device scalar);
    ``zeta`` may be a device scalar.
    """
    r = D - L
    big = xp.abs(r) > zeta
    if mask is not None:
        big = big & mask
        small = mask & ~big
    else:
        small = ~big
    S = xp.where(big, r, 0.0)
    rs = xp.where(small, r, 0.0)
    return S, L + inv_p * rs, xp.sum(rs * rs)


def accaltproj_xp(nx, D, mask, *, rank, tol, max_iter, rng, beta=None, beta_init=None,
                  gamma=0.5, verbose=0, callback=None, result_cls=None):
    """Accelerated AltProj (see :func:`sparseopt.solvers.rpca.accaltproj`) on ``nx``'s arrays."""
    xp = nx.xp
    m, n = D.shape
    r = rank
    history = {"residual": [], "rank": []}
    t0 = time.perf_counter()
    if beta is None:
        beta = 1.0 / (4.0 * (m * n) ** 0.25)
    if beta_init is None:
        beta_init = 4.0 * beta
    d_norm, n_obs = fetch(nx, xp.linalg.vector_norm(D),
                          m * n if mask is None else xp.sum(xp.astype(mask, xp.int64)))
    if d_norm == 0.0:
        return xp.zeros_like(D), xp.zeros_like(D), D[:, :0], D[0, :0], D[:0, :], dict(
            n_iter=0, converged=True, stop_crit=0.0, history=history, n_svd=0,
            message="M is zero", stopped=False, tol=tol,
            timings={"total": time.perf_counter() - t0})
    inv_p = (m * n) / n_obs

    def top_svd(A, k):
        if min(m, n) <= 3 * k + 20:
            U, s, Vt = xp.linalg.svd(A, full_matrices=False)
            return U[:, :k], s[:k], Vt[:k, :]
        return randomized_svd_xp(xp, A, k, n_oversamples=10, n_power_iter=3, rng=rng)

    sigma1 = spectral_norm_xp(nx, D, rng) * inv_p
    L = xp.zeros_like(D)
    S, Z, _ = _threshold_step(xp, D, L, beta_init * sigma1, inv_p, mask)
    U, s, Vt = top_svd(Z, r)
    zeta = beta * s[0]
    L = (U * s) @ Vt
    V = Vt.T
    S, Z, z2 = _threshold_step(xp, D, L, zeta, inv_p, mask)
    (z2,) = fetch(nx, z2)
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
            ZV = Z @ V
            ZtU = Z.T @ U
            C = U.T @ ZV
            Q2, R2 = xp.linalg.qr(ZV - U @ C)
            Q1, R1 = xp.linalg.qr(ZtU - V @ C.T)
            Mk = xp.concat([xp.concat([C, R1.T], axis=1),
                            xp.concat([R2, xp.zeros_like(C)], axis=1)], axis=0)
            Um, sm, Vmt = xp.linalg.svd(Mk)
            U = xp.concat([U, Q2], axis=1) @ Um[:, :r]
            V = xp.concat([V, Q1], axis=1) @ Vmt[:r, :].T
            s = sm[:r]
            L = (U * s) @ V.T
            gk *= gamma
            zeta = beta * (sm[r] + gk * sm[0])
            S, Z, z2 = _threshold_step(xp, D, L, zeta, inv_p, mask)
            (z2,) = fetch(nx, z2)
            stop_crit = float(np.sqrt(z2)) / d_norm
            history["residual"].append(stop_crit)
            history["rank"].append(r)
            if stop_crit <= tol:
                converged = True
                break
            partial = None
            if callback is not None:
                partial = result_cls(
                    x=L, low_rank=L, sparse=S, U=U, s=s, Vt=V.T, rank=r, n_iter=it,
                    stop_crit=stop_crit, tol=tol, method="accaltproj", history=history)
            if monitor.step(it, partial, residual=stop_crit):
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
    return L, S, U, s, V.T, info


def robust_pca_xp(nx, D, mask, *, method, lam, rank, tol, max_iter, svd_method, beta,
                  gamma, rng, verbose, callback, result_cls):
    """The device branch of :func:`sparseopt.solvers.rpca.robust_pca`.

    ``D, mask`` come from :func:`prepare_xp`, the options are validated.
    Returns ``(L, S, U, s, Vt, info)``.
    """
    xp = nx.xp
    m, n = D.shape
    dev_rng = device_rng(nx, rng)
    eps = np.finfo(np.float32 if D.dtype == xp.float32 else np.float64).eps
    tol = max(tol, 10 * float(eps))     # as the CPU path: the residual's rounding floor
    if method == "ialm":
        return ialm_xp(nx, D, mask, lam=lam, tol=tol, max_iter=max_iter,
                       svd_method=svd_method, rng=dev_rng, verbose=verbose,
                       callback=callback, result_cls=result_cls)
    if rank == min(m, n) and mask is None:
        U, s, Vt = xp.linalg.svd(D, full_matrices=False)
        info = dict(n_iter=0, converged=True, stop_crit=0.0, stopped=False, tol=tol,
                    n_svd=1, message="rank = min(m, n): L = M",
                    history={"residual": np.zeros(0), "rank": np.zeros(0, int)},
                    timings={})
        return D, xp.zeros_like(D), U, s, Vt, info
    return accaltproj_xp(nx, D, mask, rank=rank, tol=tol, max_iter=max_iter, rng=dev_rng,
                         beta=beta, gamma=gamma, verbose=verbose, callback=callback,
                         result_cls=result_cls)
