"""Fused coordinate-descent kernels for sparse generalized linear models.

One inner solver, :func:`cd_inner`, runs cyclic (block) coordinate descent
epochs over a working set with Anderson extrapolation, for

* the datafits ``DF_QUAD`` (least squares, implicit centring for the
  intercept) and ``DF_LOGISTIC`` (binary logistic loss), and
* the penalties ``PEN_L1`` (L1 + ridge, i.e. the elastic net), ``PEN_MCP``,
  ``PEN_SCAD``, ``PEN_L0`` (L0 + ridge), separable or, with ``grouped=True``,
  the group Lasso (``PEN_L1`` on Euclidean norms of groups),

with optional non-negativity.  The design matrix is either dense
(Fortran-ordered ``X``) or CSC ``(indptr, indices, data)``; ``is_sparse``
picks the branch and the unused arguments are empty arrays, so a single
compiled specialisation per (float dtype, index dtype) serves every model.

Everything crosses the ``njit`` boundary as plain arrays and scalars (no
jitclass), so the on-disk cache works.  All helpers live in this module:
numba's cache invalidation only tracks the defining file.

Conventions (``n_scale = n`` for the quadratic datafit)::

    quadratic:  F(w, b) = ||y - X w - b v||^2 / (2 n),  st = y - X w,
                b = v^T st / n (the optimal intercept, kept in sync),
                grad_j = -x_j^T st / n + b mu_j,  mu_j = x_j^T v / n
    logistic:   F(w, b) = sum_i s_i log(1 + exp(-y_i (x_i w + b))),  st = X w

References: Friedman, Hastie & Tibshirani (2010), "Regularization paths for
GLMs via coordinate descent"; Bertrand & Massias (2021), "Anderson
acceleration of coordinate descent"; Breheny & Huang (2011) for MCP/SCAD
coordinate updates.
"""

import math

import numpy as np
from numba import njit

DF_QUAD = 0
DF_LOGISTIC = 1

PEN_L1 = 0
PEN_MCP = 1
PEN_SCAD = 2
PEN_L0 = 3


# ----------------------------------------------------------------------------
# column primitives (dense Fortran or CSC)
# ----------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _col_dot(is_sparse, X, indptr, indices, data, j, v):
    acc = 0.0
    if is_sparse:
        for k in range(indptr[j], indptr[j + 1]):
            acc += data[k] * v[indices[k]]
    else:
        for i in range(X.shape[0]):
            acc += X[i, j] * v[i]
    return acc


@njit(cache=True, nogil=True, inline="always")
def _col_axpy(is_sparse, X, indptr, indices, data, j, a, v):
    if is_sparse:
        for k in range(indptr[j], indptr[j + 1]):
            v[indices[k]] += a * data[k]
    else:
        for i in range(X.shape[0]):
            v[i] += a * X[i, j]


@njit(cache=True, nogil=True, inline="always")
def _logistic_deriv(yi, zi):
    """d/dz log(1 + exp(-y z)) = -y / (1 + exp(y z))."""
    t = yi * zi
    if t > 0:
        e = math.exp(-t)
        return -yi * e / (1.0 + e)
    return -yi / (1.0 + math.exp(t))


@njit(cache=True, nogil=True)
def _log1pexp(t):
    if t > 0:
        return t + math.log1p(math.exp(-t))
    return math.log1p(math.exp(t))


@njit(cache=True, nogil=True, inline="always")
def _logistic_col_grad(is_sparse, X, indptr, indices, data, j, y, s, z, b):
    acc = 0.0
    if is_sparse:
        for k in range(indptr[j], indptr[j + 1]):
            i = indices[k]
            acc += data[k] * s[i] * _logistic_deriv(y[i], z[i] + b)
    else:
        for i in range(X.shape[0]):
            acc += X[i, j] * s[i] * _logistic_deriv(y[i], z[i] + b)
    return acc


@njit(cache=True, nogil=True, inline="always")
def _coord_grad(is_sparse, X, indptr, indices, data, df_kind, y, s, n_scale, st,
                b, mu, j):
    if df_kind == DF_QUAD:
        return -_col_dot(is_sparse, X, indptr, indices, data, j, st) / n_scale \
            + b * mu[j]
    return _logistic_col_grad(is_sparse, X, indptr, indices, data, j, y, s, st, b)


@njit(cache=True, nogil=True, inline="always")
def _coord_apply(is_sparse, X, indptr, indices, data, df_kind, st, b, mu, j, d):
    """Move coordinate ``j`` by ``d``: update the state, return the new ``b``."""
    if df_kind == DF_QUAD:
        _col_axpy(is_sparse, X, indptr, indices, data, j, -d, st)
        return b - d * mu[j]
    _col_axpy(is_sparse, X, indptr, indices, data, j, d, st)
    return b


@njit(cache=True, nogil=True)
def datafit_value(df_kind, y, s, n_scale, st, b):
    """Datafit value from the state (see the module docstring)."""
    if df_kind == DF_QUAD:
        acc = 0.0
        for i in range(st.shape[0]):
            acc += st[i] * st[i]
        return 0.5 * (acc / n_scale - b * b)
    acc = 0.0
    for i in range(st.shape[0]):
        acc += s[i] * _log1pexp(-y[i] * (st[i] + b))
    return acc


