r"""Distributed sparse linear models: accelerated proximal gradient on row blocks.

The problems, with :math:`X` split in row blocks :math:`X_i` over the workers,

.. math::

    \text{Lasso / ElasticNet:}\quad
    \min_{w, b}\; \frac{1}{2n}\|y - Xw - b\|_2^2
        + \alpha\rho\|w\|_1 + \frac{\alpha(1-\rho)}{2}\|w\|_2^2,

    \text{L1-logistic:}\quad
    \min_{w, b}\; \frac1n \sum_i \log\big(1 + e^{-y_i (x_i^\top w + b)}\big)
        + \alpha\rho\|w\|_1 + \frac{\alpha(1-\rho)}{2}\|w\|_2^2,

(the objectives of scikit-learn's ``Lasso``/``ElasticNet`` and of skglm's
``SparseLogisticRegression``; :math:`\rho` is ``l1_ratio``) are solved by FISTA
(Beck & Teboulle 2009) with adaptive restart (O'Donoghue & Candès 2015).  The
gradient of the smooth part is a sum over blocks,
:math:`\nabla f = \frac1n \sum_i X_i^\top \ell'(X_i w + b, y_i)`, so each
iteration is ONE distributed pass: every block computes its
:math:`X_i^\top r_i` with our kernels (:func:`sparseopt.spmm` /
:func:`sparseopt.spmm_t` on the chunk), dask adds them up by a tree
reduction, and the proximal step (soft thresholding) runs on the client on a
vector of length ``n_features``.  The step is :math:`1/L` with :math:`L` from a
distributed power iteration on :math:`[X, 1]`.

Stopping rules (a certificate, not a step size):

* least squares: scikit-learn's duality gap, evaluated at the current
  iterate with the optimal intercept and the rescaled residual as dual point;
  the run stops when ``gap <= tol * ||y - mean(y)||^2`` (in the
  :math:`n`-scaled objective, exactly scikit-learn's rule), so ``tol`` means
  what it means for ``sklearn.linear_model.Lasso``;
* logistic: the KKT violation
  :math:`\max_j \operatorname{dist}(-\nabla_j f, \alpha\rho\,\partial|w_j|)`
  (and :math:`|\nabla_b f|`) is at most ``tol``.

The check needs the residual at the current iterate, which is fused into the
same pass as the gradient at the extrapolated point every ``check_every``
iterations (two columns instead of one), so checking costs no extra round
trip.

References
----------
A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm
for linear inverse problems", SIAM J. Imaging Sciences 2(1), 2009.

B. O'Donoghue and E. Candès, "Adaptive restart for accelerated gradient
schemes", Foundations of Computational Mathematics 15, 2015.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._result import SolverResult
from sparseopt._validation import check_array, check_positive_int, check_scalar
from sparseopt.distributed._arrays import _dask, as_scipy_block, chunks_are_sparse, is_dask_array
from sparseopt.distributed._client import resolve_client
from sparseopt.distributed._rows import make_blocks

__all__ = ["DistributedGLMResult", "enet", "l1_logistic", "lasso"]


@dataclass(kw_only=True, repr=False)
class DistributedGLMResult(SolverResult):
    """Outcome of :func:`lasso`, :func:`enet` and :func:`l1_logistic`.

    Attributes
    ----------
    coef : ndarray of shape (n_features,)
        The coefficients (also ``x``), in the dtype of ``X``.
    intercept : float
        The intercept (0 without ``fit_intercept``).  For least squares it is
        the optimal intercept for ``coef``, :math:`\\bar y - \\bar X^\\top w`.
    objective : float
        Final objective value.
    stop_crit : float
        Relative duality gap (least squares) or KKT violation (logistic) at
        the returned point, compared with ``tol``.
    lipschitz : float
        The Lipschitz constant of the smooth part used as inverse step.
    n_blocks : int
        Row blocks the data was split in.
    n_passes : int
        Distributed passes over the data (including set-up and power iteration).
    history : dict
        ``"objective"`` and ``"stop_crit"`` at each check.
    """

    coef: object = None
    intercept: float = 0.0
    objective: float = np.nan
    lipschitz: float = np.nan
    n_blocks: int = 1
    n_passes: int = 0
    history: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# block functions (run on the workers)


def _matvec(X_blk, V):
    if sp.issparse(X_blk):
        from sparseopt.linalg import spmm

        return spmm(X_blk, V)
    return X_blk @ V


def _rmatvec(X_blk, R):
    if sp.issparse(X_blk):
        from sparseopt.linalg import spmm_t

        return spmm_t(X_blk, R)
    return X_blk.T @ R


def _stats_block(X_blk, y_blk, logistic):
    """Column sums, n, sum(y), sum(y^2), and bad-value counts of one block."""
    values = X_blk.data if sp.issparse(X_blk) else X_blk
    if not np.isfinite(values).all():
        raise ValueError("X contains NaN or infinity; all entries must be finite")
    if not np.isfinite(y_blk).all():
        raise ValueError("y contains NaN or infinity; all entries must be finite")
    colsum = _rmatvec(X_blk, np.ones((X_blk.shape[0], 1), X_blk.dtype))[:, 0]
    y64 = y_blk.astype(np.float64)
    bad = float(np.count_nonzero(np.abs(y64) != 1.0)) if logistic else 0.0
    return np.concatenate([colsum, [y_blk.shape[0], y64.sum(), y64 @ y64, bad]])


def _gram_block(X_blk, y_blk, v, vb):
    """``[X_i^T u, sum(u)]`` with ``u = X_i v + vb`` (power iteration on ``[X, 1]``)."""
    u = _matvec(X_blk, v[:, None])[:, 0] + vb
    return np.concatenate([_rmatvec(X_blk, u[:, None])[:, 0], [u.sum()]])


def _ls_block(X_blk, y_blk, V, c):
    """Least squares, for each column ``q`` of ``V``: ``X_i^T r``, ``sum r``, ``|r|^2``, ``r.y``."""
    R = _matvec(X_blk, V) + c - y_blk[:, None]
    G = _rmatvec(X_blk, R)
    return np.concatenate([G.ravel(order="F"), R.sum(0), (R * R).sum(0),
                           (R * y_blk[:, None]).sum(0)])


def _logistic_block(X_blk, y_blk, V, c):
    """Logistic loss, for each column: ``X_i^T g``, ``sum g``, the loss sum (``g = dloss/dz``)."""
    Y = y_blk[:, None]
    M = Y * (_matvec(X_blk, V) + c)
    G = -Y * expit(-M)
    loss = np.logaddexp(0.0, -M.astype(np.float64)).sum(0)
    return np.concatenate([_rmatvec(X_blk, G.astype(X_blk.dtype, copy=False)).ravel(order="F"),
                           G.sum(0), loss, np.zeros(V.shape[1])])


# ---------------------------------------------------------------------------
# input handling


def _prepare(X, y, logistic):
    """Validate shapes and dtypes without computing dask inputs (values are checked in pass 0)."""
    if is_dask_array(X):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if any(np.isnan(c) for dim in X.chunks for c in dim):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes()")
    elif sp.issparse(X) or hasattr(X, "to_scipy") or type(X).__module__.startswith("sparse"):
        X = as_scipy_block(X, "X")
    else:
        X = check_array(X, "X", ndim=2, finite=True)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    dtype = np.dtype(X.dtype)
    if is_dask_array(y):
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y must hold real numbers, got dtype {y.dtype}")
        y = y.astype(dtype)
    else:
        y = check_array(y, "y", ndim=1, finite=True).astype(dtype, copy=False)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y have inconsistent numbers of samples: {X.shape[0]} and "
                         f"{y.shape[0]}")
    return X, y, dtype


def _power_iteration(blocks, p, fit_intercept, dtype, *, max_iter=50, rtol=1e-4, seed=0):
    """Largest eigenvalue of ``[X, 1]^T [X, 1]`` (``[X]`` without intercept)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(p)
    vb = float(rng.standard_normal()) if fit_intercept else 0.0
    norm = np.sqrt(v @ v + vb * vb)
    v, vb = v / norm, vb / norm
    lam = 0.0
    passes = 0
    for _ in range(max_iter):
        out = blocks.map_sum(_gram_block, p + 1, v=v.astype(dtype), vb=dtype.type(vb))
        passes += 1
        w, wb = out[:p], (out[p] if fit_intercept else 0.0)
        new = float(v @ w + vb * wb)
        norm = np.sqrt(w @ w + wb * wb)
        if norm == 0.0:
            return 0.0, passes
        v, vb = w / norm, wb / norm
        if abs(new - lam) <= rtol * new:
            lam = new
            break
        lam = new
    return lam, passes


