r"""Entropic optimal transport: stabilised Sinkhorn and Sinkhorn-Newton-Sparse.

Both solvers work in POT's units.  Given histograms ``a`` (n,) and ``b`` (m,)
of equal mass, a cost ``M`` (n, m) and ``reg > 0``, they solve

.. math::

    \min_{P \ge 0,\; P 1 = a,\; P^\top 1 = b} \langle P, M\rangle
        + \mathrm{reg} \sum_{ij} P_{ij} \log P_{ij}

through its concave dual

.. math::

    \max_{f, g}\; \langle a, f\rangle + \langle b, g\rangle
        - \mathrm{reg} \sum_{ij} e^{(f_i + g_j - M_{ij})/\mathrm{reg}},
    \qquad P_{ij} = e^{(f_i + g_j - M_{ij})/\mathrm{reg}},

and stop on the L1 marginal error :math:`\|P1 - a\|_1 + \|P^\top 1 - b\|_1`.
In the notation of Tang et al. (2024), ``reg = 1/eta``.

Every function here also runs on CuPy arrays (``a``, ``b``, ``M`` on one
device): the same iterations written against the array namespace, with the
plan, the potentials and sparse plans (``sparseopt.CSR`` of CuPy arrays) on the
device and one small transfer per iteration for the stopping test (see
``docs/gpu.md``).

Functions
---------
sinkhorn
    Stabilised scaling Sinkhorn (or pure log domain).
sinkhorn_newton_sparse
    SNS: Sinkhorn warm-up, then sparse Newton steps.
cost_matrix, grid_cost, grid_coordinates
    Ground costs for point clouds and grids.
wasserstein_grid
    Entropic W1/W2 between densities discretised on a grid.
"""

import numpy as np

from sparseopt._validation import check_array, check_positive_int, check_scalar
from sparseopt.solvers._ot_costs import cost_matrix, grid_coordinates, grid_cost, grid_cost_xp
from sparseopt.solvers._ot_driver import run_ot
from sparseopt.solvers._ot_result import OTResult
from sparseopt.solvers._xp_checks import check_array_xp, device_backend, float_dtype_xp
from sparseopt.solvers.sinkhorn import sinkhorn_core
from sparseopt.solvers.sns import sns_core

__all__ = [
    "OTResult",
    "cost_matrix",
    "grid_coordinates",
    "grid_cost",
    "sinkhorn",
    "sinkhorn_newton_sparse",
    "wasserstein_grid",
]

_COMMON_DOC = """
    a : array_like of shape (n,) or None
        Source histogram (non-negative); ``None`` or ``[]`` means uniform.
    b : array_like of shape (m,) or (m, k), or None
        Target histogram(s); with k columns, k problems sharing ``M`` are
        solved and the result holds stacked fields.
    M : array_like of shape (n, m)
        Cost matrix.  Its dtype (float32 or float64) is the working and output
        dtype.
    reg : float
        Entropic regularisation (``> 0``), in the units of ``M``.
"""