# ----------------------------------------------------------------------------
# scalar penalties and their proximal operators
# ----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def pen_value_1d(kind, x, alpha, l2, gamma):
    """Penalty of one coordinate."""
    a = abs(x)
    if kind == PEN_L1:
        return alpha * a + 0.5 * l2 * x * x
    if kind == PEN_MCP:
        if a <= gamma * alpha:
            return alpha * a - a * a / (2.0 * gamma)
        return 0.5 * gamma * alpha * alpha
    if kind == PEN_SCAD:
        if a <= alpha:
            return alpha * a
        if a <= gamma * alpha:
            return (2.0 * gamma * alpha * a - a * a - alpha * alpha) / (
                2.0 * (gamma - 1.0))
        return 0.5 * alpha * alpha * (gamma + 1.0)
    # PEN_L0
    if x != 0.0:
        return alpha + 0.5 * l2 * x * x
    return 0.0


@njit(cache=True, nogil=True)
def _obj1d(kind, x, a, L, alpha, l2, gamma):
    return 0.5 * L * (x - a) * (x - a) + pen_value_1d(kind, x, alpha, l2, gamma)


@njit(cache=True, nogil=True, inline="always")
def prox_1d(kind, u, L, alpha, l2, gamma, positive):
    """argmin_x  L/2 (x - u)^2 + pen(x)  (over x >= 0 when ``positive``).

    Exact for every kind, also when the scalar problem is nonconvex
    (MCP with ``gamma * L <= 1``, SCAD with ``(gamma - 1) L <= 1``): the
    minimiser is picked among the stationary points and region boundaries.
    """
    if positive and u < 0.0:
        u = 0.0
    a = abs(u)
    sgn = 1.0 if u >= 0.0 else -1.0
    if kind == PEN_L1:
        t = a - alpha / L
        if t <= 0.0:
            return 0.0
        return sgn * t / (1.0 + l2 / L)
    if kind == PEN_L0:
        if L * a * a * L > 2.0 * alpha * (L + l2):
            return sgn * L * a / (L + l2)
        return 0.0
    if kind == PEN_MCP:
        ga = gamma * alpha
        best = 0.0
        fbest = _obj1d(kind, 0.0, a, L, alpha, l2, gamma)
        x3 = a if a > ga else ga
        f = _obj1d(kind, x3, a, L, alpha, l2, gamma)
        if f < fbest:
            best, fbest = x3, f
        if gamma * L > 1.0:
            x1 = (L * a - alpha) / (L - 1.0 / gamma)
            x1 = min(max(x1, 0.0), ga)
            f = _obj1d(kind, x1, a, L, alpha, l2, gamma)
            if f < fbest:
                best, fbest = x1, f
        return sgn * best
    # PEN_SCAD
    ga = gamma * alpha
    best = 0.0
    fbest = _obj1d(kind, 0.0, a, L, alpha, l2, gamma)
    x1 = min(max(a - alpha / L, 0.0), alpha)
    f = _obj1d(kind, x1, a, L, alpha, l2, gamma)
    if f < fbest:
        best, fbest = x1, f
    den = L * (gamma - 1.0) - 1.0
    if den > 0.0:
        x2 = (L * a * (gamma - 1.0) - ga) / den
        x2 = min(max(x2, alpha), ga)
    else:
        x2 = ga
    f = _obj1d(kind, x2, a, L, alpha, l2, gamma)
    if f < fbest:
        best, fbest = x2, f
    x3 = a if a > ga else ga
    f = _obj1d(kind, x3, a, L, alpha, l2, gamma)
    if f < fbest:
        best, fbest = x3, f
    return sgn * best


@njit(cache=True, nogil=True)
def zero_threshold(kind, L, alpha, l2):
    """|gradient| above which 0 stops being a fixed point of the prox step."""
    if kind == PEN_L0:
        return math.sqrt(2.0 * alpha * (L + l2))
    return alpha


# ----------------------------------------------------------------------------
# full products and optimality scores (outer loop)
# ----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def xt_v(is_sparse, X, indptr, indices, data, v, skip, out):
    """``out[j] = x_j^T v`` for every ``j`` with ``skip[j] == False``."""
    for j in range(out.shape[0]):
        if skip[j]:
            continue
        out[j] = _col_dot(is_sparse, X, indptr, indices, data, j, v)


@njit(cache=True, nogil=True)
def x_w(is_sparse, X, indptr, indices, data, w, out):
    """``out += X w`` over the non-zero entries of ``w``."""
    for j in range(w.shape[0]):
        if w[j] != 0.0:
            _col_axpy(is_sparse, X, indptr, indices, data, j, w[j], out)