def _soft(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def _solve(X, y, *, loss, alpha, l1_ratio, fit_intercept, tol, max_iter, check_every,
           coef_init, intercept_init, client, row_chunks, verbose, callback, warn=True):
    t0 = time.perf_counter()
    alpha = check_scalar(alpha, "alpha", low=0.0, include_low=False)
    l1_ratio = check_scalar(l1_ratio, "l1_ratio", low=0.0, high=1.0, include_low=False)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    check_every = check_positive_int(check_every, "check_every")
    if row_chunks is not None:
        row_chunks = check_positive_int(row_chunks, "row_chunks")
    client = resolve_client(client)
    logistic = loss == "logistic"
    X, y, dtype = _prepare(X, y, logistic)
    n, p = X.shape
    if is_dask_array(X) and chunks_are_sparse(X) is False and X._meta is None:  # pragma: no cover
        raise TypeError("X has chunks of an unknown type")
    blocks = make_blocks(X, y, client, row_chunks)
    stats = blocks.map_sum(_stats_block, p + 4, logistic=logistic)
    colsum, sy, syy, n_bad = stats[:p], stats[p + 1], stats[p + 2], stats[p + 3]
    if logistic and n_bad:
        raise ValueError("y must hold the labels -1 and +1 for l1_logistic "
                         f"({int(n_bad)} other values)")
    lam, n_passes = _power_iteration(blocks, p, fit_intercept, dtype)
    n_passes += 1
    l1 = alpha * l1_ratio
    l2 = alpha * (1.0 - l1_ratio)
    L = 1.05 * lam / n / (4.0 if logistic else 1.0) + l2
    if L <= 0.0:  # X == 0 and no intercept: any w with the prox is optimal -> w = 0
        L = 1.0
    w = np.zeros(p) if coef_init is None else check_array(
        coef_init, "coef_init", ndim=1).astype(np.float64)
    if w.shape != (p,):
        raise ValueError(f"coef_init must have shape ({p},), got {w.shape}")
    b = float(intercept_init) if (fit_intercept and intercept_init is not None) else 0.0
    zw, zb, t = w.copy(), b, 1.0
    yc2 = syy - (sy * sy / n if fit_intercept else 0.0)
    block_fn = _logistic_block if logistic else _ls_block
    history = {"objective": [], "stop_crit": []}
    monitor = IterationMonitor(f"distributed.{loss}", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = stopped = False
    crit = obj = np.inf
    b_out = b
    it = 0
    try:
        for it in range(max_iter + 1):
            check = it % check_every == 0 or it == max_iter
            if check:
                V, c = np.stack([zw, w], axis=1), np.array([zb, b])
            else:
                V, c = zw[:, None], np.array([zb])
            q = V.shape[1]
            out = blocks.map_sum(block_fn, q * (p + 3), V=V.astype(dtype), c=c.astype(dtype))
            n_passes += 1
            G = out[:p * q].reshape(p, q, order="F")
            s1, s2, s3 = out[p * q:].reshape(3, q)
            if check:
                if logistic:
                    gw = G[:, 1] / n + l2 * w
                    viol = np.where(w != 0, np.abs(gw + l1 * np.sign(w)),
                                    np.maximum(np.abs(gw) - l1, 0.0))
                    crit = float(max(viol.max(initial=0.0),
                                     abs(s1[1] / n) if fit_intercept else 0.0))
                    obj = float(s2[1] / n + l1 * np.abs(w).sum() + 0.5 * l2 * (w @ w))
                    b_out = b
                else:
                    rbar = s1[1] / n if fit_intercept else 0.0
                    XtR = -(G[:, 1] - rbar * colsum)
                    R2 = max(s2[1] - n * rbar * rbar, 0.0)
                    Ry = -(s3[1] - rbar * sy)
                    l1n, l2n = l1 * n, l2 * n
                    ww = float(w @ w)
                    w1 = float(np.abs(w).sum())
                    dual_norm = float(np.max(np.abs(XtR - l2n * w), initial=0.0))
                    scale = min(1.0, l1n / dual_norm) if dual_norm > 0 else 1.0
                    primal = 0.5 * (R2 + l2n * ww) + l1n * w1
                    dual = -0.5 * scale * scale * (R2 + l2n * ww) + scale * Ry
                    gap = max(primal - dual, 0.0)
                    crit = gap / yc2 if yc2 > 0 else gap
                    obj = primal / n
                    b_out = b - rbar
                history["objective"].append(obj)
                history["stop_crit"].append(crit)
                if crit <= tol:
                    converged = True
                    break
                if it == max_iter:
                    break
                partial = None
                if callback is not None:
                    partial = DistributedGLMResult(
                        x=w.astype(dtype), coef=w.astype(dtype), intercept=b_out, n_iter=it,
                        stop_crit=crit, tol=tol, objective=obj, lipschitz=L,
                        history=history)
                if monitor.step(it, partial, stop_crit=crit, objective=obj):
                    stopped = True
                    break
            gw = G[:, 0] / n + l2 * zw
            gb = s1[0] / n if fit_intercept else 0.0
            w_new = _soft(zw - gw / L, l1 / L)
            b_new = zb - gb / L
            # gradient-based adaptive restart: drop the momentum when it points uphill
            if (zw - w_new) @ (w_new - w) + (zb - b_new) * (b_new - b) > 0:
                t = 1.0
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
            zw = w_new + beta * (w_new - w)
            zb = b_new + beta * (b_new - b)
            w, b, t = w_new, b_new, t_new
    finally:
        monitor.close()
    message = ("converged" if converged else
               "stopped by callback" if stopped else "max_iter reached")
    if not converged and not stopped and warn:
        warn_not_converged(f"distributed {loss}", crit, tol, it,
                           what="KKT violation" if logistic else "relative duality gap")
    coef = w.astype(dtype)
    return DistributedGLMResult(
        x=coef, coef=coef, intercept=float(b_out) if fit_intercept else 0.0, n_iter=it,
        converged=converged, stop_crit=crit, tol=tol, message=message, objective=obj,
        lipschitz=L, n_blocks=len(getattr(blocks, "blocks", ())) or blocks.X.numblocks[0],
        n_passes=n_passes, history={k: np.asarray(v) for k, v in history.items()},
        timings={"total": time.perf_counter() - t0})


_COMMON = """
    X : dask.array.Array, array_like or sparse matrix of shape (n_samples, n_features)
        The design.  A dask array is used as is (sparse chunks from
        :func:`~sparseopt.distributed.from_scipy` and friends, or dense
        chunks), rechunked to one column block and persisted on the workers;
        in-memory input is split in ``row_chunks`` rows per block and sent to
        the workers when a client is active, or solved in-process otherwise.
    y : dask.array.Array or array_like of shape (n_samples,)
    fit_intercept : bool, default=True
        Fit an unpenalised intercept (without centering ``X``, so sparse
        chunks stay sparse).
    tol : float, default=1e-4
        Stopping tolerance (see the stopping rule above).
    max_iter : int, default=1000
        Maximum FISTA iterations (one distributed pass each).
    check_every : int, default=10
        Evaluate the stopping criterion every this many iterations.
    coef_init, intercept_init : optional
        Warm start.
    client : None, dask.distributed.Client or str
        Where to compute: the active client by default, or dask's local
        scheduler when there is none (see :func:`sparseopt.distributed`).
    row_chunks : int, optional
        Rows per block for in-memory input (default: two blocks per worker).
    verbose : int
        Log progress.
    callback : callable, optional
        ``callback(result)`` at each check; returning True stops the run.

    Returns
    -------
    result : DistributedGLMResult
        ``coef``, ``intercept``, ``objective``, ``stop_crit``, ``n_iter``,
        ``converged``, ``history``, ...
"""


def lasso(X, y, alpha=1.0, *, fit_intercept=True, tol=1e-4, max_iter=1000, check_every=10,
          coef_init=None, intercept_init=None, client=None, row_chunks=None, verbose=0,
          callback=None):
    r"""Distributed Lasso, :math:`\min \frac{1}{2n}\|y - Xw - b\|^2 + \alpha\|w\|_1`.

    Accelerated proximal gradient with a distributed gradient (see the
    module notes); stops when scikit-learn's duality gap is at most
    ``tol * ||y - mean(y)||^2`` (same objective and ``tol`` as
    :class:`sklearn.linear_model.Lasso`).

    Parameters
    ----------
    alpha : float
        Regularisation (> 0).%s
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sparseopt.distributed import from_scipy, lasso
    >>> rng = np.random.default_rng(0)
    >>> X = sp.random_array((200, 30), density=0.3, format="csr", random_state=0)
    >>> y = X @ rng.standard_normal(30)
    >>> res = lasso(from_scipy(X, 50), y, alpha=0.01, tol=1e-8)
    >>> res.converged
    True
    """
    return _solve(X, y, loss="squared", alpha=alpha, l1_ratio=1.0, fit_intercept=fit_intercept,
                  tol=tol, max_iter=max_iter, check_every=check_every, coef_init=coef_init,
                  intercept_init=intercept_init, client=client, row_chunks=row_chunks,
                  verbose=verbose, callback=callback)


def enet(X, y, alpha=1.0, l1_ratio=0.5, *, fit_intercept=True, tol=1e-4, max_iter=1000,
         check_every=10, coef_init=None, intercept_init=None, client=None, row_chunks=None,
         verbose=0, callback=None):
    r"""Distributed elastic net, scikit-learn's ``ElasticNet`` objective.

    .. math:: \min_{w,b} \frac{1}{2n}\|y - Xw - b\|^2 + \alpha\rho\|w\|_1
              + \frac{\alpha(1-\rho)}{2}\|w\|^2

    Parameters
    ----------
    alpha : float
        Regularisation (> 0).
    l1_ratio : float in (0, 1]
        :math:`\rho`.%s
    """
    return _solve(X, y, loss="squared", alpha=alpha, l1_ratio=l1_ratio,
                  fit_intercept=fit_intercept, tol=tol, max_iter=max_iter,
                  check_every=check_every, coef_init=coef_init, intercept_init=intercept_init,
                  client=client, row_chunks=row_chunks, verbose=verbose, callback=callback)


def l1_logistic(X, y, alpha=1.0, l1_ratio=1.0, *, fit_intercept=True, tol=1e-4,
                max_iter=1000, check_every=10, coef_init=None, intercept_init=None,
                client=None, row_chunks=None, verbose=0, callback=None):
    r"""Distributed sparse logistic regression, labels ``y`` in {-1, +1}.

    .. math:: \min_{w,b} \frac1n\sum_i \log(1 + e^{-y_i(x_i^\top w + b)})
              + \alpha\rho\|w\|_1 + \frac{\alpha(1-\rho)}{2}\|w\|^2

    (skglm's ``SparseLogisticRegression`` objective; scikit-learn's
    ``LogisticRegression(l1_ratio=1, C=1/(n alpha))``).  Stops when the KKT
    violation is at most ``tol``.

    Parameters
    ----------
    alpha : float
        Regularisation (> 0).
    l1_ratio : float in (0, 1], default=1
        :math:`\rho`.%s
    """
    return _solve(X, y, loss="logistic", alpha=alpha, l1_ratio=l1_ratio,
                  fit_intercept=fit_intercept, tol=tol, max_iter=max_iter,
                  check_every=check_every, coef_init=coef_init, intercept_init=intercept_init,
                  client=client, row_chunks=row_chunks, verbose=verbose, callback=callback)


lasso.__doc__ = lasso.__doc__ % _COMMON
enet.__doc__ = enet.__doc__ % _COMMON
l1_logistic.__doc__ = l1_logistic.__doc__ % _COMMON


def predict_linear(X, coef, intercept):
    """``X @ coef + intercept`` for dask (lazy result) or in-memory ``X``."""
    if is_dask_array(X):
        _, da = _dask()
        if chunks_are_sparse(X):
            from sparseopt.distributed._products import spmm

            return spmm(X, coef) + intercept
        return X @ da.from_array(coef) + intercept
    return X @ coef + intercept