def sinkhorn(a, b, M, reg, *, method="stabilized", tol=None, max_iter=100_000,
             init=None, plan="dense", plan_drop=None, normalize=False, tau=None,
             verbose=0, callback=None, check_every=10, n_threads=None, warn=True):
    r"""Entropic optimal transport by (stabilised) Sinkhorn iterations.

    Each iteration is an exact block maximisation of the dual, first in ``g``
    then in ``f`` (the same iterates as POT's ``ot.sinkhorn``):

    .. math::

        g_j \leftarrow \mathrm{reg}\,\big(\log b_j - \log \textstyle\sum_i
            e^{(f_i - M_{ij})/\mathrm{reg}}\big), \qquad
        f_i \leftarrow \mathrm{reg}\,\big(\log a_i - \log \textstyle\sum_j
            e^{(g_j - M_{ij})/\mathrm{reg}}\big).

    ``method="stabilized"`` performs them as matrix scalings
    ``P = diag(u) K diag(v)`` with an absorbed kernel
    ``K = exp((f + g - M)/reg)``: one fused pass over ``K`` per iteration, and
    ``u, v`` are absorbed into ``f, g`` whenever ``|log u|`` or ``|log v|``
    exceed ``tau`` (Schmitzer 2019), with an exact log-domain update when a
    scaling would overflow or divide by zero.  ``method="log"`` does every
    update with log-sum-exp (slower, no kernel matrix stored).

    The first iteration is always done in the log domain, so costs that are
    large relative to ``reg`` (``M/reg`` up to ~1e300) cause no underflow.
    Rows (columns) with zero weight are removed before solving.

    Parameters
    ----------
    a, b, M, reg
        See below.%s
    method : {"stabilized", "log"}
    tol : float, optional
        Target L1 marginal error ``||P1 - a||_1 + ||Pᵀ1 - b||_1`` (default
        1e-9, or 1e-5 when the working dtype is float32).  It is
        computed at every iteration at no extra cost (the fused sweep yields
        it), so the run stops at the first iteration that meets it.
    max_iter : int, default 100000
        Maximum number of iterations (a ``ConvergenceWarning`` is emitted when
        it is reached and ``warn`` is true).
    init : (f, g), optional
        Warm start potentials in the units of ``M``.  As in POT, the first
        update is the one of ``g``, so only ``f`` matters.
    plan : {"dense", "sparse", None}
        Return the plan as a dense array, as a CSR matrix without its smallest
        entries of total mass at most ``plan_drop``, or not at all.
    plan_drop : float, optional
        Mass that ``plan="sparse"`` may drop (default ``tol / 10``).
    normalize : bool, default False
        Rescale ``a`` and ``b`` to unit mass.  Otherwise their masses must
        agree to 1e-6 relative (``b`` is then rescaled to ``a``'s mass exactly).
    tau : float, optional
        Absorption bound on ``|log u|`` and ``|log v|`` (50 for float64, 20
        for float32).
    verbose : int
        Log the marginal error every ``check_every`` iterations (``logging``).
    callback : callable, optional
        ``callback(result)`` every ``check_every`` iterations with a partial
        :class:`OTResult` (potentials and error history, no plan); returning
        True stops the run.
    check_every : int, default 10
        Period of logging and callback calls.
    n_threads : int, optional
        Threads for Numba kernels (the current kernels are serial).
    warn : bool, default True
        Emit a ``ConvergenceWarning`` when ``tol`` was not reached.

    Returns
    -------
    result : OTResult
        ``plan``, ``cost`` (``<P, M>``), ``objective``, ``f``, ``g``,
        ``n_sinkhorn``, ``n_newton`` (0), ``marginal_error`` (history, the
        last value measured on the returned plan), ``converged``.

    References
    ----------
    M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal
    transport", NeurIPS 2013.  B. Schmitzer, "Stabilized sparse scaling
    algorithms for entropy regularized transport problems", SIAM J. Sci.
    Comput. 41(3), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt.ot import sinkhorn, cost_matrix
    >>> rng = np.random.default_rng(0)
    >>> M = cost_matrix(rng.random((50, 2)), rng.random((40, 2)))
    >>> res = sinkhorn(None, None, M, reg=1e-2)
    >>> res.converged, res.plan.shape
    (True, (50, 40))
    """
    if method not in ("stabilized", "log"):
        raise ValueError(f"method must be 'stabilized' or 'log', got {method!r}")
    if tau is not None:
        tau = check_scalar(tau, "tau", low=1.0, high=300.0)
    return run_ot(
        "sinkhorn", sinkhorn_core, a, b, M, reg, tol=tol, max_iter=max_iter,
        init=init, plan=plan, plan_drop=plan_drop, normalize=normalize,
        verbose=verbose, callback=callback, check_every=check_every,
        n_threads=n_threads, warn=warn, options={"method": method, "tau": tau},
    )


sinkhorn.__doc__ = sinkhorn.__doc__ % _COMMON_DOC