@njit(cache=True, nogil=True)
def kkt_scores(pen_kind, alpha, l2, gamma, positive, grouped, grp_ptr, grp_idx,
               grp_w, lips, w, grad, skip, out_kkt, out_score):
    """Fixed-point violation and working-set score of every block.

    ``out_kkt[k] = L_k || w_k - prox_k(w_k - grad_k / L_k) ||`` (zero at a
    stationary point).  ``out_score[k]`` is ``inf`` for blocks with a non-zero
    coefficient; for a zero block it is ``kkt_k / sqrt(L_k)`` when the block
    violates its optimality condition (for the L1 penalty ``(|grad_k| -
    alpha) / sqrt(L_k)``, the GS-q / gap-safe distance of celer) and otherwise
    the non-positive ``(|grad_k| - threshold_k) / sqrt(L_k)``: larger means
    closer to activation.
    """
    n_blocks = out_kkt.shape[0]
    for k in range(n_blocks):
        if skip[k]:
            out_kkt[k] = 0.0
            out_score[k] = -np.inf
            continue
        if not grouped:
            L = lips[k]
            if L <= 0.0:
                out_kkt[k] = 0.0
                out_score[k] = -np.inf
                continue
            p = prox_1d(pen_kind, w[k] - grad[k] / L, L, alpha, l2, gamma, positive)
            out_kkt[k] = L * abs(w[k] - p)
            if w[k] != 0.0:
                out_score[k] = np.inf
            elif out_kkt[k] > 0.0:
                out_score[k] = out_kkt[k] / math.sqrt(L)
            else:
                g = -grad[k] if positive else abs(grad[k])
                out_score[k] = min(
                    (g - zero_threshold(pen_kind, L, alpha, l2)) / math.sqrt(L), 0.0)
        else:
            L = lips[k]
            start, end = grp_ptr[k], grp_ptr[k + 1]
            if L <= 0.0:
                out_kkt[k] = 0.0
                out_score[k] = -np.inf
                continue
            nrm_u = 0.0
            nrm_g = 0.0
            active = False
            for t in range(start, end):
                j = grp_idx[t]
                u = w[j] - grad[j] / L
                if positive and u < 0.0:
                    u = 0.0
                nrm_u += u * u
                g = -grad[j]
                if positive and g < 0.0:
                    g = 0.0
                nrm_g += g * g
                if w[j] != 0.0:
                    active = True
            nrm_u = math.sqrt(nrm_u)
            scale = 0.0
            if nrm_u > 0.0:
                scale = max(0.0, 1.0 - alpha * grp_w[k] / (L * nrm_u))
            dist = 0.0
            for t in range(start, end):
                j = grp_idx[t]
                u = w[j] - grad[j] / L
                if positive and u < 0.0:
                    u = 0.0
                dd = w[j] - scale * u
                dist += dd * dd
            out_kkt[k] = L * math.sqrt(dist)
            if active:
                out_score[k] = np.inf
            elif out_kkt[k] > 0.0:
                out_score[k] = out_kkt[k] / math.sqrt(L)
            else:
                out_score[k] = min(
                    (math.sqrt(nrm_g) - alpha * grp_w[k]) / math.sqrt(L), 0.0)


# ----------------------------------------------------------------------------
# the inner solver
# ----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _solve_small(C, rhs):
    """Solve the small SPD-ish system ``C z = rhs`` by pivoted elimination.

    Returns ``(ok, z)``; ``ok`` is False when ``C`` is numerically singular.
    """
    K = C.shape[0]
    A = C.copy()
    z = rhs.copy()
    scale = 0.0
    for i in range(K):
        scale = max(scale, abs(A[i, i]))
    if scale == 0.0:
        return False, z
    for i in range(K):
        A[i, i] += 1e-10 * scale
    for c in range(K):
        piv = c
        for r in range(c + 1, K):
            if abs(A[r, c]) > abs(A[piv, c]):
                piv = r
        if abs(A[piv, c]) <= 1e-14 * scale:
            return False, z
        if piv != c:
            for t in range(K):
                A[c, t], A[piv, t] = A[piv, t], A[c, t]
            z[c], z[piv] = z[piv], z[c]
        for r in range(c + 1, K):
            f = A[r, c] / A[c, c]
            for t in range(c, K):
                A[r, t] -= f * A[c, t]
            z[r] -= f * z[c]
    for c in range(K - 1, -1, -1):
        acc = z[c]
        for t in range(c + 1, K):
            acc -= A[c, t] * z[t]
        z[c] = acc / A[c, c]
    return True, z


# Anderson extrapolation, shared by :func:`cd_inner` and :func:`cd_inner_lasso`
# (not inlined: they run once every ``K + 1`` epochs, and one compiled copy
# serves both kernels)
@njit(cache=True, nogil=True, inline="never")
def _anderson_point(Wb, positive, w_acc):
    """Anderson combination of the iterates stored in the rows of ``Wb``.

    With ``U = [Wb[1] - Wb[0], ..., Wb[K] - Wb[K-1]]`` (``Wb`` has ``K + 1``
    rows), solves ``(U^T U) z = 1``, normalises ``z`` to sum 1 and writes
    ``w_acc = sum_a z_a Wb[a + 1]`` (Bertrand & Massias 2021, Alg. 2).

    Returns ``(ok, z)``; ``ok`` is False when the system is singular, ``z``
    does not normalise, or ``positive`` and ``w_acc`` has a negative entry.
    """
    K = Wb.shape[0] - 1
    m = Wb.shape[1]
    C = np.zeros((K, K), np.float64)
    for a1 in range(K):
        for a2 in range(a1, K):
            acc = 0.0
            for q in range(m):
                acc += (Wb[a1 + 1, q] - Wb[a1, q]) * (Wb[a2 + 1, q] - Wb[a2, q])
            C[a1, a2] = acc
            C[a2, a1] = acc
    ok, z = _solve_small(C, np.ones(K, np.float64))
    if not ok:
        return False, z
    zs = z.sum()
    if zs == 0.0 or not np.isfinite(zs):
        return False, z
    z /= zs
    feasible = True
    for q in range(m):
        acc = 0.0
        for a1 in range(K):
            acc += z[a1] * Wb[a1 + 1, q]
        w_acc[q] = acc
        if positive and acc < 0.0:
            feasible = False
    return feasible, z


