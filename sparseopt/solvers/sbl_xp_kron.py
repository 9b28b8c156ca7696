"""Backend-generic (device) Kronecker-structured SBL (He & Joseph, IEEE TSP 2024).

:func:`sparseopt.solvers.sbl_kron.kronecker_sbl` on ``nx.xp`` arrays: the
posterior is made of small eigendecompositions (``xp.linalg.eigh`` of the
``M_i × M_i`` factors ``A_i Γ_i A_iᵀ``) and mode products (batched
``xp.matmul``), so it ports directly; the SVD M-step uses ``xp.linalg.eigh``
of ``R Rᵀ`` as on the CPU, the AM M-step masks instead of compressing
(``mean`` over the columns where the other factors are positive).  One
transfer per EM iteration (log-evidence, stopping criterion, noise variance);
the AM inner loop checks its own convergence once per inner sweep.
"""

import time
from functools import reduce

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.solvers._xp_linalg import (
    as_float_array,
    fetch,
    host_float_dtype,
    scatter,
)
from sparseopt.solvers.sbl import _LOG2PI

__all__ = ["kron_posterior_xp", "kronecker_sbl_xp"]


def _mode_dot(xp, T, M, mode):
    """``T ×_mode M`` as one batched matmul on the ``(before, N_mode, after)`` view."""
    shape = tuple(T.shape)
    a = int(np.prod(shape[:mode], dtype=np.int64))
    out = xp.matmul(M, xp.reshape(T, (a, shape[mode], -1)))
    return xp.reshape(out, (*shape[:mode], M.shape[0], *shape[mode + 1:]))


def kron_apply_xp(xp, factors, x, transpose=False):
    """``(A₁ ⊗ … ⊗ A_I) x`` (or ``ᵀ``) by mode products."""
    shape = tuple(A.shape[1] if not transpose else A.shape[0] for A in factors)
    T = xp.reshape(x, shape)
    for i, A in enumerate(factors):
        T = _mode_dot(xp, T, A.T if transpose else A, i)
    return xp.reshape(T, (-1,))


def _kron_vec(xp, vectors):
    return reduce(lambda a, b: xp.reshape(a, (*a.shape, 1)) * b, vectors)


def _kron_mat(xp, factors):
    """The explicit Kronecker product (``method="classic"`` only)."""
    def kron2(A, B):
        (ma, na), (mb, nb) = A.shape, B.shape
        return xp.reshape(A[:, None, :, None] * B[None, :, None, :], (ma * mb, na * nb))

    return reduce(kron2, factors)


def kron_posterior_xp(xp, factors, y, gammas, noise_variance):
    """Device twin of :func:`sparseopt.solvers.sbl_kron.kron_posterior`.

    Returns device ``(mu, sigma_diag, loglik, trace_inv)`` (the last two 0-d).
    """
    s2 = noise_variance
    Us, Ps = [], []
    for A, g in zip(factors, gammas, strict=True):
        B = (A * g[None, :]) @ A.T
        p_i, U = xp.linalg.eigh(B)
        Us.append(U)
        Ps.append(xp.maximum(p_i, 0.0 * p_i))
    D = _kron_vec(xp, Ps) + s2
    Y = xp.reshape(y, tuple(A.shape[0] for A in factors))
    Z = Y
    for i, U in enumerate(Us):
        Z = _mode_dot(xp, Z, U.T, i)
    Zs = Z / D
    quad = xp.sum(Z * Zs)
    V = Zs
    for i, U in enumerate(Us):
        V = _mode_dot(xp, V, U, i)
    Mu = V
    for i, (A, g) in enumerate(zip(factors, gammas, strict=True)):
        Mu = _mode_dot(xp, Mu, A.T * g[:, None], i)
    T = 1.0 / D
    for i, (A, U) in enumerate(zip(factors, Us, strict=True)):
        W = U.T @ A
        T = _mode_dot(xp, T, (W * W).T, i)
    gam = _kron_vec(xp, gammas)
    sigma_diag = xp.maximum(gam - gam * gam * T, 0.0 * gam)
    M = y.shape[0]
    loglik = -0.5 * (M * _LOG2PI + xp.sum(xp.log(D)) + quad)
    return (xp.reshape(Mu, (-1,)), xp.reshape(sigma_diag, (-1,)), loglik,
            xp.sum(1.0 / D))


