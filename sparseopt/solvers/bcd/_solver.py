r"""The block coordinate descent driver :func:`minimize`."""

import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._result import SolverResult
from sparseopt._validation import check_array, check_positive_int, check_scalar
from sparseopt.solvers.bcd._blocks import BlockCache, ForestSolver
from sparseopt.solvers.bcd._fast import FastGreedy, fast_eligible
from sparseopt.solvers.bcd._partitions import make_partition
from sparseopt.solvers.bcd._rules import RULES, Selector
from sparseopt.solvers.bcd._updates import UPDATES, Updater

__all__ = ["BCDResult", "minimize"]

_REQUIRED = ("init_state", "update_state", "value", "gradient", "lipschitz")


@dataclass(kw_only=True, repr=False)
class BCDResult(SolverResult):
    """Outcome of :func:`minimize`.

    Attributes
    ----------
    x : ndarray of shape (n_vars,)
        Final iterate (dtype of the problem's data).
    objective : ndarray of shape (n_iter + 1,)
        ``F(x_t) = f(x_t) + g(x_t)`` before the first and after every iteration.
    time : ndarray of shape (n_iter + 1,)
        Cumulative wall-clock seconds at the same points (0 first).
    n_updated : ndarray of shape (n_iter + 1,)
        Cumulative number of coordinates changed.
    active_set_iter : int or None
        With an L1 term or bounds: the first iteration from which the free set
        (non-zero variables off the bounds) stayed equal to the final one.
    support_size : int or None
        Size of that final free set.
    stop_crit : float
        ``||G(x)||_inf / ||G(\bar x)||_inf`` (``\bar x`` the default start) with
        ``G`` the coordinate-wise
        proximal-gradient mapping (``G = \\nabla f`` when ``g = 0``).
    """

    objective: np.ndarray = None
    time: np.ndarray = None
    n_updated: np.ndarray = None
    active_set_iter: int | None = None
    support_size: int | None = None
    rule: str = ""
    update: str = ""
    partition: str = ""
    extra: dict = field(default_factory=dict)


def _check_problem(problem, needs):
    missing = [m for m in _REQUIRED if not callable(getattr(problem, m, None))]
    if not hasattr(problem, "penalty") or not hasattr(problem, "n_vars"):
        missing.append("penalty/n_vars")
    if missing:
        raise TypeError(f"problem {type(problem).__name__} does not implement the BCD "
                        f"problem protocol: missing {', '.join(missing)}")
    for method, why in needs:
        if not callable(getattr(problem, method, None)):
            raise ValueError(f"{why} needs problem.{method}(), which "
                             f"{type(problem).__name__} does not provide")


def _needs(part, rule, update, problem):
    needs = []
    if update == "matrix" or (update == "lipschitz" and (part.variable or (
            part.sizes > 1).any())):
        needs.append(("hessian_bound", f"update={update!r} on blocks"))
    if update == "newton":
        needs += [("hessian", "update='newton'"), ("value_after", "update='newton'")]
    if update == "message-passing" or part.forest:
        needs.append(("hessian_csr", "message passing / forest blocks"))
    if rule == "gsq":
        if part.variable and problem.penalty.smooth and part.block_size > 1 \
                and not part.forest:
            needs.append(("hessian_bound_matvec", "rule='gsq' on variable blocks"))
        elif not part.variable:
            needs.append(("hessian_bound", "rule='gsq'"))
    if rule == "gsd":
        needs.append(("diag_bound", "rule='gsd'") if part.variable else
                     ("hessian_bound", "rule='gsd'"))
    if rule in ("gsl", "lipschitz") and not part.variable and (part.sizes > 1).any():
        needs.append(("hessian_bound", f"rule={rule!r} on blocks"))
    return needs


def _grad_map_norm(pen, x, g, L):
    return float(np.max(np.abs(pen.grad_map(x, g, L)))) if x.size else 0.0