@njit(cache=True, nogil=True, inline="never")
def _anderson_state(is_sparse, X, indptr, indices, data, df_kind, st, b, mu,
                    feats, w, w_acc, st_acc):
    """State at the extrapolated point: ``st_acc`` is ``st`` moved along
    ``w_acc - w[feats]`` (cheaper than storing ``K`` states for sparse
    designs); returns the intercept ``b`` moved likewise (quadratic datafit;
    ``mu`` is zero without an intercept)."""
    for i in range(st.shape[0]):
        st_acc[i] = st[i]
    b_acc = b
    for q in range(feats.shape[0]):
        d = w_acc[q] - w[feats[q]]
        if d != 0.0:
            b_acc = _coord_apply(is_sparse, X, indptr, indices, data, df_kind,
                                 st_acc, b_acc, mu, feats[q], d)
    return b_acc


@njit(cache=True, nogil=True, inline="never")
def _next_sweep(grouped, grp_ptr, grp_idx, w, ws, cur, n_cur, full, delta,
                tol_in):
    """Active-set cycling (glmnet) after a sweep over ``cur[:n_cur]``.

    After a sweep over the whole working set (``full``), the next sweeps
    visit only its non-zero blocks until one moves nothing beyond ``tol_in``,
    then the whole working set again; the solve is done on a full sweep that
    moves nothing beyond ``tol_in``.  Updates ``cur`` in place and returns
    ``(done, n_cur, full)``.
    """
    n_ws = ws.shape[0]
    if full:
        if delta <= tol_in:
            return True, n_cur, full
        n_cur = 0
        for q in range(n_ws):
            k = ws[q]
            nz = False
            if grouped:
                for t in range(grp_ptr[k], grp_ptr[k + 1]):
                    if w[grp_idx[t]] != 0.0:
                        nz = True
                        break
            else:
                nz = w[k] != 0.0
            if nz:
                cur[n_cur] = k
                n_cur += 1
        return False, n_cur, n_cur == n_ws
    if delta <= tol_in:
        for q in range(n_ws):
            cur[q] = ws[q]
        return False, n_ws, True
    return False, n_cur, full


@njit(cache=True, nogil=True)
def _ws_penalty(pen_kind, alpha, l2, gamma, grouped, grp_ptr, grp_idx, grp_w, ws,
                w):
    acc = 0.0
    if grouped:
        for q in range(ws.shape[0]):
            k = ws[q]
            nrm = 0.0
            for t in range(grp_ptr[k], grp_ptr[k + 1]):
                nrm += w[grp_idx[t]] ** 2
            acc += alpha * grp_w[k] * math.sqrt(nrm)
    else:
        for q in range(ws.shape[0]):
            acc += pen_value_1d(pen_kind, w[ws[q]], alpha, l2, gamma)
    return acc


