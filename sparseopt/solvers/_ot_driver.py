"""Problem set-up shared by the OT solvers: validation, zero weights, batches, output."""

import numpy as np

from sparseopt._config import numba_threads
from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.solvers._ot_core import finalize
from sparseopt.solvers._ot_input import (
    check_init,
    check_ot_input,
    embed_potential,
    restrict,
    support,
)
from sparseopt.solvers._ot_result import OTResult
from sparseopt.solvers._xp_checks import device_backend

__all__ = ["run_ot"]

_PLANS = ("dense", "sparse", None)


def run_ot(name, core, a, b, M, reg, *, tol, max_iter, init, plan, plan_drop,
           normalize, verbose, callback, check_every, n_threads, warn, options):
    """Validate, split a batch, restrict to the support, run ``core`` and build OTResult.

    ``core(a, b, M, reg, init, tol, max_iter, trace, **options)`` solves one
    problem with positive weights and returns a state dict (``f, g, K, u, v,
    n_sinkhorn, n_newton, n_cg, converged, message``).

    Device (e.g. CuPy) inputs go to the backend-generic twin of the solver
    (:func:`sparseopt.solvers._ot_xp_driver.run_ot_xp`); NumPy inputs stay here.
    """
    nx = device_backend(a=a, b=b, M=M, init=init)
    if nx is not None:
        from sparseopt.solvers._ot_xp_driver import run_ot_xp

        return run_ot_xp(nx, name, a, b, M, reg, tol=tol, max_iter=max_iter, init=init,
                         plan=plan, plan_drop=plan_drop, normalize=normalize,
                         verbose=verbose, callback=callback, check_every=check_every,
                         n_threads=n_threads, warn=warn, options=options)
    prob = check_ot_input(a, b, M, reg, normalize=normalize)
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
    init = check_init(init, n, m)
    if prob.batch:
        k = prob.b.shape[1]
        if init is not None and (init[0].ndim != 1):
            raise ValueError("init must hold 1-d potentials")
        results = [
            _run_one(name, core, prob.a, prob.b[:, j], prob, tol, max_iter, init, plan,
                     plan_drop, verbose, callback, check_every, n_threads, warn, options)
            for j in range(k)
        ]
        return _stack(results, plan)
    return _run_one(name, core, prob.a, prob.b, prob, tol, max_iter, init, plan,
                    plan_drop, verbose, callback, check_every, n_threads, warn, options)


def _run_one(name, core, a, b, prob, tol, max_iter, init, plan, plan_drop, verbose,
             callback, check_every, n_threads, warn, options):
    from sparseopt.solvers._ot_core import Trace

    n, m = prob.M.shape
    reg = prob.reg
    ia, ib = support(a, b)
    Ms = restrict(prob.M, ia, ib)
    a_s = a if ia is None else a[ia]
    b_s = b if ib is None else b[ib]
    init_s = None
    if init is not None:
        f0, g0 = init
        init_s = (f0 if ia is None else f0[ia], g0 if ib is None else g0[ib])
    monitor = IterationMonitor(name, verbose=verbose, callback=callback, max_iter=max_iter)
    trace = Trace(monitor, reg, check_every)
    try:
        with numba_threads(n_threads), np.errstate(over="ignore"):
            state = core(a_s, b_s, Ms, reg, init_s, tol, max_iter, trace, **options)
    finally:
        monitor.close()
    out = finalize(state, a, b, Ms, reg, plan=plan, plan_drop=plan_drop,
                   dtype=prob.dtype, ia=ia, ib=ib, shape=(n, m))
    errors = np.asarray([*trace.errors, out["error"]])
    # the error re-measured on the returned plan may differ from the solver's by
    # rounding, and by up to twice the dropped mass for a sparse plan
    slack = 1e-3 * tol + (2 * plan_drop if plan == "sparse" else 0.0)
    converged = bool(state["converged"]) and out["error"] <= tol + slack
    message = state.get("message", "")
    if trace.stopped:
        message = "stopped by callback"
    if not converged and warn and not trace.stopped:
        warn_not_converged(name, out["error"], tol, state["n_sinkhorn"] + state["n_newton"],
                           what="L1 marginal error")
    dtype = prob.dtype
    f = embed_potential(out["f"], ia, n).astype(dtype)
    g = embed_potential(out["g"], ib, m).astype(dtype)
    return OTResult(
        x=out["plan"], plan=out["plan"], cost=out["cost"], objective=out["objective"],
        f=f, g=g, n_sinkhorn=int(state["n_sinkhorn"]), n_newton=int(state["n_newton"]),
        n_cg=int(state.get("n_cg", 0)), marginal_error=errors, converged=converged,
        n_iter=int(state["n_sinkhorn"] + state["n_newton"]), stop_crit=out["error"],
        tol=tol, message=message, reg=reg,
        history={"time": np.asarray(trace.times), **state.get("history", {})},
        timings={"total": trace.times[-1] if trace.times else 0.0},
    )


def _stack(results, plan):
    if plan == "dense":
        P = np.stack([r.plan for r in results])
    elif plan == "sparse":
        P = [r.plan for r in results]
    else:
        P = None
    return OTResult(
        x=P, plan=P,
        cost=np.array([r.cost for r in results]),
        objective=np.array([r.objective for r in results]),
        f=np.stack([r.f for r in results], axis=1),
        g=np.stack([r.g for r in results], axis=1),
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