def sinkhorn_newton_sparse(a, b, M, reg, *, tol=None, max_iter=200, sinkhorn_iter=20,
                           switch_tol=None, sparsify="mass", delta=1e-3, density=2.0,
                           cg_tol=None, max_cg_iter=200, armijo=1e-4,
                           absorb_threshold=30.0, fallback_sweeps=10, shift=1.0,
                           init=None,
                           plan="dense", plan_drop=None, normalize=False, verbose=0,
                           callback=None, check_every=1, n_threads=None, warn=True):
    r"""Entropic optimal transport by Sinkhorn-Newton-Sparse (Tang et al., 2024).

    Stage 1 runs ``sinkhorn_iter`` stabilised Sinkhorn iterations (fewer if
    the marginal error drops below ``switch_tol``).  Stage 2 takes Newton
    steps on the dual :math:`D(f, g)`, whose Hessian is

    .. math::

        \nabla^2 D = -\frac{1}{\mathrm{reg}}
        \begin{pmatrix} \mathrm{diag}(P1) & P \\ P^\top & \mathrm{diag}(P^\top 1)
        \end{pmatrix}.

    The coupling block ``P`` is sparsified to ``S`` (the diagonal is kept
    exact):

    * ``sparsify="mass"`` (default): drop the smallest entries whose total is
      at most ``delta`` times the mass of P (the rule of Tang & Qiu's SSNS).
      It adapts to the plan: geometric costs need tens to hundreds of entries
      per row.
    * ``sparsify="topk"``: the paper's rule, keep the ``density * n`` largest
      entries (about ``density`` per row).  It fits near-assignment problems
      (random costs) and stalls on geometric costs.

    The Newton system is solved for ``Δg`` by Jacobi-preconditioned CG on the
    Schur complement ``(diag(c) - Sᵀ diag(1/r) S) Δg = reg (∇_g D - Sᵀ diag(1/r) ∇_f D)``
    (the eliminated block is diagonal; the full Hessian is singular along
    ``(1, -1)``), then ``Δf = (reg ∇_f D - S Δg) / r``; the step is chosen by
    Armijo backtracking on ``D``.  If no step length passes, ``fallback_sweeps``
    Sinkhorn iterations are taken instead.  Trial points are evaluated on
    scalings of an absorbed base plan (one pass each, no exponential); the base
    plan is re-exponentiated when the scalings exceed ``exp(absorb_threshold)``.

    Parameters
    ----------
    a, b, M, reg
        See below.%s
    tol : float, optional
        Target L1 marginal error (default 1e-9; 1e-5 in float32).
    max_iter : int, default 200
        Maximum number of Newton steps.
    sinkhorn_iter : int, default 20
        Stage-1 Sinkhorn iterations (N1 in the paper).
    switch_tol : float, optional
        Leave stage 1 as soon as the marginal error is below this value.
    sparsify : {"mass", "topk"}
    delta : float, default 1e-3
        Fraction of the mass dropped by ``sparsify="mass"`` (0 keeps every
        entry: dense Newton).
    density : float, default 2
        Entries kept per row (on average) by ``sparsify="topk"``.
    cg_tol : float, optional
        Relative residual at which CG stops (default 1e-2: the Newton step count
        is limited by the sparsification, not by this inexactness).
    max_cg_iter : int, default 200
    armijo : float, default 1e-4
        Sufficient-increase constant of the line search.
    absorb_threshold : float, default 30
    fallback_sweeps : int, default 10
        Sinkhorn iterations taken when no step length passes the line search
        (doubled at each consecutive failure, reset by a successful step).
    shift : float, default 1
        Initial Levenberg-Marquardt factor ``mu``: the Hessian's diagonal is
        shifted by ``mu * err / max(n, m)`` (err the L1 marginal error), which
        damps steps far from the solution and vanishes near it (SSNS);
        ``mu`` is divided by 4 after a full step and multiplied by 4 after a
        shortened one.  0 gives plain (sparsified) Newton.
    init, plan, plan_drop, normalize, verbose, callback, check_every, n_threads, warn
        As in :func:`sinkhorn` (``check_every`` counts records: stage-1
        iterations and Newton steps).

    Returns
    -------
    result : OTResult
        As :func:`sinkhorn`; ``n_newton`` counts Newton steps, ``n_cg`` their
        CG iterations, and ``history`` holds ``nnz_per_row``, ``step`` (the
        accepted step lengths, 0 for a fallback), ``cg_iter``, ``n_reabsorb``.

    References
    ----------
    X. Tang, M. Shavlovsky, H. Rahmanian, E. Tardini, K. K. Thekumparampil,
    T. Xiao, L. Ying, "Accelerating Sinkhorn algorithm with sparse Newton
    iterations", ICLR 2024.  Z. Tang, Y. Qiu, "Safe and sparse Newton method for
    entropic-regularized optimal transport", NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt.ot import sinkhorn_newton_sparse, cost_matrix
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 2))
    >>> M = cost_matrix(X, rng.random((200, 2)), scale="max")
    >>> res = sinkhorn_newton_sparse(None, None, M, reg=1e-3, tol=1e-8)
    >>> bool(res.converged), res.n_sinkhorn
    (True, 20)
    """
    if sparsify not in ("mass", "topk"):
        raise ValueError(f"sparsify must be 'mass' or 'topk', got {sparsify!r}")
    options = {
        "sinkhorn_iter": check_positive_int(sinkhorn_iter, "sinkhorn_iter"),
        "switch_tol": None if switch_tol is None else check_scalar(
            switch_tol, "switch_tol", low=0.0),
        "sparsify": sparsify,
        "delta": check_scalar(delta, "delta", low=0.0, high=1.0, include_high=False),
        "density": check_scalar(density, "density", low=0.0, include_low=False),
        "cg_tol": None if cg_tol is None else check_scalar(
            cg_tol, "cg_tol", low=0.0, high=1.0, include_low=False),
        "max_cg_iter": check_positive_int(max_cg_iter, "max_cg_iter"),
        "armijo": check_scalar(armijo, "armijo", low=0.0, high=0.5, include_high=False),
        "absorb_threshold": check_scalar(absorb_threshold, "absorb_threshold",
                                         low=1.0, high=300.0),
        "fallback_sweeps": check_positive_int(fallback_sweeps, "fallback_sweeps"),
        "shift": check_scalar(shift, "shift", low=0.0),
    }
    return run_ot(
        "sinkhorn_newton_sparse", sns_core, a, b, M, reg, tol=tol, max_iter=max_iter,
        init=init, plan=plan, plan_drop=plan_drop, normalize=normalize,
        verbose=verbose, callback=callback, check_every=check_every,
        n_threads=n_threads, warn=warn, options=options,
    )