@njit(cache=True, nogil=True)
def cd_inner(is_sparse, X, indptr, indices, data,
             df_kind, y, s, n_scale, st, b_arr, mu, fit_intercept,
             pen_kind, alpha, l2, gamma, positive,
             grouped, grp_ptr, grp_idx, grp_w,
             lips, w, ws, max_epochs, tol_in, anderson_k):
    """Coordinate-descent epochs over the working set ``ws`` (in place).

    Parameters (arrays are modified in place: ``w``, ``st``, ``b_arr``)
    ----------
    ws : int64 array
        Blocks to update, in order (features, or groups when ``grouped``).
    lips : array
        Per-block Lipschitz constants of the datafit's partial gradient
        (exact coordinate minimisation for the quadratic datafit).
    tol_in : float
        Stop once a sweep over the whole working set moves no block by more
        than ``tol_in`` in the scaled norm ``L_k ||delta_k||`` (the fixed-point
        residual measured by the Gauss-Seidel sweep itself).  Between full
        sweeps, only the working set's non-zero blocks are swept until they
        settle (active-set cycling, as glmnet).
    anderson_k : int
        Extrapolate every ``anderson_k + 1`` epochs from the last iterates
        (0 disables); an extrapolated point is kept only if it lowers the
        objective and stays feasible.

    Returns
    -------
    n_epochs : int
    last_delta : float
    n_accepted : int
        Accepted Anderson steps.
    """
    n = st.shape[0]
    b = b_arr[0]
    n_ws = ws.shape[0]
    # features of the working set (for extrapolation) and group buffer size
    if grouped:
        m = 0
        gmax = 1
        for q in range(n_ws):
            sz = grp_ptr[ws[q] + 1] - grp_ptr[ws[q]]
            m += sz
            gmax = max(gmax, sz)
        feats = np.empty(m, np.int64)
        c = 0
        for q in range(n_ws):
            for t in range(grp_ptr[ws[q]], grp_ptr[ws[q] + 1]):
                feats[c] = grp_idx[t]
                c += 1
    else:
        m = n_ws
        gmax = 1
        feats = np.empty(m, np.int64)
        for q in range(n_ws):
            feats[q] = ws[q]
    ubuf = np.empty(gmax, np.float64)
    K = anderson_k
    Wb = np.empty((K + 1, m), np.float64)
    Bb = np.empty(K + 1, np.float64)
    st_acc = np.empty(n, st.dtype)
    w_acc = np.empty(m, np.float64)
    cnt = 0
    n_acc = 0
    # logistic intercept: Lipschitz constant of the partial gradient in b
    lb = 0.0
    if df_kind == DF_LOGISTIC and fit_intercept:
        for i in range(n):
            lb += s[i]
        lb *= 0.25
    delta = np.inf
    epoch = 0
    # active-set cycling (glmnet): after a sweep over the whole working set,
    # sweep only its non-zero blocks until they settle, then sweep all again;
    # the solve stops on a full sweep that moves nothing beyond tol_in
    cur = ws.copy()
    n_cur = n_ws
    full = True
    while epoch < max_epochs:
        epoch += 1
        delta = 0.0
        for q in range(n_cur):
            k = cur[q]
            L = lips[k]
            if L <= 0.0:
                continue
            if not grouped:
                g = _coord_grad(is_sparse, X, indptr, indices, data, df_kind, y, s,
                                n_scale, st, b, mu, k)
                old = w[k]
                new = prox_1d(pen_kind, old - g / L, L, alpha, l2, gamma, positive)
                if new != old:
                    d = new - old
                    b = _coord_apply(is_sparse, X, indptr, indices, data, df_kind,
                                     st, b, mu, k, d)
                    w[k] = new
                    dd = L * abs(d)
                    if dd > delta:
                        delta = dd
            else:
                start, end = grp_ptr[k], grp_ptr[k + 1]
                nrm = 0.0
                for t in range(start, end):
                    j = grp_idx[t]
                    g = _coord_grad(is_sparse, X, indptr, indices, data, df_kind, y,
                                    s, n_scale, st, b, mu, j)
                    u = w[j] - g / L
                    if positive and u < 0.0:
                        u = 0.0
                    ubuf[t - start] = u
                    nrm += u * u
                nrm = math.sqrt(nrm)
                scale = 0.0
                if nrm > 0.0:
                    scale = max(0.0, 1.0 - alpha * grp_w[k] / (L * nrm))
                dn = 0.0
                for t in range(start, end):
                    j = grp_idx[t]
                    new = scale * ubuf[t - start]
                    d = new - w[j]
                    if d != 0.0:
                        b = _coord_apply(is_sparse, X, indptr, indices, data,
                                         df_kind, st, b, mu, j, d)
                        w[j] = new
                        dn += d * d
                dd = L * math.sqrt(dn)
                if dd > delta:
                    delta = dd
        if df_kind == DF_LOGISTIC and fit_intercept and lb > 0.0:
            gb = 0.0
            for i in range(n):
                gb += s[i] * _logistic_deriv(y[i], st[i] + b)
            b -= gb / lb
            dd = abs(gb)
            if dd > delta:
                delta = dd
        done, n_cur, full = _next_sweep(grouped, grp_ptr, grp_idx, w, ws, cur,
                                        n_cur, full, delta, tol_in)
        if done:
            break
        if K > 0:
            for q in range(m):
                Wb[cnt, q] = w[feats[q]]
            Bb[cnt] = b
            cnt += 1
            if cnt == K + 1:
                cnt = 0
                ok, z = _anderson_point(Wb, positive, w_acc)
                if not ok:
                    continue
                b_acc = _anderson_state(is_sparse, X, indptr, indices, data, df_kind,
                                        st, b, mu, feats, w, w_acc, st_acc)
                if df_kind == DF_LOGISTIC:
                    b_acc = 0.0
                    for a1 in range(K):
                        b_acc += z[a1] * Bb[a1 + 1]
                # objective before / after on the working set
                f_cur = datafit_value(df_kind, y, s, n_scale, st, b)
                f_cur += _ws_penalty(pen_kind, alpha, l2, gamma, grouped, grp_ptr,
                                     grp_idx, grp_w, ws, w)
                w_old = np.empty(m, np.float64)
                for q in range(m):
                    w_old[q] = w[feats[q]]
                    w[feats[q]] = w_acc[q]
                f_acc = datafit_value(df_kind, y, s, n_scale, st_acc, b_acc)
                f_acc += _ws_penalty(pen_kind, alpha, l2, gamma, grouped, grp_ptr,
                                     grp_idx, grp_w, ws, w)
                if f_acc < f_cur:
                    for i in range(n):
                        st[i] = st_acc[i]
                    b = b_acc
                    n_acc += 1
                else:
                    for q in range(m):
                        w[feats[q]] = w_old[q]
    b_arr[0] = b
    return epoch, delta, n_acc


