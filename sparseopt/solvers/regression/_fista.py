"""Accelerated proximal gradient (FISTA with adaptive restart) on a backend's arrays.

The generic solver of the sparse regression models, for device (CuPy) inputs
and, on request (``solver="fista"``), for NumPy ones.  It minimises the same
objectives as the working-set coordinate descent of
:mod:`sparseopt.solvers.regression._solver` and stops by the same rule, on a
:class:`~sparseopt.solvers.regression._xp.DesignXP` and a
:class:`~sparseopt.solvers.regression._xp_penalty.PenaltyXP`:

* **Step** (Beck & Teboulle 2009): from the extrapolated point ``y``,
  ``w+ = prox_{pen / L}(y - grad f(y) / L)`` with ``L`` the Lipschitz constant
  of the datafit gradient (power iteration on the centred design, see
  :meth:`DesignXP.lipschitz`); the logistic intercept is a free coordinate of
  the same step, the least-squares intercept is eliminated exactly (implicit
  centring).  Two products per step: ``X w+`` and ``X^T r(y)``
  (``X y`` is the same combination of ``X w`` as ``y`` is of ``w``).
* **Momentum** ``t+ = (1 + sqrt(1 + 4 t^2)) / 2``, ``y = w+ + (t - 1) / t+ (w+ - w)``,
  reset to ``t = 1`` when ``(y - w+)^T (w+ - w) > 0`` (the gradient restart of
  O'Donoghue & Candès 2015).  The test is evaluated on the device and applied
  with ``where``: no transfer inside the steps.
* **Check** every ``check_every`` steps at the current iterate, with one
  transfer: for the convex penalties the duality gap at the rescaled residual
  (Fenchel dual with the intercept's constraint, exactly as the CPU solver),
  stopping when ``gap / P(0) <= tol``; for MCP, SCAD and L0 the largest
  coordinate fixed-point violation ``L_j |w_j - prox_j(w_j - grad_j / L_j)|``
  relative to ``||grad f(0)||_inf``.  Gap-safe screening (convex penalties)
  becomes a boolean mask: screened coordinates are held at zero.

With ``tol`` the relative gap, both solvers return a point whose objective is
within ``tol * P(0)`` of the optimum, so their results agree to that
tolerance.

References
----------
Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm for
linear inverse problems", SIAM J. Imaging Sci.  O'Donoghue & Candès (2015),
"Adaptive restart for accelerated gradient schemes", Found. Comput. Math.
Ndiaye, Fercoq, Gramfort & Salmon (2017), "Gap safe screening rules for
sparsity enforcing penalties", JMLR.
"""

import math
import time

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt.kernels import _cd
from sparseopt.solvers._xp_linalg import fetch
from sparseopt.solvers.regression._solver import PathResult, RegressionResult
from sparseopt.solvers.regression._xp import entr, expit
from sparseopt.solvers.regression._xp_penalty import PenaltyXP

__all__ = ["CHECK_EVERY", "solve_fista", "solve_path_fista"]

CHECK_EVERY = 10


class _State:
    """Iterate ``(w, b)``, extrapolated point ``(yw, yb)``, their products and ``t``."""

    def __init__(self, design, w, b):
        xp = design.xp
        self.w, self.b = w, xp.asarray(b, dtype=xp.float64)
        self.Xw = design.matvec(w)
        self.yw, self.yb, self.Xy = self.w, self.b, self.Xw
        self.t = xp.asarray(1.0, dtype=xp.float64)


def _ones(design):
    xp = design.xp
    return design.v if design.v is not None else xp.ones(design.n, dtype=xp.float64)


def _step(design, penx, st, L, skip):
    """One accelerated proximal-gradient step from ``(yw, yb)`` (device only)."""
    xp = design.xp
    n = design.n
    if design.df_kind == _cd.DF_QUAD:
        r = design.y - st.Xy
        if design.fit_intercept:
            r = r - design.intercept_of(st.yw) * _ones(design)
        g = design.rmatvec(r) / (-n)
        gb = None
    else:
        zt = st.Xy + st.yb
        d = -design.s * design.y * expit(xp, -design.y * zt)
        g = design.rmatvec(d)
        gb = xp.sum(d) if design.fit_intercept else None
    w_new = penx.prox(st.yw - g / L, L)
    if skip is not None:
        w_new = xp.where(skip, 0.0, w_new)
    b_new = st.yb - gb / L if gb is not None else st.yb
    Xn = design.matvec(w_new)
    dw = w_new - st.w
    test = xp.vecdot(st.yw - w_new, dw)
    if gb is not None:
        test = test + (st.yb - b_new) * (b_new - st.b)
    restart = test > 0
    t_new = (1.0 + xp.sqrt(1.0 + 4.0 * st.t * st.t)) / 2.0
    beta = xp.where(restart, 0.0, (st.t - 1.0) / t_new)
    st.t = xp.where(restart, 1.0, t_new)
    st.yw = w_new + beta * dw
    st.yb = b_new + beta * (b_new - st.b)
    st.Xy = Xn + beta * (Xn - st.Xw)
    st.w, st.b, st.Xw = w_new, b_new, Xn