def _rank1_factors(xp, Lam):
    """Successive rank-one SVDs (by ``eigh`` of ``R Rᵀ``): the SVD-KroSBL M-step."""
    shape = tuple(Lam.shape)
    R = Lam
    out = []
    for i in range(len(shape) - 1):
        Rm = xp.reshape(R, (shape[i], -1))
        evecs = xp.linalg.eigh(Rm @ Rm.T)[1]
        u = xp.abs(evecs[:, -1])
        out.append(u)
        R = xp.reshape(u @ Rm, shape[i + 1:])
    out.append(xp.abs(xp.reshape(R, (-1,))))
    return out


def _am_update(nx, Lam, gammas, blocks, inner_tol, inner_max_iter):
    """AM-KroSBL M-step (optionally block-wise): masked means, one fetch per sweep."""
    xp = nx.xp
    I = len(gammas)
    gammas = list(gammas)
    old = _kron_vec(xp, gammas)
    for _ in range(inner_max_iter):
        for i in range(I):
            others = [gammas[j] for j in range(I) if j != i]
            other = (xp.reshape(_kron_vec(xp, others), (-1,)) if others
                     else xp.ones(1, dtype=xp.float64))
            mask = other > 0
            Li = xp.reshape(xp.moveaxis(Lam, i, 0), (Lam.shape[i], -1))
            cnt = xp.sum(xp.astype(mask, xp.float64))
            ratio = xp.where(mask[None, :], Li / xp.where(mask, other, 1.0 + 0.0 * other)
                             [None, :], 0.0 * Li)
            gi = xp.where(cnt > 0, xp.sum(ratio, axis=1) / xp.maximum(cnt, 1.0 + 0 * cnt),
                          0.0 * ratio[:, 0])
            if blocks[i] is not None:
                E, counts = blocks[i]
                gi = E @ ((E.T @ gi) / counts)
            gammas[i] = xp.where(gammas[i] == 0, 0.0 * gi, gi)
        new = _kron_vec(xp, gammas)
        d = new - old
        dn, ref = fetch(nx, xp.sqrt(xp.sum(d * d)), xp.sqrt(xp.sum(old * old)))
        old = new
        if ref == 0 or dn <= inner_tol * ref:
            break
    norms = [xp.sqrt(g @ g) for g in gammas[:-1]]
    norms = fetch(nx, *norms) if norms else ()
    scale = 1.0
    for i, nrm in enumerate(norms):
        if nrm > 0:
            gammas[i] = gammas[i] / nrm
            scale *= nrm
    gammas[-1] = gammas[-1] * scale
    return gammas


def _check_factors_xp(nx, y, factors):
    if getattr(factors, "ndim", None) == 2:
        factors = [factors]
    try:
        factors = list(factors)
    except TypeError as exc:
        raise TypeError("factors must be a sequence of 2-D arrays") from exc
    if not factors:
        raise ValueError("factors must hold at least one matrix")
    xp = nx.xp
    out = [xp.astype(as_float_array(nx, A, f"factors[{i}]", 2), xp.float64)
           for i, A in enumerate(factors)]
    M = int(np.prod([A.shape[0] for A in out]))
    if M != y.shape[0]:
        shapes = " ⊗ ".join(f"{A.shape[0]}×{A.shape[1]}" for A in out)
        raise ValueError(
            f"factors do not match y: the Kronecker product {shapes} has {M} rows, "
            f"y has {y.shape[0]} entries")
    for i, A in enumerate(out):
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"factors[{i}] has an empty dimension: shape {tuple(A.shape)}")
    return out, [f.dtype for f in factors]