@njit(cache=True, nogil=True)
def group_grams(is_sparse, X, indptr, indices, data, sw, grp_ptr, grp_idx, out,
                out_ptr):
    """Gram matrices ``X_g^T diag(sw) X_g`` of every group, flattened row-major
    into ``out[out_ptr[g]:out_ptr[g + 1]]``."""
    n = sw.shape[0]
    buf = np.zeros(n, np.float64)
    for g in range(grp_ptr.shape[0] - 1):
        start = grp_ptr[g]
        sz = grp_ptr[g + 1] - start
        base = out_ptr[g]
        for a in range(sz):
            j = grp_idx[start + a]
            if is_sparse:
                for k in range(indptr[j], indptr[j + 1]):
                    buf[indices[k]] += data[k] * sw[indices[k]]
            else:
                for i in range(n):
                    buf[i] = X[i, j] * sw[i]
            for c in range(a, sz):
                acc = _col_dot(is_sparse, X, indptr, indices, data, grp_idx[start + c],
                               buf)
                out[base + a * sz + c] = acc
                out[base + c * sz + a] = acc
            if is_sparse:
                for k in range(indptr[j], indptr[j + 1]):
                    buf[indices[k]] = 0.0


# ----------------------------------------------------------------------------
# specialised inner solver: least squares + separable L1 / elastic net
# ----------------------------------------------------------------------------
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dense_col_dot(X, j, v, n):
    """``X[:, j] @ v`` (reassociated: vectorised by LLVM)."""
    acc = 0.0
    for i in range(n):
        acc += X[i, j] * v[i]
    return acc


@njit(cache=True, nogil=True, inline="always")
def _enet_step(w, g, L, alpha, l2, positive):
    """Exact coordinate minimiser of the elastic net from ``w`` with partial
    gradient ``g``: ``prox_1d(PEN_L1, w - g / L, ...)`` without the dispatch
    (inlined: it runs once per coordinate)."""
    u = w - g / L
    if positive and u < 0.0:
        u = 0.0
    t = abs(u) - alpha / L
    if t <= 0.0:
        return 0.0
    new = t / (1.0 + l2 / L)
    if u < 0.0:
        new = -new
    return new


@njit(cache=True, nogil=True)
def _lasso_sweep(is_sparse, X, indptr, indices, data, inv_n, st, b, mu,
                 fit_intercept, alpha, l2, positive, lips, w, cur, n_cur):
    """One cyclic sweep of exact coordinate minimisation over ``cur[:n_cur]``.

    Returns ``(b, delta)`` with ``delta = max_k L_k |w_k^+ - w_k|``.  The
    branches on ``is_sparse`` / ``fit_intercept`` are hoisted out of the
    coordinate loop (one tight loop per variant).
    """
    delta = 0.0
    n = st.shape[0]
    for q in range(n_cur):
        j = cur[q]
        L = lips[j]
        if L <= 0.0:
            continue
        acc = 0.0
        if is_sparse:
            start = indptr[j]
            end = indptr[j + 1]
            for k in range(start, end):
                acc += data[k] * st[indices[k]]
        else:
            start = 0
            end = 0
            acc = _dense_col_dot(X, j, st, n)
        g = -acc * inv_n
        if fit_intercept:
            g += b * mu[j]
        old = w[j]
        new = _enet_step(old, g, L, alpha, l2, positive)
        if new != old:
            d = new - old
            if is_sparse:
                for k in range(start, end):
                    st[indices[k]] -= d * data[k]
            else:
                for i in range(n):
                    st[i] -= d * X[i, j]
            if fit_intercept:
                b -= d * mu[j]
            w[j] = new
            dd = L * abs(d)
            if dd > delta:
                delta = dd
    return b, delta


@njit(cache=True, nogil=True)
def cd_inner_lasso(is_sparse, X, indptr, indices, data, n_scale, st, b_arr, mu,
                   fit_intercept, alpha, l2, positive, lips, w, ws, max_epochs,
                   tol_in, anderson_k):
    """:func:`cd_inner` specialised to least squares + separable L1/L2.

    Same iterations, stopping rule and Anderson safeguard as
    :func:`cd_inner` with ``df_kind=DF_QUAD``, ``pen_kind=PEN_L1`` and
    ``grouped=False``; the sweep is a tight loop without per-coordinate
    dispatch on the datafit / penalty kind (the Lasso and elastic net are the
    hot path of the regularisation paths).
    """
    n = st.shape[0]
    inv_n = 1.0 / n_scale
    b = b_arr[0]
    m = ws.shape[0]
    K = anderson_k
    Wb = np.empty((K + 1, m), np.float64)
    st_acc = np.empty(n, st.dtype)
    w_acc = np.empty(m, np.float64)
    cnt = 0
    n_acc = 0
    delta = np.inf
    epoch = 0
    cur = ws.copy()
    n_cur = m
    full = True
    no_groups = np.empty(0, np.int64)
    while epoch < max_epochs:
        epoch += 1
        b, delta = _lasso_sweep(is_sparse, X, indptr, indices, data, inv_n, st, b,
                                mu, fit_intercept, alpha, l2, positive, lips, w,
                                cur, n_cur)
        done, n_cur, full = _next_sweep(False, no_groups, no_groups, w, ws, cur,
                                        n_cur, full, delta, tol_in)
        if done:
            break
        if K == 0:
            continue
        for q in range(m):
            Wb[cnt, q] = w[ws[q]]
        cnt += 1
        if cnt < K + 1:
            continue
        cnt = 0
        ok, _ = _anderson_point(Wb, positive, w_acc)
        if not ok:
            continue
        b_acc = _anderson_state(is_sparse, X, indptr, indices, data, DF_QUAD, st, b,
                                mu, ws, w, w_acc, st_acc)
        pen_cur = 0.0
        pen_acc = 0.0
        for q in range(m):
            wj = w[ws[q]]
            pen_cur += alpha * abs(wj) + 0.5 * l2 * wj * wj
            wa = w_acc[q]
            pen_acc += alpha * abs(wa) + 0.5 * l2 * wa * wa
        f_cur = datafit_value(DF_QUAD, st, st, n_scale, st, b) + pen_cur
        f_acc = datafit_value(DF_QUAD, st_acc, st_acc, n_scale, st_acc, b_acc) \
            + pen_acc
        if f_acc < f_cur:
            for i in range(n):
                st[i] = st_acc[i]
            b = b_acc
            for q in range(m):
                w[ws[q]] = w_acc[q]
            n_acc += 1
    b_arr[0] = b
    return epoch, delta, n_acc