def minimize(problem, *, partition=None, rule="gsl", update="lipschitz",
             block_size=None, x0=None, max_iter=10000, tol=1e-6, active_set=False,
             fast="auto", check_every=None, random_state=None, verbose=0,
             callback=None):
    r"""Minimise ``F(x) = f(x) + g(x)`` by block coordinate descent.

    Each iteration picks a block ``b`` of variables with the selection
    ``rule`` and changes only ``x_b`` with the ``update`` rule (Nutini,
    Laradji & Schmidt, 2022).

    Parameters
    ----------
    problem : problem object
        From :func:`least_squares`, :func:`logistic`, :func:`softmax`,
        :func:`quadratic`, :func:`label_propagation` or :func:`custom`, or any
        object following the protocol of
        :mod:`sparseopt.solvers.bcd._problems`.
    partition : str or list of index arrays, default "order"
        ``"order"``, ``"random"``, ``"sort"``, ``"avg"`` (fixed blocks of
        ``block_size``), ``"variable"`` (any ``block_size`` variables chosen by
        the rule), ``"red-black"``, ``"tree"`` (fixed forest blocks) or
        ``"greedy-tree"`` (a forest grown each iteration), or the blocks
        themselves (they must partition ``0..n_vars-1``).
    rule : {"cyclic", "random", "lipschitz", "gs", "gsl", "gsd", "gsq"}
        Block selection rule (see :mod:`sparseopt.solvers.bcd._rules`); with
        an L1 term or bounds, ``"gsq"`` is the proximal GS-q rule.
    update : {"lipschitz", "matrix", "newton", "message-passing"}
        Block update rule (see :mod:`sparseopt.solvers.bcd._updates`).
    block_size : int, optional
        Block size of the fixed and variable partitions (default 1; for
        ``"greedy-tree"`` the largest tree, default unlimited).
    x0 : array_like of shape (n_vars,), optional
        Start (default zeros, projected onto the bounds).  Not modified.
    max_iter : int
        Maximum number of block updates.
    tol : float
        Stop when ``||G(x)||_inf <= tol * ||G(\bar x)||_inf``, with ``\bar x``
        the default start (zeros projected on the bounds) and ``G`` the
        coordinate-wise proximal-gradient mapping
        ``G_i = L_i (x_i - prox_{g_i/L_i}(x_i - \nabla_i f / L_i))`` (the
        gradient when ``g = 0``).
    active_set : bool
        Variable blocks with an L1 term or bounds: put the free variables in the
        block first (active-set identification, then superlinear convergence
        with ``"matrix"``/``"newton"`` updates).
    fast : {"auto", True, False}
        Use the heap-based O(log p) greedy coordinate path when it applies
        (``True`` raises if it does not).
    check_every : int, optional
        Iterations between stopping checks (default 1; ``n_vars`` on the fast path).
    random_state : int or numpy Generator, optional
        Seed for the random rules and the ``"random"`` partition.
    verbose : int
        Logging level (see :class:`sparseopt._monitor.IterationMonitor`).
    callback : callable, optional
        ``callback(result)`` at every check; return True to stop.

    Returns
    -------
    BCDResult

    References
    ----------
    J. Nutini, I. Laradji, M. Schmidt. Let's Make Block Coordinate Descent
    Converge Faster: Faster Greedy Rules, Message-Passing, Active-Set
    Complexity, and Superlinear Convergence. JMLR 23(131), 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import bcd
    >>> rng = np.random.default_rng(0)
    >>> A, b = rng.standard_normal((30, 10)), rng.standard_normal(30)
    >>> res = bcd.minimize(bcd.least_squares(A, b), rule="gsl", tol=1e-10)
    >>> bool(res.converged)
    True
    >>> np.allclose(res.x, np.linalg.lstsq(A, b, rcond=None)[0])
    True
    """
    if getattr(problem, "on_device", False) or rule == "jacobi":
        # device arrays, or the data-parallel Jacobi variant: the array-API path
        from sparseopt.solvers.bcd._bcd_xp import from_cpu_problem, minimize_xp

        if not getattr(problem, "on_device", False):
            problem = from_cpu_problem(problem)
        return minimize_xp(problem, partition=partition, rule=rule, update=update,
                           block_size=block_size, x0=x0, max_iter=max_iter, tol=tol,
                           active_set=active_set, fast=fast, check_every=check_every,
                           random_state=random_state, verbose=verbose, callback=callback)
    t_start = time.perf_counter()
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    if not isinstance(update, str) or update not in UPDATES:
        raise ValueError(f"unknown update {update!r}; choose one of {UPDATES}")
    max_iter = check_positive_int(max_iter, "max_iter", allow_zero=True)
    tol = check_scalar(tol, "tol", low=0.0)
    if block_size is not None:
        block_size = check_positive_int(block_size, "block_size")
    if check_every is not None:
        check_every = check_positive_int(check_every, "check_every")
    if fast not in ("auto", True, False):
        raise ValueError(f"fast must be 'auto', True or False, got {fast!r}")
    _check_problem(problem, [])
    rng = random_state if isinstance(random_state, np.random.Generator) else \
        np.random.default_rng(random_state)
    pen = problem.penalty
    p = int(problem.n_vars)
    part = make_partition(partition, problem, block_size, rng)
    _check_problem(problem, _needs(part, rule, update, problem))
    if update == "message-passing" and not (part.forest or (partition is not None
                                             and not isinstance(partition, str))):
        raise ValueError("update='message-passing' needs forest blocks: use "
                         "partition='red-black', 'tree' or 'greedy-tree' (or your own "
                         "forest blocks)")
    if active_set:
        if pen.smooth:
            raise ValueError("active_set=True needs an L1 term or bounds")
        if not part.variable or part.forest:
            raise ValueError("active_set=True needs partition='variable'")

    if x0 is None:
        x = pen.project(np.zeros(p))
    else:
        x = check_array(x0, "x0", ndim=1)
        if x.shape[0] != p:
            raise ValueError(f"x0 must have shape ({p},), got {x.shape}")
        x = pen.project(np.array(x, dtype=np.float64))

    L = np.asarray(problem.lipschitz(), dtype=np.float64)
    if L.shape != (p,) or not np.isfinite(L).all() or (L <= 0).any():
        raise ValueError("problem.lipschitz() must return finite positive constants "
                         "(a column of zeros in the design gives L_i = 0: drop it or "
                         "add l2 > 0)")
    state = problem.init_state(x)
    if not np.isfinite(problem.value(state)):
        raise ValueError("the objective is not finite at the starting point")

    use_fast = fast is not False and fast_eligible(problem, part, rule, update,
                                                   active_set)
    if fast is True and not use_fast:
        raise ValueError("fast=True: the heap path needs coordinate blocks, a greedy "
                         "rule (gs/gsl/gsd/gsq), a lipschitz/matrix update and a sparse "
                         "least-squares, logistic or quadratic problem")
    if check_every is None:
        check_every = max(1, p) if use_fast else 1

    gval = pen.value(state.x) if not pen.smooth else 0.0
    F = problem.value(state) + gval
    objective = [F]
    times = [0.0]
    n_updated = [0]
    crit_hist = []
    crit0 = _grad_map_norm(pen, state.x, problem.gradient(state), L)
    if x0 is None:
        scale = crit0
    else:
        # the scale does not depend on x0, so a warm start near the optimum stops
        zero = pen.project(np.zeros(p))
        scale = _grad_map_norm(pen, zero, problem.gradient(problem.init_state(zero)), L)
    scale = scale if scale > 0 else 1.0
    crit = crit0 / scale
    crit_hist.append(crit)
    free_prev = pen.free_mask(state.x) if not pen.smooth else None
    free_since = 0
    converged = crit <= tol
    monitor = IterationMonitor("bcd", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    result = BCDResult(tol=tol, rule=rule, update=update,
                       partition=getattr(part, "kind", "user"))

    def snapshot(it):
        result.x = state.x.astype(problem.dtype, copy=True)
        result.n_iter = it
        result.stop_crit = crit
        result.converged = converged
        result.objective = np.asarray(objective)
        result.time = np.asarray(times)
        result.n_updated = np.asarray(n_updated)
        return result

    stopped = False
    it = 0
    t_loop = time.perf_counter()
    if use_fast and not converged:
        runner = FastGreedy(problem, state, rule)
        while it < max_iter and not converged:
            n = min(check_every, max_iter - it)
            t0 = time.perf_counter()
            obj, _ = runner.run(n, F)
            dt = time.perf_counter() - t0
            done = len(obj)
            if done:
                objective.extend(obj.tolist())
                base = times[-1]
                times.extend((base + dt * np.arange(1, done + 1) / done).tolist())
                n_updated.extend((n_updated[-1] + np.arange(1, done + 1)).tolist())
            it += done
            gval = pen.value(state.x) if not pen.smooth else 0.0
            F = problem.value(state) + gval
            if done:
                objective[-1] = F
            crit = _grad_map_norm(pen, state.x, problem.gradient(state), L) / scale
            crit_hist.append(crit)
            converged = crit <= tol or done < n
            if free_prev is not None:
                free = pen.free_mask(state.x)
                if not np.array_equal(free, free_prev):
                    free_since = it
                    free_prev = free
            if monitor.step(it, snapshot(it) if callback else None, objective=F,
                            stop_crit=crit):
                stopped = True
                break
            if done < n:
                break
    elif not converged:
        # block operations are small dense solves: BLAS threads only add overhead
        # (and thrash on a loaded machine), so the loop runs BLAS single-threaded
        with threadpool_limits(limits=1, user_api="blas"):
            forest = None
            if part.forest or update == "message-passing":
                forest = ForestSolver(problem.hessian_csr())
            cache = BlockCache(problem, part) if not part.variable else None
            selector = Selector(problem, part, rule, cache, rng, active_set, update)
            selector._forest = forest
            updater = Updater(problem, part, update, cache, forest)
            for it in range(1, max_iter + 1):
                g = problem.gradient(state)
                block = selector.select(it - 1, state.x, g)
                if pen.smooth:
                    changed = updater.apply(state, block)
                else:
                    old = pen.block_value(state.x[block], block)
                    changed = updater.apply(state, block)
                    gval += pen.block_value(state.x[block], block) - old
                F = problem.value(state) + gval
                objective.append(F)
                times.append(time.perf_counter() - t_loop)
                n_updated.append(n_updated[-1] + changed)
                if free_prev is not None:
                    free = pen.free_mask(state.x)
                    if not np.array_equal(free, free_prev):
                        free_since = it
                        free_prev = free
                if it % check_every == 0 or it == max_iter:
                    crit = _grad_map_norm(pen, state.x, problem.gradient(state), L) / scale
                    crit_hist.append(crit)
                    converged = crit <= tol
                    if monitor.step(it, snapshot(it) if callback else None, objective=F,
                                    stop_crit=crit):
                        stopped = True
                        break
                    if converged:
                        break
                if not np.isfinite(F):
                    raise FloatingPointError(f"the objective became {F} at iteration {it}")
            else:
                it = max_iter
    monitor.close()
    n_iter = len(objective) - 1
    snapshot(n_iter)
    result.history = {"objective": result.objective, "stop_crit": np.asarray(crit_hist)}
    result.timings = {"total": time.perf_counter() - t_start,
                      "loop": time.perf_counter() - t_loop}
    if free_prev is not None:
        result.active_set_iter = int(free_since)
        result.support_size = int(free_prev.sum())
    result.extra = {"fast_path": bool(use_fast), "n_blocks": getattr(part, "n_blocks",
                                                                     None)}
    if converged:
        result.message = "converged: stopping criterion below tol"
    elif stopped:
        result.message = "stopped by callback"
    else:
        result.message = "max_iter reached"
        warn_not_converged("bcd.minimize", crit, tol, n_iter,
                           what="relative prox-gradient norm")
    return result