def _check(design, penx, st, skip):
    """Stopping quantities at ``(w, b)`` (device scalars, no transfer).

    Returns ``(primal, crit_num, b, z, c, gap)``: ``crit_num`` is the gap
    (convex) or the largest fixed-point violation; ``z = X_c^T u`` at the dual
    point and the scaling ``c`` feed gap-safe screening.
    """
    xp = design.xp
    n = design.n
    w = st.w
    quad = design.df_kind == _cd.DF_QUAD
    if quad:
        stt = design.y - st.Xw
        b = design.intercept_of(w)
        r = stt - b * _ones(design) if design.fit_intercept else stt
        grad = design.rmatvec(r) / (-n)
        grad = xp.where(skip, 0.0, grad)
        ss = xp.vecdot(stt, stt)
        primal = 0.5 * (ss / n - b * b) + penx.value(w)
        z = -grad
        dual_fit = None
    else:
        b = st.b
        y, s = design.y, design.s
        zt = st.Xw + b
        pr = expit(xp, -y * zt)
        primal = design.datafit_value(st.Xw, b) + penx.value(w)
        syp = s * y * pr
        if design.fit_intercept:
            pos = y > 0
            sp_ = xp.sum(xp.where(pos, s * pr, 0.0))
            sn_ = xp.sum(xp.where(pos, 0.0, s * pr))
            both = design.rmatvec(xp.stack([xp.where(pos, syp, 0.0),
                                            xp.where(pos, 0.0, syp)], axis=1))
            a, bb = both[:, 0], both[:, 1]
            a = xp.where(skip, 0.0, a)
            bb = xp.where(skip, 0.0, bb)
            tp = xp.where(sp_ > 0, xp.minimum(1.0, sn_ / xp.where(sp_ > 0, sp_, 1.0)), 1.0)
            tn = xp.where(sn_ > 0, xp.minimum(1.0, sp_ / xp.where(sn_ > 0, sn_, 1.0)), 1.0)
            grad = -(a + bb)
            z = tp * a + tn * bb
            pb = pr * xp.where(pos, tp, tn)
        else:
            grad = xp.where(skip, 0.0, design.rmatvec(-syp))
            z = -grad
            pb = pr

        def dual_fit(c):
            q = c * pb
            return xp.vecdot(s, entr(xp, q) + entr(xp, 1.0 - q))

    if not penx.convex:
        viol = penx.fixed_point_violation(w, grad, design.lips, skip)
        return primal, xp.max(viol), b, z, None, None
    c, hstar = penx.conjugate_and_scale(z)
    if quad:
        rc_sq = ss - n * b * b
        rty = xp.vecdot(stt, design.y) - n * b * design.b_y
        dual = c * rty / n - c * c * rc_sq / (2 * n) - hstar
    else:
        dual = dual_fit(c) - hstar
    gap = xp.maximum(primal - dual, 0.0)
    return primal, gap, b, z, c, gap


def _screen(design, penx, z, c, gap, skip_blocks):
    """Gap-safe test (device): the new block mask (screened blocks stay screened)."""
    xp = design.xp
    if design.df_kind == _cd.DF_QUAD:
        radius = xp.sqrt(2.0 * gap / design.n)
        if penx.grouped:
            # ||X_g,c||_2 <= ||X_g,c||_F: a safe bound, no group eigenvalues needed
            bnorm = xp.sqrt(design.n * penx.group_sums(design.lips))
        else:
            bnorm = design.colnorm
    else:
        if penx.grouped:
            return skip_blocks
        radius = xp.sqrt(gap * design.max_s / 2.0)
        bnorm = design.colnorm
    if penx.l2 > 0 and not penx.grouped:
        c = 1.0
    zn = penx.block_norms(c * z)
    thr = penx.alpha * penx.block_weights()
    new = (~skip_blocks) & (zn + bnorm * radius < thr) & xp.isfinite(gap)
    return skip_blocks | new