sinkhorn_newton_sparse.__doc__ = sinkhorn_newton_sparse.__doc__ % _COMMON_DOC


def wasserstein_grid(a, b, reg, *, p=2, metric="euclidean", spacing=1.0,
                     solver="sns", return_result=False, **kwargs):
    r"""Entropic :math:`W_p` between two densities on the same regular grid.

    The arrays (e.g. images) are normalised to unit mass, the ground cost is
    :func:`grid_cost` ``(a.shape, p=p)`` and the entropic plan P gives

    .. math:: W_{p,\mathrm{reg}}(a, b) = \langle P, M\rangle^{1/p}.

    Parameters
    ----------
    a, b : array_like of the same shape
        Non-negative densities on the grid (any number of dimensions).
    reg : float
        Regularisation in the units of the cost (grid spacing to the power p).
    p : {1, 2} or float
        Order of the Wasserstein distance.
    metric : {"euclidean", "cityblock"}
        Distance between cell centres.
    spacing : float or sequence of float
    solver : {"sns", "sinkhorn"}
    return_result : bool
        Also return the :class:`OTResult`.
    **kwargs
        Passed to the solver (``tol``, ``max_iter``, ...).

    Returns
    -------
    distance : float
    result : OTResult, only if ``return_result``.
    """
    nx = device_backend(a=a, b=b)
    if nx is not None:  # device arrays: the cost is built on the device
        a = check_array_xp(nx, a, "a")
        b = check_array_xp(nx, b, "b")
    else:
        a = check_array(a, "a", dtype="float")
        b = check_array(b, "b", dtype="float")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if solver not in ("sns", "sinkhorn"):
        raise ValueError(f"solver must be 'sns' or 'sinkhorn', got {solver!r}")
    fn = sinkhorn_newton_sparse if solver == "sns" else sinkhorn
    if nx is not None:
        xp = nx.xp
        M = grid_cost_xp(nx, tuple(a.shape), p=p, metric=metric, spacing=spacing,
                         dtype=float_dtype_xp(xp, a.dtype, b.dtype))
        a, b = xp.reshape(a, (-1,)), xp.reshape(b, (-1,))
    else:
        M = grid_cost(a.shape, p=p, metric=metric, spacing=spacing).astype(
            np.result_type(a.dtype, b.dtype), copy=False)
        a, b = a.ravel(), b.ravel()
    res = fn(a, b, M, reg, normalize=True, **kwargs)
    dist = float(max(res.cost, 0.0) ** (1.0 / p))
    return (dist, res) if return_result else dist
