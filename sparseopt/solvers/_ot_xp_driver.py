"""Problem set-up of the backend-generic (device) OT solvers.

The device twin of :mod:`sparseopt.solvers._ot_driver` and
:mod:`sparseopt.solvers._ot_input`: the same validation and messages, the same
zero-weight restriction and batch handling, the same result, with every array
of the result on the input's device (plan, potentials) and the scalars
(``cost``, ``objective``, the error history) as Python floats.  The only
synchronisations outside the solver loops are the input checks and the final
fetch of the cost, objective and measured error.
"""

import math

import numpy as np

from sparseopt._config import numba_threads
from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.kernels._sinkhorn import threshold_bin
from sparseopt.solvers._ot_core import Trace
from sparseopt.solvers._ot_input import OTProblem
from sparseopt.solvers._ot_result import OTResult
from sparseopt.solvers._ot_xp import sinkhorn_core_xp
from sparseopt.solvers._sns_xp import _csr_of, histogram_xp, sns_core_xp
from sparseopt.solvers._xp_checks import check_array_xp, fetch, float_dtype_xp, host_dtype
from sparseopt.solvers.sns import _bin_value

__all__ = ["check_ot_input_xp", "run_ot_xp"]

_PLANS = ("dense", "sparse", None)
_CORES = {"sinkhorn": sinkhorn_core_xp, "sinkhorn_newton_sparse": sns_core_xp}


def _is_empty(h):
    return h is None or (isinstance(h, list | tuple) and len(h) == 0) or (
        hasattr(h, "shape") and math.prod(h.shape) == 0)


def _histogram_xp(nx, h, name, size):
    xp = nx.xp
    if _is_empty(h):
        return xp.full(size, 1.0 / size, dtype=xp.float64), None
    arr = check_array_xp(nx, h, name, ndim=(1, 2) if name == "b" else 1)
    dt = arr.dtype
    arr = xp.astype(arr, xp.float64)
    if arr.shape[0] != size:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but M has {size} "
            f"{'rows' if name == 'a' else 'columns'}"
        )
    (negative,) = fetch(nx, xp.any(arr < 0))
    if negative:
        raise ValueError(f"{name} must have non-negative entries")
    return arr, dt


def check_ot_input_xp(nx, a, b, M, reg, *, normalize=False, mass_rtol=1e-6):
    """:func:`~sparseopt.solvers._ot_input.check_ot_input` for device arrays.

    Returns an :class:`OTProblem` whose arrays live on the device; its
    ``dtype`` is the NumPy twin of the working dtype.
    """
    xp = nx.xp
    M = check_array_xp(nx, M, "M", ndim=2)
    n, m = M.shape
    if n == 0 or m == 0:
        raise ValueError(f"M must have at least one row and one column, got shape {M.shape}")
    reg = check_scalar(reg, "reg", low=0.0, include_low=False)
    a, da = _histogram_xp(nx, a, "a", n)
    b, db = _histogram_xp(nx, b, "b", m)
    dtype = float_dtype_xp(xp, M.dtype, da, db)
    M = xp.astype(M, dtype, copy=False)
    sa = fetch(nx, xp.sum(a))[0]
    sb_dev = xp.sum(b, axis=0)
    sb = np.atleast_1d(np.asarray(nx.to_numpy(sb_dev), dtype=np.float64))
    if sa <= 0:
        raise ValueError("a must have positive total mass")
    if np.any(sb <= 0):
        raise ValueError("b must have positive total mass (every column)")
    if normalize:
        a = a / sa
        b = b / sb_dev
    elif np.any(np.abs(sb - sa) > mass_rtol * max(sa, np.max(sb))):
        raise ValueError(
            f"a and b must have the same total mass, got sum(a) = {sa:.10g} and "
            f"sum(b) = {sb}; pass normalize=True to rescale both to unit mass"
        )
    b = b * (xp.sum(a) / xp.sum(b, axis=0))
    return OTProblem(a=a, b=b, M=M, reg=reg, dtype=host_dtype(xp, dtype), batch=b.ndim == 2)