@njit(cache=True, nogil=True)
def lasso_outer(is_sparse, X, indptr, indices, data, inv_n, st, b, mu,
                fit_intercept, alpha, l2, positive, lips, inv_sqrt_lips, rawnorm,
                rawnorm1, w, skip, force, drift, drift_inf, bdrift, grad, ref_drift,
                ref_inf, ref_bdrift, out_score, stats):
    """Outer check of the Lasso / elastic net with lazily refreshed gradients.

    ``grad[j]`` holds the last exactly computed partial gradient of feature
    ``j``, taken when the cumulative residual drifts were ``ref_drift[j]``
    and ``ref_inf[j]`` (``drift`` accumulates ``||st_t - st_{t-1}||_2 / n``
    over the checks, ``drift_inf`` the same in the max-norm, ``bdrift`` the
    intercept's ``|b_t - b_{t-1}|``), so that by the triangle and Hoelder
    inequalities

    .. math::

        |g_j - \\text{grad}_j| \\le \\min(\\|x_j\\|_2 \\Delta_2, \\|x_j\\|_1
        \\Delta_\\infty) + |\\mu_j| \\Delta_b =: e_j

    with the drifts ``Delta`` accumulated since the gradient was stored (the
    max-norm form is the tighter one for sparse columns).

    A zero coefficient whose bound ``|grad_j| + e_j`` (positive part of
    ``-grad_j`` when ``positive``) stays ``<= alpha`` satisfies its optimality
    condition, adds nothing to the fixed-point violation, to the dual
    rescaling (``max |z_j|`` only matters above ``alpha``) or to the elastic
    net conjugate (``(|z_j| - alpha)_+``): its dot product is skipped and the
    duality gap is exactly the one of a full pass.  Every other unscreened
    feature (and all of them when ``force``) is recomputed.

    Outputs: ``out_score`` as in :func:`kkt_scores` (stale gradients only
    rank the non-violating zero features among themselves) and ``stats =
    [kkt_max, dual_norm, excess_sq, l1(w), sq(w), n_computed, n_active]``
    with ``kkt_max`` the largest fixed-point violation, ``dual_norm = max_j
    |z_j|`` (exact whenever it exceeds ``alpha``), ``excess_sq = sum_j
    (|z_j| - alpha)_+^2`` and ``n_active`` the unscreened non-zeros.
    ``inv_sqrt_lips`` holds ``1 / sqrt(L_j)`` (no division in the loop).
    """
    p = w.shape[0]
    n = st.shape[0]
    kkt_max = 0.0
    dn = 0.0
    excess = 0.0
    l1 = 0.0
    sq = 0.0
    n_comp = 0
    n_active = 0
    for j in range(p):
        wj = w[j]
        if wj != 0.0:
            l1 += abs(wj)
            sq += wj * wj
        if skip[j]:
            out_score[j] = -np.inf
            continue
        g = grad[j]
        e = min(rawnorm[j] * (drift - ref_drift[j]),
                rawnorm1[j] * (drift_inf - ref_inf[j]))
        if fit_intercept:
            e += abs(mu[j]) * (bdrift - ref_bdrift[j])
        zb = max(-g, 0.0) if positive else abs(g)
        # e == 0: the stored gradient is exact; zb + e <= alpha: the feature
        # provably satisfies |z_j| <= alpha and is left alone
        if force or (e > 0.0 and (wj != 0.0 or zb + e > alpha)):
            acc = 0.0
            if is_sparse:
                for k in range(indptr[j], indptr[j + 1]):
                    acc += data[k] * st[indices[k]]
            else:
                acc = _dense_col_dot(X, j, st, n)
            g = -acc * inv_n
            if fit_intercept:
                g += b * mu[j]
            grad[j] = g
            ref_drift[j] = drift
            ref_inf[j] = drift_inf
            ref_bdrift[j] = bdrift
            n_comp += 1
            zb = max(-g, 0.0) if positive else abs(g)
        # zb is exact here unless it is provably <= alpha, where it cannot
        # change the dual rescaling (which only acts above alpha)
        if zb > dn:
            dn = zb
        if zb > alpha:
            excess += (zb - alpha) * (zb - alpha)
        L = lips[j]
        if L <= 0.0:
            out_score[j] = -np.inf
            continue
        if wj != 0.0:
            n_active += 1
            kk = L * abs(wj - _enet_step(wj, g, L, alpha, l2, positive))
            out_score[j] = np.inf
        elif zb > alpha:
            # prox of a zero coordinate: L |w+| = (zb - alpha) L / (L + l2)
            kk = (zb - alpha) * (L / (L + l2))
            out_score[j] = kk * inv_sqrt_lips[j]
        else:
            kk = 0.0
            out_score[j] = (zb - alpha) * inv_sqrt_lips[j]
        if kk > kkt_max:
            kkt_max = kk
    stats[0] = kkt_max
    stats[1] = dn
    stats[2] = excess
    stats[3] = l1
    stats[4] = sq
    stats[5] = n_comp
    stats[6] = n_active