def kronecker_sbl_xp(nx, y, factors, method, noise_variance, block_sizes, tol, max_iter,
                     prune, inner_tol, inner_max_iter, verbose, callback):
    """Kronecker SBL on device arrays (see :func:`sparseopt.solvers.sbl_kron.kronecker_sbl`)."""
    from sparseopt.solvers.sbl_kron import (
        _DEFAULT_PRUNE,
        _METHODS,
        KroneckerSBLResult,
        _check_blocks,
    )

    xp = nx.xp
    t_start = time.perf_counter()
    y_in = as_float_array(nx, y, "y", 1)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    y = xp.astype(y_in, xp.float64)
    factors, dts = _check_factors_xp(nx, y, factors)
    out_dtype = host_float_dtype(xp, y_in.dtype, *dts)
    if noise_variance is not None:
        noise_variance = check_scalar(noise_variance, "noise_variance", low=0.0,
                                      include_low=False)
    tol = check_scalar(tol, "tol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    inner_tol = check_scalar(inner_tol, "inner_tol", low=0.0)
    inner_max_iter = check_positive_int(inner_max_iter, "inner_max_iter")
    prune = _DEFAULT_PRUNE[method] if prune is None else check_scalar(
        prune, "prune", low=0.0, high=1.0, include_high=False)
    if method == "am_block":
        shapes = [np.empty((0, A.shape[1])) for A in factors]  # _check_blocks reads N_i
        labels = _check_blocks(block_sizes, shapes)
        blocks = []
        for lab in labels:
            lab = np.asarray(lab, dtype=np.int64)
            nb = int(lab.max()) + 1
            blocks.append((_block_matrix(xp, lab, nb),
                           xp.asarray(np.bincount(lab, minlength=nb).astype(float))))
    else:
        if block_sizes is not None:
            raise ValueError("block_sizes is only used by method='am_block'")
        blocks = [None] * len(factors)
    if method == "classic":
        res = _classic_xp(nx, y, factors, noise_variance, tol, max_iter, prune, verbose,
                          callback, t_start, KroneckerSBLResult)
    else:
        res = _kron_em_xp(nx, y, factors, method, noise_variance, blocks, tol, max_iter,
                          prune, inner_tol, inner_max_iter, verbose, callback, t_start,
                          KroneckerSBLResult)
    f = xp.float32 if out_dtype == np.float32 else xp.float64
    res.x = xp.astype(res.x, f)
    res.sigma_diag = xp.astype(res.sigma_diag, f)
    return res


def _block_matrix(xp, labels, n_blocks):
    """One-hot ``(N, n_blocks)`` membership matrix of host labels."""
    return xp.asarray((labels[:, None] == np.arange(n_blocks)[None, :]).astype(np.float64))


def _kron_em_xp(nx, y, factors, method, noise_variance, blocks, tol, max_iter, prune,
                inner_tol, inner_max_iter, verbose, callback, t_start, result_cls):
    xp = nx.xp
    M = y.shape[0]
    Ns = tuple(A.shape[1] for A in factors)
    learn = noise_variance is None
    yy = fetch(nx, y @ y)[0]
    var_y = yy / M if yy > 0 else 1e-10
    s2_host = noise_variance if not learn else 0.01 * var_y
    s2 = xp.full((), s2_host, dtype=xp.float64)
    floor = xp.full((), 1e-6 * var_y, dtype=xp.float64)
    fill = 1.0 if yy != 0.0 else 0.0
    gammas = [xp.full(N, fill, dtype=xp.float64) for N in Ns]
    history = {"log_marginal_likelihood": [], "stop_crit": [], "noise_variance": []}
    result = result_cls(tol=tol, method=method)
    monitor = IterationMonitor("kronecker_sbl", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    converged = False
    message = f"max_iter={max_iter} reached"
    stop_crit = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        mu, sdiag, ll, tr_inv = kron_posterior_xp(xp, factors, y, gammas, s2)
        Lam = xp.reshape(mu * mu + sdiag, Ns)
        old = _kron_vec(xp, gammas)
        if method == "svd":
            new = _rank1_factors(xp, Lam)
            new = [xp.where(g_old > 0, g, 0.0 * g) for g, g_old in zip(new, gammas,
                                                                       strict=True)]
        else:
            new = _am_update(nx, Lam, gammas, blocks, inner_tol, inner_max_iter)
        new = [xp.where(g < prune * xp.max(g), 0.0 * g, g) for g in new]
        if learn:
            r = y - kron_apply_xp(xp, factors, mu)
            s2_new = xp.maximum((r @ r + s2 * (M - s2 * tr_inv)) / M, floor)
        else:
            s2_new = s2
        full = _kron_vec(xp, new)
        d = full - old
        ref = xp.sqrt(xp.sum(old * old))
        crit = xp.where(ref > 0, xp.sqrt(xp.sum(d * d)) / xp.where(ref > 0, ref, 1.0 + ref),
                        0.0 * ref)
        ll_h, stop_crit, s2_next = fetch(nx, ll, crit, s2_new)
        history["log_marginal_likelihood"].append(ll_h)
        history["noise_variance"].append(s2_host)
        history["stop_crit"].append(stop_crit)
        gammas, s2, s2_host = new, s2_new, s2_next
        if stop_crit < tol:
            converged = True
            message = "converged: relative change of gamma below tol"
            break
        if monitor.verbose or callback is not None:
            if callback is not None:
                _fill(nx, result, factors, y, gammas, s2, s2_host, history, it,
                      stop_crit, False, message)
            if monitor.step(it, result, log_marginal_likelihood=ll_h,
                            stop_crit=stop_crit):
                message = "stopped by callback"
                break
    monitor.close()
    _fill(nx, result, factors, y, gammas, s2, s2_host, history, it, stop_crit, converged,
          message)
    result.timings["total"] = time.perf_counter() - t_start
    if not converged and not monitor.stopped_by_callback:
        warn_not_converged("kronecker_sbl", stop_crit, tol, it,
                           what="relative change of gamma")
    return result


def _fill(nx, result, factors, y, gammas, s2, s2_host, history, it, stop_crit, converged,
          message):
    xp = nx.xp
    mu, sdiag, ll, _ = kron_posterior_xp(xp, factors, y, gammas, s2)
    gam = xp.reshape(_kron_vec(xp, gammas), (-1,))
    pos = gam > 0
    result.x = mu
    result.sigma_diag = sdiag
    result.gammas = list(gammas)
    result.alpha = xp.where(pos, 1.0 / xp.where(pos, gam, 1.0 + 0.0 * gam),
                            xp.full(gam.shape, np.inf, dtype=xp.float64))
    result.active = xp.nonzero(pos)[0]
    result.noise_variance = float(s2_host)
    result.log_marginal_likelihood = fetch(nx, ll)[0]
    result.n_iter = it
    result.converged = converged
    result.stop_crit = float(stop_crit)
    result.message = message
    result.history = {k: np.asarray(v) for k, v in history.items()}


def _classic_xp(nx, y, factors, noise_variance, tol, max_iter, prune, verbose, callback,
                t_start, result_cls):
    """Classic EM-SBL on the explicit Kronecker product, on the device."""
    from sparseopt.solvers.sbl_xp import sbl_em_xp

    xp = nx.xp
    A = _kron_mat(xp, factors)
    res = sbl_em_xp(nx, A, y, noise_variance, False, None, None, tol, max_iter, prune,
                    False, verbose, callback)
    out = result_cls(tol=tol, method="classic")
    for name in ("x", "n_iter", "converged", "stop_crit", "message", "history",
                 "alpha", "active", "noise_variance", "log_marginal_likelihood"):
        setattr(out, name, getattr(res, name))
    out.sigma_diag = scatter(xp, res.active, xp.linalg.diagonal(res.sigma), A.shape[1])
    out.timings["total"] = time.perf_counter() - t_start
    return out
