r"""Sinkhorn iterations with a row-chunked cost matrix.

Solves POT's entropic problem :math:`\min_{P 1 = a, P^\top 1 = b} \langle P, M\rangle
+ \mathrm{reg}\sum P_{ij}\log P_{ij}` with :math:`M` (n, m) split in row blocks
:math:`M_i` over the workers.  The kernel blocks :math:`K_i = e^{-M_i/\mathrm{reg}}`
are computed and kept on the workers; one iteration is ONE distributed pass:
given :math:`v`, block :math:`i` forms :math:`u_i = a_i / (K_i v)` and returns
:math:`K_i^\top u_i`, which dask sums over the blocks, and the client sets
:math:`v = b / \sum_i K_i^\top u_i`.  These are exactly the iterates of POT's
``ot.sinkhorn`` (``method="sinkhorn"``): the scaling ``u`` never leaves the
workers, and the column-marginal error
:math:`\|v \odot K^\top u - b\|_2` that POT checks comes for free in the same
pass.  Like POT's plain method this is not log-stabilised: keep
``M / reg`` moderate (below ~700 in float64) or use the single-machine
:func:`sparseopt.ot.sinkhorn`.

Reference: M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal
transport", NeurIPS 2013.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._result import SolverResult
from sparseopt._validation import check_array, check_positive_int, check_scalar
from sparseopt.distributed._arrays import _dask, is_dask_array
from sparseopt.distributed._client import compute, persist, resolve_client
from sparseopt.distributed._rows import RowBlocks

__all__ = ["DistributedOTResult", "sinkhorn"]


@dataclass(kw_only=True, repr=False)
class DistributedOTResult(SolverResult):
    """Outcome of :func:`sinkhorn`.

    Attributes
    ----------
    plan : dask.array.Array of shape (n, m)
        The plan ``diag(u) K diag(v)``, lazy and row-chunked like ``M``.
    cost : float
        ``<P, M>`` (POT's ``sinkhorn2``).
    u : dask.array.Array of shape (n,), v : ndarray of shape (m,)
        The scalings; ``f = reg log u``, ``g = reg log v`` are the potentials.
    marginal_error : ndarray
        ``||P^T 1 - b||_2`` after each iteration (POT's criterion).
    reg : float
    """

    plan: object = None
    cost: float = np.nan
    u: object = None
    v: object = None
    marginal_error: object = field(default_factory=lambda: np.empty(0))
    reg: float = np.nan


def _kt_u_block(K_blk, a_blk, v, first, n):
    u = np.full(K_blk.shape[0], 1.0 / n) if first else a_blk / (K_blk @ v)
    return K_blk.T @ u


def _plan_block(K_blk, a_blk, v):
    u = a_blk[:, 0] / (K_blk @ v)
    return u[:, None] * K_blk * v[None, :]


def _u_block(K_blk, a_blk, v):
    return a_blk[:, 0] / (K_blk @ v)


def sinkhorn(a, b, M, reg, *, tol=1e-9, max_iter=1000, row_chunks=None, client=None,
             verbose=0, callback=None, warn=True):
    r"""Entropic OT by Sinkhorn iterations on a row-chunked cost matrix.

    Parameters
    ----------
    a : array_like of shape (n,) or None
        Source histogram (positive; None: uniform).
    b : array_like of shape (m,) or None
        Target histogram (positive; None: uniform), same mass as ``a``.
    M : dask.array.Array or array_like of shape (n, m)
        Cost matrix; a dask array is used with its row chunks (one column
        block), in-memory ``M`` is split in ``row_chunks`` rows per block.
    reg : float
        Entropic regularisation (> 0).
    tol : float, default=1e-9
        Stop when ``||P^T 1 - b||_2 < tol`` (POT's ``stopThr``).
    max_iter : int, default=1000
        Iterations (POT's ``numItermax``), one distributed pass each.
    row_chunks : int, optional
    client : None, Client or str
        Where to compute (default: the active client, else local threads).
    verbose : int
    callback : callable, optional
        ``callback(result)`` every 10 iterations; True stops the run.
    warn : bool, default=True
        ``ConvergenceWarning`` when ``tol`` was not reached.

    Returns
    -------
    result : DistributedOTResult
        ``plan`` (lazy dask array), ``cost``, ``u``, ``v``, ``marginal_error``,
        ``n_iter``, ``converged``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt.distributed import sinkhorn
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((30, 2)), rng.random((20, 2))
    >>> M = ((x[:, None] - y[None]) ** 2).sum(-1)
    >>> res = sinkhorn(None, None, M, reg=0.05, row_chunks=10)
    >>> res.converged
    True
    """
    t0 = time.perf_counter()
    _, da = _dask()
    reg = check_scalar(reg, "reg", low=0.0, include_low=False)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    client = resolve_client(client)
    if is_dask_array(M):
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        dM = M.astype(np.float64) if M.dtype not in (np.float32, np.float64) else M
        if row_chunks is not None:
            dM = dM.rechunk({0: check_positive_int(row_chunks, "row_chunks")})
    else:
        Mn = check_array(M, "M", ndim=2)
        rc = Mn.shape[0] if row_chunks is None else check_positive_int(row_chunks, "row_chunks")
        dM = da.from_array(Mn, chunks=(rc, -1))
    n, m = dM.shape
    dtype = np.dtype(dM.dtype)
    a = np.full(n, 1.0 / n) if a is None or len(a) == 0 else check_array(a, "a", ndim=1)
    b = np.full(m, 1.0 / m) if b is None or len(b) == 0 else check_array(b, "b", ndim=1)
    if a.shape != (n,) or b.shape != (m,):
        raise ValueError(f"a and b must have shapes ({n},) and ({m},) to match M, got "
                         f"{a.shape} and {b.shape}")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("a and b must be positive (remove empty bins first)")
    if abs(a.sum() - b.sum()) > 1e-6 * a.sum():
        raise ValueError(f"a and b must have the same mass, got {a.sum()} and {b.sum()}")
    a, b = a.astype(dtype), b.astype(dtype)

    def _kernel(M_blk):
        if not np.isfinite(M_blk).all():
            raise ValueError("M contains NaN or infinity; all entries must be finite")
        return np.exp(-M_blk / reg)

    dK = dM.rechunk({1: -1}).map_blocks(_kernel, dtype=dtype)
    blocks = RowBlocks(dK, a, client)
    history = []
    monitor = IterationMonitor("distributed.sinkhorn", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    ktu = blocks.map_sum(_kt_u_block, m, v=None, first=True, n=n)
    v = b / ktu
    converged = stopped = False
    err = np.inf
    it = 0
    try:
        for it in range(1, max_iter + 1):
            ktu = blocks.map_sum(_kt_u_block, m, v=v.astype(dtype), first=False, n=n)
            if not np.all(np.isfinite(ktu)) or np.any(ktu == 0):
                raise FloatingPointError(
                    f"Sinkhorn underflow at iteration {it}: M/reg is too large for the "
                    "non-stabilised scaling; increase reg or use sparseopt.ot.sinkhorn")
            err = float(np.linalg.norm(v * ktu - b))
            history.append(err)
            v = b / ktu
            if err < tol:
                converged = True
                break
            if it % 10 == 0 and monitor.step(
                    it, DistributedOTResult(v=v, n_iter=it, stop_crit=err, tol=tol, reg=reg),
                    marginal_error=err):
                stopped = True
                break
    finally:
        monitor.close()
    if not converged and not stopped and warn:
        warn_not_converged("distributed sinkhorn", err, tol, it, what="marginal error")
    va = v.astype(dtype)
    plan = da.map_blocks(_plan_block, blocks.X, blocks.y[:, None], v=va, dtype=dtype)
    u = da.map_blocks(_u_block, blocks.X, blocks.y[:, None], v=va, drop_axis=1, dtype=dtype)
    (cost,) = compute((plan * dM.rechunk(plan.chunks)).sum(), client=client)
    u = persist(u, client)
    return DistributedOTResult(
        x=plan, plan=plan, cost=float(cost), u=u, v=va, marginal_error=np.asarray(history),
        n_iter=it, converged=converged, stop_crit=err, tol=tol, reg=reg,
        message="converged" if converged else ("stopped by callback" if stopped
                                               else "max_iter reached"),
        timings={"total": time.perf_counter() - t0})
