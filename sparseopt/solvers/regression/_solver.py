"""Working-set coordinate descent with extrapolation and gap-safe screening.

The outer loop (NumPy) and the inner loop (:func:`sparseopt.kernels._cd.cd_inner`,
Numba) split the work as in celer and skglm:

1. **Outer check.**  Recompute the residual from ``w`` (no drift), the full
   gradient ``X^T v`` over the unscreened features, the per-block fixed-point
   violation ``L_k ||w_k - prox_k(w_k - grad_k / L_k)||`` and

   * for the convex penalties the duality gap ``P(w) - D(u)`` at the rescaled
     residual ``u`` (Fenchel dual; the intercept's dual constraint
     ``sum(u) = 0`` is enforced), stopping when ``gap / P(0) <= tol``;
   * for MCP, SCAD and L0 the largest fixed-point violation relative to
     ``||grad f(0)||_inf`` (the gradient at the null model), stopping when it
     is ``<= tol``.

2. **Gap-safe screening** (convex penalties): the dual optimum lies in the ball
   of radius ``R = sqrt(2 gap / m)`` around ``u`` (``m`` the strong concavity
   of the dual: ``n`` for least squares, ``4 / max(s)`` for the logistic loss),
   so a feature with ``|x_j^T u| + ||x_j|| R < alpha`` is zero at the optimum
   and is removed for the rest of the solve (Fercoq, Gramfort & Salmon 2015;
   Ndiaye et al. 2017).

3. **Working set.**  All blocks with a non-zero coefficient plus the
   unscreened blocks closest to activation, ranked by
   ``(|grad_k| - threshold_k) / sqrt(L_k)`` (the gap-safe distance of celer,
   equivalently a GS-q score at zero), of size ``max(p0, 2 |support|)``.

4. **Inner solve** on the working set: cyclic CD epochs with Anderson
   extrapolation until an epoch moves no block by more than
   ``0.1 x`` the outer fixed-point violation (for the Lasso / elastic net
   with a settled working set: by more than ``tol P(0) / ||w||_1``, the
   violation at which the relative gap reaches ``tol``).

Lasso / elastic net (least squares, separable L1 + L2) take a fast path: a
specialised sweep kernel (:func:`sparseopt.kernels._cd.cd_inner_lasso`) and
lazily refreshed gradients in the outer check
(:class:`~sparseopt.solvers.regression._lazy.LazyGradient`): a zero feature
whose stored gradient plus a bound on its drift stays below ``alpha`` is not
recomputed, which leaves the duality gap exactly that of a full pass.

The numeric core is the pair (``Design`` arrays, ``Penalty`` parameters): a
GPU backend only has to provide ``xt``, ``state`` and an inner solver.

References
----------
Massias, Gramfort & Salmon (2018), "Celer: a fast solver for the Lasso with
dual extrapolation", ICML.  Bertrand et al. (2022), "Beyond L1: faster and
better sparse models with skglm", NeurIPS.  Nutini, Laradji & Schmidt (2022),
"Let's make block coordinate descent converge faster", JMLR.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.special import entr, expit

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._result import SolverResult
from sparseopt.kernels import _cd
from sparseopt.solvers.regression._lazy import LazyGradient

__all__ = ["PathResult", "RegressionResult", "solve", "solve_path"]

P0 = 300            # minimal working-set size (first size on a cold start)
INNER_RATIO = 0.1    # inner solve: violation <= this x the outer one
INNER_TARGET = 1.0   # Lasso inner target: violation <= this x tol P(0) / ||w||_1
STABLE_FRAC = 0.01   # support settled: violators <= this x active features
WS_GROW = 0          # >0: also grow the working set geometrically (no gain)


@dataclass(kw_only=True, repr=False)
class RegressionResult(SolverResult):
    """Result of :func:`solve`.

    Attributes (besides those of :class:`~sparseopt.SolverResult`)
    ----------
    x : ndarray, shape (n_features,)
        Coefficients (dtype of the design).
    intercept : float
    alpha : float
        Regularisation level (user units).
    primal : float
        Objective value at the returned point.
    dual_gap : float
        Absolute duality gap (convex penalties; NaN otherwise).
    stop_crit : float
        Relative gap ``dual_gap / P(0)`` (convex) or relative fixed-point
        violation (nonconvex): the quantity compared with ``tol``.
    n_iter : int
        Outer iterations (working-set solves).
    n_epochs : int
        Coordinate-descent epochs in total (over working sets).
    n_screened : int
        Features removed by gap-safe screening.
    """

    intercept: float = 0.0
    alpha: float = 0.0
    primal: float = math.nan
    dual_gap: float = math.nan
    n_epochs: int = 0
    n_screened: int = 0


@dataclass(kw_only=True, repr=False)
class PathResult(SolverResult):
    """Result of :func:`solve_path`: one column per ``alpha``.

    Attributes
    ----------
    alphas : ndarray, shape (n_alphas,)
    coefs : ndarray, shape (n_features, n_alphas)
    intercepts : ndarray, shape (n_alphas,)
    dual_gaps : ndarray, shape (n_alphas,)
    stop_crits : ndarray, shape (n_alphas,)
    n_iters : ndarray of int, shape (n_alphas,)
    results : list of RegressionResult
    """

    alphas: np.ndarray = None
    coefs: np.ndarray = None
    intercepts: np.ndarray = None
    dual_gaps: np.ndarray = None
    stop_crits: np.ndarray = None
    n_iters: np.ndarray = None
    results: list = field(default_factory=list)


# ----------------------------------------------------------------------------
def _gradient_and_dual(design, pen, st, b, skip):
    """Return ``(grad, z, dual_fit)``.

    ``grad`` is the datafit gradient, ``z = X_c^T u`` at the unscaled dual point
    ``u`` and ``dual_fit(c)`` evaluates ``-f*(-c u)`` (the datafit's part of
    the dual objective) at the scaled point ``c u``.
    """
    if design.df_kind == _cd.DF_QUAD:
        grad = design.gradient(st, b, skip)
        return grad, -grad, _quad_dual_fit(design, st, b)
    y = design.y.astype(np.float64)
    s = design.s.astype(np.float64)
    p = expit(-y * (st + b))
    if design.fit_intercept:
        pos = y > 0
        sp_ = float(s[pos] @ p[pos])
        sn_ = float(s[~pos] @ p[~pos])
        a = design.xt(np.where(pos, s * y * p, 0.0), skip)
        bb = design.xt(np.where(pos, 0.0, s * y * p), skip)
        tp = min(1.0, sn_ / sp_) if sp_ > 0 else 1.0
        tn = min(1.0, sp_ / sn_) if sn_ > 0 else 1.0
        grad = -(a + bb)
        z = tp * a + tn * bb
        pb = p * np.where(pos, tp, tn)
    else:
        grad = design.xt(-s * y * p, skip)
        z = -grad
        pb = p

    def dual_fit(c):
        q = c * pb
        return float(s @ (entr(q) + entr(1.0 - q)))

    return grad, z, dual_fit


def _quad_dual_fit(design, st, b):
    n = design.n
    rc_sq = float(np.dot(st, st)) - n * b * b
    rty = float(np.dot(st, design.y)) - n * b * design.b_y

    def dual_fit(c):
        return c * rty / n - c * c * rc_sq / (2 * n)

    return dual_fit


def _complete_gradient(design, st, b, grad, skipped):
    """Reuse ``grad``; compute the entries in ``skipped`` (quadratic datafit)."""
    grad = grad.copy()
    if skipped.any():
        part = design.xt(design.grad_vector(st, b), ~skipped)
        if design.fit_intercept:
            part[skipped] += b * design.mu[skipped]
        grad[skipped] = part[skipped]
    return grad


def _duality_gap(design, pen, w, st, b, z, dual_fit):
    primal = design.datafit(st, b) + pen.value(w)
    c, hstar = pen.conjugate_and_scale(z)
    dual = dual_fit(c) - hstar
    return max(primal - dual, 0.0), primal, c


def _screen(design, pen, z, c, gap, skip_feat, skip_blocks, lips_blocks):
    """Gap-safe test; updates the skip masks in place, returns newly screened blocks."""
    if not np.isfinite(gap):
        return np.zeros(0, np.int64)
    if design.df_kind == _cd.DF_QUAD:
        radius = math.sqrt(2.0 * gap / design.n)
        if pen.grouped:
            bnorm = np.sqrt(design.n * lips_blocks)
        else:
            bnorm = design.colnorm
    else:
        if pen.grouped:
            return np.zeros(0, np.int64)
        radius = math.sqrt(gap * design.max_s / 2.0)
        bnorm = design.colnorm
    if pen.l2 > 0 and not pen.grouped:
        c = 1.0
    zn = pen.block_norms(c * z)
    thr = pen.alpha * pen.block_weights()
    new = (~skip_blocks) & (zn + bnorm * radius < thr)
    idx = np.flatnonzero(new)
    if idx.size:
        skip_blocks[idx] = True
        if pen.grouped:
            for g in idx:
                skip_feat[pen.grp_idx[pen.grp_ptr[g]:pen.grp_ptr[g + 1]]] = True
        else:
            skip_feat[idx] = True
    return idx


def _working_set(score, size):
    """The ``size`` best-scored blocks (sorted), the number of violators
    (zero blocks with a positive score) left out and their total number."""
    vals, m_pos = _cd.movable_scores(score)
    m = vals.size
    if size >= m:
        return np.flatnonzero(score > -np.inf).astype(np.int64), 0, m_pos
    thr = float(np.partition(vals, m - size)[m - size])
    ws, n_left = _cd.select_top(score, int(size), thr, int(m_pos))
    return ws, n_left, m_pos


def solve(design, pen, *, alpha_user=None, w0=None, b0=None, tol=1e-4,
          max_iter=100, max_epochs=10_000, p0=None, screening=True, anderson_k=5,
          verbose=0, callback=None, name="sparse_regression", warn=True,
          lips_blocks=None, inner_ratio=None, warm_grad=None):
    """Minimise ``datafit(w, b) + penalty(w)`` on a prepared :class:`Design`.

    Parameters
    ----------
    design : Design
        From :func:`~sparseopt.solvers.regression.prepare_design`.
    pen : Penalty
        From the factories in :mod:`sparseopt.solvers.regression`.
    w0, b0 : optional
        Warm start (coefficients and intercept).
    tol : float
        Relative duality gap (convex) or relative fixed-point violation
        (MCP, SCAD, L0) to reach; see the module docstring.
    max_iter : int
        Outer iterations (working-set solves).
    max_epochs : int
        CD epochs per inner solve.
    p0 : int, optional
        Minimal working-set size (default ``P0 = 300``: on a cold start the
        working set then reaches the support in a few outer iterations, each
        of which costs a pass over the design).
    screening : bool
        Gap-safe screening (convex penalties).
    anderson_k : int
        Anderson extrapolation memory (0 disables).
    verbose, callback
        See :class:`~sparseopt._monitor.IterationMonitor`; ``callback(result)``
        returning True stops the run.
    lips_blocks : ndarray, optional
        Block Lipschitz constants (required for group penalties).
    inner_ratio : float, optional
        Inner solves stop when a sweep moves no block by more than
        ``inner_ratio`` times the outer fixed-point violation (default
        ``INNER_RATIO = 0.1``).
    warm_grad : optional
        From the previous solve of a path (``result.last_grad``): a
        :class:`~sparseopt.solvers.regression._lazy.LazyGradient` (Lasso fast
        path, same design) or a tuple ``(grad, skipped)``, the datafit
        gradient at ``w0`` (entries valid where ``skipped`` is False).

    Returns
    -------
    RegressionResult
    """
    t_start = time.perf_counter()
    p0 = P0 if p0 is None else p0
    p = design.p
    dtype = design.dtype
    if w0 is None:
        w = np.zeros(p, dtype=dtype)
    else:
        w = np.array(w0, dtype=dtype, copy=True)
    b = design.b0 if b0 is None else float(b0)
    if not design.fit_intercept:
        b = 0.0
    nb = pen.n_blocks(p)
    if pen.grouped:
        if lips_blocks is None:
            raise ValueError("lips_blocks is required for a group penalty")
        lips = np.ascontiguousarray(lips_blocks, dtype=np.float64)
    else:
        lips = design.lips
    convex = pen.convex
    warm = w0 is not None and bool(np.any(w != 0))
    lasso_kernel = (design.df_kind == _cd.DF_QUAD and pen.kind == _cd.PEN_L1
                    and not pen.grouped)
    scale = design.P0 if convex else design.grad0_inf
    skip_feat = np.zeros(p, dtype=bool)
    skip_blocks = np.zeros(nb, dtype=bool)
    kkt = np.zeros(nb)
    score = np.zeros(nb)
    alpha_user = pen.alpha if alpha_user is None else alpha_user
    res = RegressionResult(x=w, intercept=b, alpha=alpha_user, tol=tol)
    hist_obj, hist_crit = [], []
    monitor = IterationMonitor(name, verbose=verbose, callback=callback,
                               max_iter=max_iter)
    n_iter = 0
    n_epochs = 0
    converged = False
    message = ""
    b_arr = np.zeros(1)
    try:
        if not scale > 0:
            # y is constant (least squares) or a single class: w = 0 is optimal
            w[:] = 0
            st, b = design.state(w, b if design.df_kind == _cd.DF_LOGISTIC else 0.0)
            res.primal = design.datafit(st, b) + pen.value(w)
            res.dual_gap = 0.0 if convex else math.nan
            res.intercept = float(b) if design.fit_intercept else 0.0
            res.stop_crit = 0.0
            res.converged = True
            res.message = "trivial problem: constant target"
            return res
        first = True
        ws_prev = 0
        lazy = None
        if lasso_kernel:
            lazy = warm_grad if isinstance(warm_grad, LazyGradient) and \
                warm_grad.design is design else LazyGradient(design)
        while True:
            st, b = design.state(w, b)
            if lazy is not None:
                kkt_max, dn, excess, l1, sq, n_active = lazy.check(
                    st, b, w, pen, skip_feat, score)
                primal = design.datafit(st, b) + pen.alpha * l1 + 0.5 * pen.l2 * sq
                if pen.l2 > 0:
                    c, hstar = 1.0, excess / (2 * pen.l2)
                else:
                    c, hstar = (1.0 if dn <= pen.alpha else pen.alpha / dn), 0.0
                gap = max(primal - (_quad_dual_fit(design, st, b)(c) - hstar), 0.0)
                crit = gap / scale
                res.dual_gap = gap
            elif first and warm_grad is not None and design.df_kind == _cd.DF_QUAD \
                    and not isinstance(warm_grad, LazyGradient):
                # path warm start: same w, so the previous alpha's final gradient
                # is valid; only the features it had screened are recomputed
                grad = _complete_gradient(design, st, b, *warm_grad)
                z = -grad
                dual_fit = _quad_dual_fit(design, st, b)
            else:
                grad, z, dual_fit = _gradient_and_dual(design, pen, st, b, skip_feat)
            if lazy is None:
                _cd.kkt_scores(pen.kind, pen.alpha, pen.l2, pen.gamma, pen.positive,
                               pen.grouped, pen.grp_ptr, pen.grp_idx, pen.grp_w, lips,
                               w, grad, skip_blocks, kkt, score)
                kkt_max = float(kkt.max(initial=0.0))
                if convex:
                    gap, primal, c = _duality_gap(design, pen, w, st, b, z, dual_fit)
                    crit = gap / scale
                    res.dual_gap = gap
                else:
                    primal = design.datafit(st, b) + pen.value(w)
                    crit = kkt_max / scale
            first = False
            res.primal = primal
            res.stop_crit = crit
            res.intercept = float(b)
            res.n_iter = n_iter
            res.n_epochs = n_epochs
            hist_obj.append(primal)
            hist_crit.append(crit)
            stop = monitor.step(n_iter, res, objective=primal, stop_crit=crit)
            if crit <= tol:
                converged = True
                message = "converged"
                break
            if stop:
                message = "stopped by callback"
                break
            if n_iter >= max_iter:
                message = "max_iter reached"
                break
            if lazy is not None and screening:
                radius = math.sqrt(2.0 * gap / design.n) if np.isfinite(gap) else np.inf
                n_new = lazy.screen(pen, 1.0 if pen.l2 > 0 else c, radius, skip_feat,
                                    score)
                if n_new:
                    moved = skip_feat & (w != 0)
                    if moved.any():
                        w[moved] = 0
                        n_active -= int(np.count_nonzero(moved))
                        st, b = design.state(w, b)
                    res.n_screened += n_new
            elif convex and screening:
                new = _screen(design, pen, z, c, gap, skip_feat, skip_blocks, lips)
                if new.size:
                    moved = skip_feat & (w != 0)
                    if moved.any():
                        w[moved] = 0
                        st, b = design.state(w, b)
                    score[new] = -np.inf
                    res.n_screened = int(skip_feat.sum())
            if lazy is None:
                n_active = int(np.count_nonzero(score == np.inf))
            size = int(max(p0, 2 * n_active, WS_GROW * ws_prev))
            ws, n_left, n_viol = _working_set(score, size)
            ws_prev = ws.size
            tol_in = (INNER_RATIO if inner_ratio is None else inner_ratio) * kkt_max
            if lazy is not None and n_left == 0 and (
                    (n_iter == 0 and warm) or n_viol <= STABLE_FRAC * n_active):
                # every violator is in the working set and the support is
                # settled (a warm start, or few violators left): aim the inner
                # solve at the gap target at once instead of shrinking the
                # violation by ``inner_ratio`` per outer iteration.  The
                # relative gap is dominated by (max_j |z_j| / alpha - 1) alpha
                # ||w||_1 / P(0) (rescaling of the dual point), so the
                # violation must fall below about tol P(0) / ||w||_1
                l1w = float(np.abs(w).sum())
                if l1w > 0:
                    tol_in = min(tol_in, INNER_TARGET * tol * scale / l1w)
            b_arr[0] = b
            if lasso_kernel:
                ep, _, _ = _cd.cd_inner_lasso(
                    design.is_sparse, design.X, design.indptr, design.indices,
                    design.data, design.n_scale, st, b_arr, design.mu,
                    design.fit_intercept, pen.alpha, pen.l2, pen.positive, lips, w,
                    ws, int(max_epochs), tol_in, int(anderson_k))
            else:
                ep, _, _ = _cd.cd_inner(
                    design.is_sparse, design.X, design.indptr, design.indices,
                    design.data, design.df_kind, design.y, design.s, design.n_scale,
                    st, b_arr, design.mu, design.fit_intercept, pen.kind, pen.alpha,
                    pen.l2, pen.gamma, pen.positive, pen.grouped, pen.grp_ptr,
                    pen.grp_idx, pen.grp_w, lips, w, ws, int(max_epochs),
                    tol_in, int(anderson_k))
            b = float(b_arr[0])
            n_epochs += int(ep)
            n_iter += 1
    finally:
        monitor.close()
    res.n_iter = n_iter
    res.n_epochs = n_epochs
    res.converged = converged
    res.message = message
    res.intercept = float(b) if design.fit_intercept else 0.0
    res.history = {"objective": np.asarray(hist_obj),
                   "stop_crit": np.asarray(hist_crit)}
    res.timings = {"total": time.perf_counter() - t_start}
    if lazy is not None:
        res.last_grad = lazy
    elif "grad" in locals():
        res.last_grad = (grad, skip_feat)
    if not converged and not monitor.stopped_by_callback and warn:
        warn_not_converged(name, res.stop_crit, tol, n_iter,
                           what="relative duality gap" if convex else
                           "relative fixed-point violation")
    return res


def solve_path(design, pen, alphas, *, w0=None, b0=None, callback=None, warn=True,
               lips_blocks=None, **kw):
    """Solve along ``alphas`` (in the given order) with warm starts.

    Keyword arguments are passed to :func:`solve`; ``callback`` is called
    with each alpha's :class:`RegressionResult` after it is solved (returning
    True stops the path).

    Returns
    -------
    PathResult
    """
    t0 = time.perf_counter()
    alphas = np.asarray(alphas, dtype=np.float64)
    # Fortran order: one contiguous column per alpha (a strided column write
    # per alpha costs a cache miss per feature on wide problems)
    coefs = np.zeros((design.p, alphas.size), dtype=design.dtype, order="F")
    intercepts = np.zeros(alphas.size)
    gaps = np.full(alphas.size, np.nan)
    crits = np.full(alphas.size, np.nan)
    n_iters = np.zeros(alphas.size, dtype=np.int64)
    results = []
    w, b = w0, b0
    warm_grad = None
    not_conv = []
    stopped = False
    for k, a in enumerate(alphas):
        r = solve(design, pen.with_alpha(a), alpha_user=a, w0=w, b0=b, warn=False,
                  lips_blocks=lips_blocks, warm_grad=warm_grad, **kw)
        warm_grad = getattr(r, "last_grad", None)
        results.append(r)
        coefs[:, k] = r.x
        intercepts[k] = r.intercept
        gaps[k] = r.dual_gap
        crits[k] = r.stop_crit
        n_iters[k] = r.n_iter
        if not r.converged:
            not_conv.append(k)
        w, b = r.x, r.intercept
        if callback is not None and callback(r):
            stopped = True
            break
    done = len(results)
    out = PathResult(
        x=coefs[:, :done], n_iter=int(n_iters.sum()), converged=not not_conv and
        not stopped, stop_crit=float(np.nanmax(crits[:done])) if done else np.inf,
        tol=kw.get("tol", 1e-4), message="stopped by callback" if stopped else
        ("converged" if not not_conv else f"{len(not_conv)} alphas not converged"),
        alphas=alphas[:done], coefs=coefs[:, :done], intercepts=intercepts[:done],
        dual_gaps=gaps[:done], stop_crits=crits[:done], n_iters=n_iters[:done],
        results=results, timings={"total": time.perf_counter() - t0})
    if not_conv and warn:
        warn_not_converged("path", float(np.nanmax(crits[not_conv])),
                           kw.get("tol", 1e-4), int(n_iters[not_conv].max()),
                           what=f"stopping criterion at {len(not_conv)} alpha(s)")
    return out