def check_init_xp(nx, init, n, m):
    """Validate a warm start ``(f, g)`` on the device; return float64 copies."""
    if init is None:
        return None
    xp = nx.xp
    try:
        f, g = init
    except (TypeError, ValueError) as exc:
        raise TypeError("init must be a pair (f, g) of potentials") from exc
    f = xp.astype(check_array_xp(nx, f, "init[0]", ndim=1, finite=False), xp.float64)
    g = xp.astype(check_array_xp(nx, g, "init[1]", ndim=1, finite=False), xp.float64)
    if f.shape[0] != n or g.shape[0] != m:
        raise ValueError(
            f"init potentials must have shapes ({n},) and ({m},), got {f.shape} and {g.shape}"
        )
    bad = fetch(nx, xp.any(xp.isnan(f) | (f == math.inf)), xp.any(xp.isnan(g) | (g == math.inf)))
    if any(bad):
        raise ValueError("init potentials must not contain NaN or +inf")
    return f, g


class _Support:
    """Positive entries of a histogram: mask, indices and positions (None when all are)."""

    def __init__(self, nx, h):
        xp = nx.xp
        self.mask = h > 0
        (everywhere,) = fetch(nx, xp.all(self.mask))
        self.idx = None if everywhere else xp.nonzero(self.mask)[0]
        if self.idx is not None:
            # position of each full index inside the support (gather-only embedding)
            pos = xp.cumulative_sum(xp.astype(self.mask, xp.int64)) - 1
            self.pos = xp.clip(pos, 0, None)

    def take(self, xp, arr, axis=0):
        return arr if self.idx is None else xp.take(arr, self.idx, axis=axis)

    def embed(self, xp, arr, fill, axis=0):
        """Full-size array from one defined on the support (``fill`` elsewhere)."""
        if self.idx is None:
            return arr
        full = xp.take(arr, self.pos, axis=axis)
        if arr.ndim == 1:
            mask = self.mask
        elif axis == 0:
            mask = self.mask[:, None]
        else:
            mask = self.mask[None, :]
        return xp.where(mask, full, fill)


def finalize_xp(nx, state, a_s, b_s, M, reg, *, plan, plan_drop, dtype, sup_a, sup_b,
                shape):
    """Plan, cost, objective and measured marginal error (see ``_ot_core.finalize``)."""
    xp = nx.xp
    f, g, K, u, v = state["f"], state["g"], state["K"], state["u"], state["v"]
    f_out = f + reg * xp.log(u)
    g_out = g + reg * xp.log(v)
    P = (u[:, None] * xp.astype(K, xp.float64)) * v[None, :]
    if plan == "sparse":
        hist_mass, hist_count = histogram_xp(nx, P, 0.0)
        first, _ = threshold_bin(hist_mass, hist_count, plan_drop, 0)
        P = xp.where(P >= _bin_value(first), P, 0.0)
    r = xp.sum(P, axis=1)
    c = xp.sum(P, axis=0)
    cost, err, objective = fetch(
        nx, xp.sum(P * M), xp.sum(xp.abs(r - a_s)) + xp.sum(xp.abs(c - b_s)),
        r @ f_out + c @ g_out)
    if plan is None:
        P_out = None
    else:
        P = sup_b.embed(xp, sup_a.embed(xp, P, 0.0, axis=0), 0.0, axis=1)
        if plan == "sparse":
            from sparseopt.formats import CSR

            indptr, indices, data = _csr_of(nx, P, P > 0.0)
            P_out = CSR((xp.astype(data, dtype), indices, indptr), shape=shape, check=False)
            P_out._sorted = P_out._canonical = True
        else:
            P_out = xp.astype(P, dtype)
    return {"plan": P_out, "cost": cost, "objective": objective, "f": f_out, "g": g_out,
            "error": err}


def run_ot_xp(nx, name, a, b, M, reg, *, tol, max_iter, init, plan, plan_drop,
              normalize, verbose, callback, check_every, n_threads, warn, options):
    """:func:`~sparseopt.solvers._ot_driver.run_ot` on the backend ``nx`` (device arrays)."""
    xp = nx.xp
    core = _CORES[name]
    prob = check_ot_input_xp(nx, a, b, M, reg, normalize=normalize)
    if tol is None:  # float32 cannot meet the float64 default
        tol = 1e-9 if prob.dtype == np.float64 else 1e-5
    tol = check_scalar(tol, "tol", low=0.0, include_low=False)
    max_iter = check_positive_int(max_iter, "max_iter")
    check_every = check_positive_int(check_every, "check_every")
    if plan not in _PLANS:
        raise ValueError(f"plan must be one of {_PLANS}, got {plan!r}")
    if plan_drop is None:
        plan_drop = 0.1 * tol
    plan_drop = check_scalar(plan_drop, "plan_drop", low=0.0)
    n, m = prob.M.shape
    init = check_init_xp(nx, init, n, m)
    args = (nx, name, core, prob, tol, max_iter, init, plan, plan_drop, verbose, callback,
            check_every, n_threads, warn, options)
    if prob.batch:
        results = [_run_one(prob.a, prob.b[:, j], *args) for j in range(prob.b.shape[1])]
        return _stack(xp, results, plan)
    return _run_one(prob.a, prob.b, *args)


