r"""Robust PCA of a tall matrix with row blocks on the workers.

Principal component pursuit, :math:`\min \|L\|_* + \lambda\|S\|_1` s.t.
:math:`L + S = M`, by the inexact ALM of Lin, Chen & Ma (2010) -- the
iteration of :func:`sparseopt.decomposition.robust_pca` -- on an
:math:`m \times n` matrix with :math:`m \gg n` held as a dask array of row
blocks.  The entrywise steps (soft thresholding, dual ascent) are blockwise;
the singular value thresholding needs the SVD of the tall iterate, computed by
``dask.array.linalg.svd`` (direct TSQR, Benson, Gleich & Demmel 2013: a QR of
every row block, a QR of the stacked small R factors, an :math:`n \times n`
SVD), so no worker ever holds more than its rows plus :math:`n \times n`
matrices.  :math:`L`, :math:`S` and the multiplier are persisted on the
workers between iterations.
"""

import time

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_array, check_positive_int, check_scalar
from sparseopt.distributed._arrays import _dask, is_dask_array
from sparseopt.distributed._client import compute, persist, resolve_client

__all__ = ["robust_pca"]


def _shrink(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def robust_pca(M, lam=None, *, tol=1e-7, max_iter=500, rho=1.5, row_chunks=None,
               client=None, verbose=0, callback=None):
    r"""Robust PCA (principal component pursuit, inexact ALM) of a tall matrix.

    Each iteration:

    .. math::

        S &\leftarrow \mathcal{S}_{\lambda/\mu}(M - L + Y/\mu), \qquad
        L \leftarrow \mathcal{D}_{1/\mu}(M - S + Y/\mu) \ \text{(TSQR-based SVD)},\\
        Y &\leftarrow Y + \mu (M - L - S), \qquad \mu \leftarrow \min(\rho\mu, 10^7\mu_0),

    with :math:`Y_0 = M/\max(\|M\|_2, \|M\|_\infty/\lambda)`,
    :math:`\mu_0 = 1.25/\|M\|_2`; stop when :math:`\|M - L - S\|_F/\|M\|_F \le`
    ``tol``.

    Parameters
    ----------
    M : dask.array.Array or array_like of shape (m, n), m >= n
        Dense; a dask array is rechunked to one column block.
    lam : float, optional
        Default :math:`1/\sqrt{\max(m, n)}`.
    tol : float, default=1e-7
    max_iter : int, default=500
    rho : float, default=1.5
    row_chunks : int, optional
        Rows per block for in-memory ``M`` (default: 4 blocks).
    client : None, Client or str
    verbose : int
    callback : callable, optional
        ``callback(info)`` with a dict (``n_iter``, ``residual``, ``rank``)
        after each iteration; True stops the run.

    Returns
    -------
    low_rank, sparse : dask.array.Array
        ``L`` and ``S``, persisted, row-chunked like ``M``.
    info : dict
        ``n_iter``, ``converged``, ``residual`` (history), ``rank``, ``s``
        (singular values of ``L``), ``Vt``, ``lam``, ``timings``.
    """
    t0 = time.perf_counter()
    _, da = _dask()
    client = resolve_client(client)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    rho = check_scalar(rho, "rho", low=1.0, include_low=False)
    if is_dask_array(M):
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        D = M.astype(np.float64) if M.dtype not in (np.float32, np.float64) else M
        D = D.rechunk({1: -1})
        if row_chunks is not None:
            D = D.rechunk({0: check_positive_int(row_chunks, "row_chunks")})
    else:
        Mn = check_array(M, "M", ndim=2, min_shape=(1, 1))
        rc = -(-Mn.shape[0] // 4) if row_chunks is None else check_positive_int(
            row_chunks, "row_chunks")
        D = da.from_array(Mn, chunks=(rc, -1))
    m, n = D.shape
    if m < n:
        raise ValueError(f"M must be tall (m >= n) for the TSQR-based SVD, got shape {M.shape}; "
                         "pass M.T and swap the roles of the factors")
    if any(c < n for c in D.chunks[0][:-1]):
        D = D.rechunk({0: max(n, D.chunks[0][0])})
    lam = 1.0 / np.sqrt(max(m, n)) if lam is None else check_scalar(
        lam, "lam", low=0.0, include_low=False)
    D = persist(D, client)
    d_norm, d_inf = compute(da.linalg.norm(D), abs(D).max(), client=client)
    d_norm, d_inf = float(d_norm), float(d_inf)
    if not np.isfinite(d_norm):
        raise ValueError("M contains NaN or infinity; all entries must be finite")
    info = {"n_iter": 0, "converged": True, "residual": np.empty(0), "rank": 0, "lam": lam}
    if d_norm == 0.0:
        Z = persist(da.zeros_like(D), client)
        return Z, Z, info
    (s_all,) = compute(da.linalg.svd(D)[1], client=client)
    norm_two = float(s_all[0])
    Y = D / max(norm_two, d_inf / lam)
    mu = 1.25 / norm_two
    mu_bar = mu * 1e7
    L = da.zeros_like(D)
    S = da.zeros_like(D)
    Y = persist(Y, client)
    history = []
    monitor = IterationMonitor("distributed.robust_pca", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    it = 0
    s = Vt = np.empty(0)
    try:
        for it in range(1, max_iter + 1):
            S = (D - L + Y / mu).map_blocks(_shrink, lam / mu, dtype=D.dtype)
            S = persist(S, client)
            X = D - S + Y / mu
            U, s_d, Vt_d = da.linalg.svd(X)
            s, Vt = compute(s_d, Vt_d, client=client)
            keep = s > 1.0 / mu
            s, Vt = s[keep] - 1.0 / mu, Vt[keep]
            L = (U[:, :int(keep.sum())] * s.astype(D.dtype)) @ Vt.astype(D.dtype)
            Z = D - L - S
            Y = Y + mu * Z
            L, Y = persist(L, client), persist(Y, client)
            (z_norm,) = compute(da.linalg.norm(D - L - S), client=client)
            mu = min(mu * rho, mu_bar)
            res = float(z_norm) / d_norm
            history.append(res)
            if res <= tol:
                converged = True
                break
            if monitor.step(it, {"n_iter": it, "residual": res, "rank": len(s)},
                            residual=res, rank=len(s)):
                break
    finally:
        monitor.close()
    if not converged and len(history) == max_iter:
        warn_not_converged("distributed robust_pca", history[-1], tol, it,
                           what="relative residual")
    info.update(n_iter=it, converged=converged, residual=np.asarray(history), rank=len(s),
                s=s, Vt=Vt, timings={"total": time.perf_counter() - t0})
    return L, S, info