@njit(cache=True, nogil=True)
def lasso_screen(alpha, c, radius, positive, colnorm, rawnorm, rawnorm1, mu,
                 fit_intercept, drift, drift_inf, bdrift, grad, ref_drift, ref_inf,
                 ref_bdrift, skip, score):
    """Gap-safe test ``c |z_j| + ||x_j||_c R < alpha`` on the unscreened features.

    ``|z_j|`` is bounded by the stored gradient plus its drift bound (see
    :func:`lasso_outer`; exact for the features recomputed at this check),
    which keeps the test safe.  Marks ``skip`` and ``score = -inf``; returns
    the number of newly screened features.
    """
    cnt = 0
    for j in range(grad.shape[0]):
        if skip[j]:
            continue
        g = grad[j]
        zn = max(-g, 0.0) if positive else abs(g)
        e = min(rawnorm[j] * (drift - ref_drift[j]),
                rawnorm1[j] * (drift_inf - ref_inf[j]))
        if fit_intercept:
            e += abs(mu[j]) * (bdrift - ref_bdrift[j])
        if c * (zn + e) + colnorm[j] * radius < alpha:
            skip[j] = True
            score[j] = -np.inf
            cnt += 1
    return cnt


@njit(cache=True, nogil=True)
def csc_col_stats(indptr, indices, raw, data, v, s, out_sq, out_sum_v, out_raw_sq,
                  out_wsq, out_abs):
    """Per-column sums of a CSC design in one pass (float64 accumulators).

    ``out_sq = sum data^2``, ``out_sum_v = sum data * v``, ``out_raw_sq =
    sum raw^2`` and ``out_wsq = sum raw^2 * s`` (``data`` is the weighted
    copy of ``raw`` the kernels read; ``s`` may be empty, then ``out_wsq`` is
    left untouched).
    """
    with_s = s.shape[0] > 0
    for j in range(indptr.shape[0] - 1):
        a_sq = 0.0
        a_v = 0.0
        a_r = 0.0
        a_w = 0.0
        a_a = 0.0
        for k in range(indptr[j], indptr[j + 1]):
            i = indices[k]
            d = data[k]
            r = raw[k]
            a_sq += d * d
            a_a += abs(d)
            a_v += d * v[i]
            a_r += r * r
            if with_s:
                a_w += r * r * s[i]
        out_sq[j] = a_sq
        out_sum_v[j] = a_v
        out_raw_sq[j] = a_r
        out_abs[j] = a_a
        if with_s:
            out_wsq[j] = a_w


@njit(cache=True, nogil=True)
def movable_scores(score):
    """Scores above ``-inf`` (blocks that may enter a working set), in index
    order, and the number of violators (finite positive scores)."""
    m = 0
    for k in range(score.shape[0]):
        if score[k] > -np.inf:
            m += 1
    vals = np.empty(m, np.float64)
    c = 0
    m_pos = 0
    for k in range(score.shape[0]):
        sk = score[k]
        if sk > -np.inf:
            vals[c] = sk
            c += 1
            if 0.0 < sk < np.inf:
                m_pos += 1
    return vals, m_pos


@njit(cache=True, nogil=True)
def select_top(score, size, thr, m_pos):
    """Sorted indices of the ``size`` largest scores, given the ``size``-th
    largest value ``thr`` (ties filled in index order; ``-inf`` never taken).

    Returns ``(ws, n_left)`` with ``n_left`` the number of violators (finite
    positive scores) left out of ``ws``.
    """
    out = np.empty(size, np.int64)
    c = 0
    sel_pos = 0
    for k in range(score.shape[0]):
        sk = score[k]
        if sk > thr:
            out[c] = k
            c += 1
            if 0.0 < sk < np.inf:
                sel_pos += 1
    if c < size:
        for k in range(score.shape[0]):
            if score[k] == thr:
                out[c] = k
                c += 1
                if 0.0 < thr < np.inf:
                    sel_pos += 1
                if c == size:
                    break
    out.sort()
    return out[:c], m_pos - sel_pos


@njit(cache=True, nogil=True)
def dense_col_stats(X, v, out_sq, out_sum_v, out_abs):
    """Per-column ``sum x^2``, ``sum x v`` and ``sum |x|`` of a Fortran ``X``
    in one pass (no temporary the size of ``X``)."""
    n = X.shape[0]
    for j in range(X.shape[1]):
        a_sq = 0.0
        a_v = 0.0
        a_a = 0.0
        for i in range(n):
            x = X[i, j]
            a_sq += x * x
            a_v += x * v[i]
            a_a += abs(x)
        out_sq[j] = a_sq
        out_sum_v[j] = a_v
        out_abs[j] = a_a