def solve_fista(design, pen, *, alpha_user=None, w0=None, b0=None, tol=1e-4,
                max_iter=100, check_every=CHECK_EVERY, screening=True, verbose=0,
                callback=None, name="sparse_regression", warn=True, **ignored):
    """Minimise ``datafit(w, b) + penalty(w)`` by FISTA with restart on a :class:`DesignXP`.

    Parameters
    ----------
    design : DesignXP
        From :func:`~sparseopt.solvers.regression._xp.prepare_design_xp`.
    pen : Penalty or PenaltyXP
    alpha_user : float, optional
        Regularisation level in user units (recorded in the result).
    w0, b0 : optional
        Warm start (an array of the design's library, and a float).
    tol : float
        Relative duality gap (convex) or relative fixed-point violation (MCP,
        SCAD, L0), as the CPU solver.
    max_iter : int
        Checks (outer iterations); each follows ``check_every`` steps.
    check_every : int
        Proximal-gradient steps between two checks (one transfer each).
    screening : bool
        Gap-safe screening (convex penalties).
    verbose, callback, name, warn
        As :func:`~sparseopt.solvers.regression.solve`.

    Returns
    -------
    RegressionResult
        ``x`` is a float64 array of the design's library; ``n_iter`` counts
        checks, ``n_epochs`` proximal-gradient steps.
    """
    t_start = time.perf_counter()
    xp = design.xp
    nx = design.nx
    p = design.p
    penx = pen if isinstance(pen, PenaltyXP) else PenaltyXP(nx, pen, p)
    if penx.kind == _cd.PEN_L0:
        raise ValueError(
            "the L0 penalty has no generic (device / solver='fista') solver: iterative "
            "hard thresholding stops at L-stationary points, not at the coordinate-wise "
            "minima the coordinate-descent solver returns; fit on host (NumPy/scipy) "
            "arrays with solver='auto' or 'cd'")
    if w0 is None:
        w = xp.zeros(p, dtype=xp.float64)
    else:
        w = xp.astype(xp.asarray(w0), xp.float64, copy=True)
        if w.shape != (p,):
            raise ValueError(f"w0 must have shape ({p},), got {tuple(w.shape)}")
    b = design.b0 if b0 is None else float(b0)
    if not design.fit_intercept:
        b = 0.0
    convex = penx.convex
    scale = design.P0 if convex else design.grad0_inf
    alpha_user = penx.alpha if alpha_user is None else alpha_user
    res = RegressionResult(x=w, intercept=b, alpha=alpha_user, tol=tol)
    if not scale > 0:
        # constant target (least squares) or a single class: w = 0 is optimal
        w = xp.zeros(p, dtype=xp.float64)
        st = _State(design, w, b if design.df_kind == _cd.DF_LOGISTIC else 0.0)
        skip = xp.zeros(p, dtype=xp.bool)
        primal, _, bb, *_ = _check(design, penx, st, skip)
        primal, bb = fetch(nx, primal, bb)
        res.x = w
        res.primal = primal
        res.dual_gap = 0.0 if convex else math.nan
        res.intercept = bb if design.fit_intercept else 0.0
        res.stop_crit = 0.0
        res.converged = True
        res.message = "trivial problem: constant target"
        res.n_screened = 0
        return res
    L = max(design.lipschitz(), np.finfo(np.float64).tiny)
    st = _State(design, w, b)
    skip_blocks = xp.zeros(penx.n_groups if penx.grouped else p, dtype=xp.bool)
    skip = xp.zeros(p, dtype=xp.bool)
    masked = False           # whether any coordinate is screened (known after a check)
    hist_obj, hist_crit = [], []
    monitor = IterationMonitor(name, verbose=verbose, callback=callback, max_iter=max_iter)
    n_iter = n_steps = 0
    converged = False
    message = ""
    n_screened = 0
    try:
        while True:
            primal, num, b_dev, z, c, gap = _check(design, penx, st, skip)
            new_blocks = None
            if convex and screening:
                new_blocks = _screen(design, penx, z, c, gap, skip_blocks)
                feat = xp.take(new_blocks, penx.gid) if penx.grouped else new_blocks
                cnt_feat = xp.sum(xp.astype(feat, xp.int64))
            else:
                cnt_feat = 0
            primal_h, num_h, b_h, feats_h = fetch(nx, primal, num, b_dev, cnt_feat)
            crit = num_h / scale
            if convex:
                res.dual_gap = num_h
            res.x = st.w
            res.primal = primal_h
            res.stop_crit = crit
            res.intercept = b_h
            res.n_iter = n_iter
            res.n_epochs = n_steps
            res.n_screened = n_screened
            hist_obj.append(primal_h)
            hist_crit.append(crit)
            stop = monitor.step(n_iter, res, objective=primal_h, stop_crit=crit)
            if crit <= tol:
                converged = True
                message = "converged"
                break
            if stop:
                message = "stopped by callback"
                break
            if not math.isfinite(primal_h):
                message = "diverged (non-finite objective)"
                break
            if n_iter >= max_iter:
                message = "max_iter reached"
                break
            if new_blocks is not None and int(feats_h) > n_screened:
                skip_blocks = new_blocks
                skip = xp.take(skip_blocks, penx.gid) if penx.grouped else skip_blocks
                n_screened = int(feats_h)
                masked = True
                st.w = xp.where(skip, 0.0, st.w)
                st.yw = xp.where(skip, 0.0, st.yw)
                st.Xw = design.matvec(st.w)
                st.Xy = design.matvec(st.yw)
            for _ in range(int(check_every)):
                _step(design, penx, st, L, skip if masked else None)
            n_steps += int(check_every)
            n_iter += 1
    finally:
        monitor.close()
    res.x = st.w
    res.n_iter = n_iter
    res.n_epochs = n_steps
    res.n_screened = n_screened
    res.converged = converged
    res.message = message
    if not design.fit_intercept:
        res.intercept = 0.0
    res.history = {"objective": np.asarray(hist_obj), "stop_crit": np.asarray(hist_crit)}
    res.timings = {"total": time.perf_counter() - t_start}
    if not converged and not monitor.stopped_by_callback and warn:
        warn_not_converged(name, res.stop_crit, tol, n_iter,
                           what="relative duality gap" if convex else
                           "relative fixed-point violation")
    return res