def _run_one(a, b, nx, name, core, prob, tol, max_iter, init, plan, plan_drop, verbose,
             callback, check_every, n_threads, warn, options):
    xp = nx.xp
    n, m = prob.M.shape
    reg = prob.reg
    sup_a, sup_b = _Support(nx, a), _Support(nx, b)
    Ms = sup_b.take(xp, sup_a.take(xp, prob.M, axis=0), axis=1)
    a_s, b_s = sup_a.take(xp, a), sup_b.take(xp, b)
    init_s = None
    if init is not None:
        init_s = (sup_a.take(xp, init[0]), sup_b.take(xp, init[1]))
    monitor = IterationMonitor(name, verbose=verbose, callback=callback, max_iter=max_iter)
    trace = Trace(monitor, reg, check_every)
    try:
        # NumPy-backed namespaces warn on exp overflow and log(0), as the CPU path
        with numba_threads(n_threads), np.errstate(over="ignore", divide="ignore",
                                                   invalid="ignore"):
            state = core(nx, a_s, b_s, Ms, reg, init_s, tol, max_iter, trace, **options)
            out = finalize_xp(nx, state, a_s, b_s, Ms, reg, plan=plan, plan_drop=plan_drop,
                              dtype=prob.M.dtype, sup_a=sup_a, sup_b=sup_b, shape=(n, m))
    finally:
        monitor.close()
    errors = np.asarray([*trace.errors, out["error"]])
    slack = 1e-3 * tol + (2 * plan_drop if plan == "sparse" else 0.0)
    converged = bool(state["converged"]) and out["error"] <= tol + slack
    message = state.get("message", "")
    if trace.stopped:
        message = "stopped by callback"
    if not converged and warn and not trace.stopped:
        warn_not_converged(name, out["error"], tol, state["n_sinkhorn"] + state["n_newton"],
                           what="L1 marginal error")
    dtype = prob.M.dtype
    f = xp.astype(sup_a.embed(xp, out["f"], -math.inf), dtype)
    g = xp.astype(sup_b.embed(xp, out["g"], -math.inf), dtype)
    return OTResult(
        x=out["plan"], plan=out["plan"], cost=out["cost"], objective=out["objective"],
        f=f, g=g, n_sinkhorn=int(state["n_sinkhorn"]), n_newton=int(state["n_newton"]),
        n_cg=int(state.get("n_cg", 0)), marginal_error=errors, converged=converged,
        n_iter=int(state["n_sinkhorn"] + state["n_newton"]), stop_crit=out["error"],
        tol=tol, message=message, reg=reg,
        history={"time": np.asarray(trace.times), **state.get("history", {})},
        timings={"total": trace.times[-1] if trace.times else 0.0},
    )


def _stack(xp, results, plan):
    if plan == "dense":
        P = xp.stack([r.plan for r in results])
    elif plan == "sparse":
        P = [r.plan for r in results]
    else:
        P = None
    return OTResult(
        x=P, plan=P,
        cost=np.array([r.cost for r in results]),
        objective=np.array([r.objective for r in results]),
        f=xp.stack([r.f for r in results], axis=1),
        g=xp.stack([r.g for r in results], axis=1),
        n_sinkhorn=np.array([r.n_sinkhorn for r in results]),
        n_newton=np.array([r.n_newton for r in results]),
        n_cg=np.array([r.n_cg for r in results]),
        marginal_error=[r.marginal_error for r in results],
        converged=all(r.converged for r in results),
        n_iter=int(max(r.n_iter for r in results)),
        stop_crit=float(max(r.stop_crit for r in results)),
        tol=results[0].tol,
        message="; ".join(sorted({r.message for r in results})),
        reg=results[0].reg,
        history={"time": [r.history["time"] for r in results]},
    )