def solve_path_fista(design, pen, alphas, *, w0=None, b0=None, callback=None, warn=True,
                     **kw):
    """:func:`solve_fista` along ``alphas`` (in the given order) with warm starts.

    As :func:`~sparseopt.solvers.regression.solve_path`; ``coefs`` is an
    ``(n_features, n_alphas)`` array of the design's library in its input dtype.
    """
    t0 = time.perf_counter()
    xp = design.xp
    penx = pen if isinstance(pen, PenaltyXP) else PenaltyXP(design.nx, pen, design.p)
    alphas = np.asarray(alphas, dtype=np.float64)
    cols, results, not_conv = [], [], []
    w, b = w0, b0
    stopped = False
    for k, a in enumerate(alphas):
        r = solve_fista(design, penx.with_alpha(a), alpha_user=a, w0=w, b0=b, warn=False,
                        **kw)
        results.append(r)
        cols.append(r.x)
        if not r.converged:
            not_conv.append(k)
        w, b = r.x, r.intercept
        if callback is not None and callback(r):
            stopped = True
            break
    done = len(results)
    coefs = xp.astype(xp.stack(cols, axis=1), design.kdtype)
    crits = np.array([r.stop_crit for r in results])
    n_iters = np.array([r.n_iter for r in results], dtype=np.int64)
    out = PathResult(
        x=coefs, n_iter=int(n_iters.sum()), converged=not not_conv and not stopped,
        stop_crit=float(np.nanmax(crits)) if done else np.inf, tol=kw.get("tol", 1e-4),
        message="stopped by callback" if stopped else
        ("converged" if not not_conv else f"{len(not_conv)} alphas not converged"),
        alphas=alphas[:done], coefs=coefs,
        intercepts=np.array([r.intercept for r in results]),
        dual_gaps=np.array([r.dual_gap for r in results]), stop_crits=crits,
        n_iters=n_iters, results=results, timings={"total": time.perf_counter() - t0})
    if not_conv and warn:
        warn_not_converged("path", float(np.nanmax(crits[not_conv])), kw.get("tol", 1e-4),
                           int(n_iters[not_conv].max()),
                           what=f"stopping criterion at {len(not_conv)} alpha(s)")
    return out
