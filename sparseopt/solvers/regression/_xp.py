"""A regression problem on a backend's arrays, for the generic (device) solver.

:func:`prepare_design_xp` is the twin of
:func:`~sparseopt.solvers.regression.prepare_design` for the accelerated
proximal-gradient solver (:mod:`sparseopt.solvers.regression._fista`): the
same rescaling (``X~ = diag(v) X``, ``y~ = v * y`` with ``v = sqrt(n s)`` for
sample weights ``s`` normalised by their sum), the same implicit centring for
the intercept (``mu_j = x~_j^T v / n``; sparse designs stay sparse), and the
same constants (per-feature Lipschitz constants, feature norms for gap-safe
screening, ``P(0)`` and the gradient at the null model), computed with
``nx.xp`` (the array-API namespace of the backend: ``array_api_compat.cupy``
on a GPU) and the backend's sparse kernels ``nx.spmm`` / ``nx.spmm_t`` on the
raw CSR arrays.  Nothing converts to the host: the only transfers are the
scalars of the validation and of the constants (a few, once per problem).

Precision: the design stays in its input dtype (a float32 matrix is not copied
to float64, and its products run in float32, as suits a GPU); vectors (the
coefficients, residuals, gradients) and every reduction of the stopping rule
are float64.
"""

import math

import numpy as np

from sparseopt.kernels import _cd
from sparseopt.solvers._xp_linalg import (
    as_float_array,
    fetch,
    is_sparse_input,
    row_ids,
    sparse_parts,
)

__all__ = ["DesignXP", "prepare_design_xp"]


class DesignXP:
    """Arrays and constants of one prepared problem on a backend ``nx``.

    Attributes (as :class:`~sparseopt.solvers.regression.Design`, on the device)
    ----------
    nx, xp : backend and its namespace
    generic : True
        Marks a design for the generic solver.
    is_sparse : bool
    X : dense ``(n, p)`` array (input dtype), or None when sparse
    indptr, indices, data : CSR arrays (``data`` rescaled), or None when dense
    n, p : int
    kdtype : namespace dtype of the products (float32 or float64)
    in_dtype : numpy dtype of the results (the input's float dtype)
    df_kind : ``_cd.DF_QUAD`` or ``_cd.DF_LOGISTIC``
    y : float64 ``(n,)``: rescaled target, or labels in {-1, +1}
    s : float64 ``(n,)``: normalised sample weights
    v : float64 ``(n,)`` or None: ``sqrt(n s)`` (None without weights)
    mu : float64 ``(p,)``: centring means (zeros without intercept / logistic)
    b_y : float: weighted mean of ``y`` (quadratic with intercept)
    lips, colnorm : float64 ``(p,)``: per-feature Lipschitz constants and norms
    P0, max_s, grad0_inf, b0 : float
    grad0 : float64 ``(p,)``: datafit gradient at ``w = 0``
    """

    generic = True

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self._lipschitz = None

    # -- products ----------------------------------------------------------
    def matvec(self, w):
        """``X~ w`` (float64)."""
        xp = self.xp
        wk = xp.astype(w, self.kdtype, copy=False)
        if self.is_sparse:
            out = xp.empty((self.n, 1), dtype=self.kdtype)
            self.nx.spmm(self.indptr, self.indices, self.data,
                         xp.reshape(wk, (self.p, 1)), out)
            out = xp.reshape(out, (self.n,))
        else:
            out = self.X @ wk
        return xp.astype(out, xp.float64, copy=False)

    def rmatvec(self, r):
        """``X~^T r`` for ``r`` of shape ``(n,)`` or ``(n, k)`` (float64)."""
        xp = self.xp
        vec = r.ndim == 1
        rk = xp.astype(r, self.kdtype, copy=False)
        if self.is_sparse:
            R = xp.reshape(rk, (self.n, 1)) if vec else rk
            out = xp.empty((self.p, R.shape[1]), dtype=self.kdtype)
            self.nx.spmm_t(self.indptr, self.indices, self.data, R, out)
            if vec:
                out = xp.reshape(out, (self.p,))
        else:
            out = self.X.T @ rk
        return xp.astype(out, xp.float64, copy=False)

    # -- datafit -----------------------------------------------------------
    def intercept_of(self, w):
        """Quadratic datafit: the optimal intercept ``b_y - mu^T w`` (0-d array)."""
        xp = self.xp
        if not self.fit_intercept:
            return xp.asarray(0.0, dtype=xp.float64)
        return self.b_y - xp.vecdot(self.mu, w)

    def lipschitz(self):
        """Upper estimate of the Lipschitz constant of the datafit gradient (host float).

        Quadratic: ``||X~_c||_2^2 / n`` with ``X~_c = X~ - v mu^T`` the centred
        design; logistic: ``||diag(sqrt(s)) [X, 1]||_2^2 / 4`` (the column of
        ones only with an intercept).  Thirty power iterations on the device
        (no transfer but the final value), times ``1.05``: the Rayleigh
        quotient after ``k`` iterations is below ``sigma_max^2`` by at most
        about ``1 / (2 k)`` relatively, so the step stays below ``1 / L``.
        """
        if self._lipschitz is not None:
            return self._lipschitz
        xp = self.xp
        quad = self.df_kind == _cd.DF_QUAD
        rng = np.random.default_rng(0)
        u = xp.asarray(rng.standard_normal(self.p), dtype=xp.float64)
        ub = xp.asarray(1.0, dtype=xp.float64)
        with_b = (not quad) and self.fit_intercept
        ones = self.v if self.v is not None else xp.ones(self.n, dtype=xp.float64)
        lam = xp.asarray(0.0, dtype=xp.float64)
        for _ in range(30):
            nrm = xp.sqrt(xp.vecdot(u, u) + (ub * ub if with_b else 0.0))
            nrm = xp.where(nrm > 0, nrm, 1.0)
            u, ub = u / nrm, ub / nrm
            z = self.matvec(u)
            if quad:
                if self.fit_intercept:
                    z = z - ones * xp.vecdot(self.mu, u)
                g = self.rmatvec(z) / self.n
                if self.fit_intercept:
                    g = g - self.mu * (xp.vecdot(ones, z) / self.n)
                gb = ub
                lam = xp.vecdot(u, g)
            else:
                if with_b:
                    z = z + ub
                sz = 0.25 * self.s * z
                g = self.rmatvec(sz)
                gb = xp.sum(sz) if with_b else ub
                lam = xp.vecdot(u, g) + (ub * gb if with_b else 0.0)
            u, ub = g, gb
        (value,) = fetch(self.nx, lam)
        self._lipschitz = 1.05 * max(value, 0.0)
        return self._lipschitz

    def datafit_value(self, st, b):
        """Datafit from the state (as :func:`sparseopt.kernels._cd.datafit_value`)."""
        xp = self.xp
        if self.df_kind == _cd.DF_QUAD:
            return 0.5 * (xp.vecdot(st, st) / self.n - b * b)
        t = -self.y * (st + b)
        return xp.vecdot(self.s, log1pexp(xp, t))


def log1pexp(xp, t):
    """``log(1 + exp(t))`` without overflow."""
    return xp.maximum(t, 0.0) + xp.log1p(xp.exp(-xp.abs(t)))


def expit(xp, t):
    """The logistic sigmoid ``1 / (1 + exp(-t))`` without overflow."""
    e = xp.exp(-xp.abs(t))
    return xp.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def entr(xp, q):
    """``-q log q`` (0 at 0) for ``q`` in [0, 1]."""
    pos = q > 0
    return xp.where(pos, -q * xp.log(xp.where(pos, q, 1.0)), 0.0)


def _check_sample_weight(nx, sample_weight, n):
    xp = nx.xp
    sw = as_float_array(nx, sample_weight, "sample_weight", sample_weight.ndim)
    if sw.ndim == 0:
        sw = xp.full(n, sw, dtype=xp.float64)
    if sw.ndim != 1:
        raise ValueError(f"sample_weight must have 0 or 1 dimension(s), got shape "
                         f"{tuple(sw.shape)}")
    if sw.shape[0] != n:
        raise ValueError(f"sample_weight has {sw.shape[0]} entries but X has {n} samples")
    sw = xp.astype(sw, xp.float64)
    neg, total = fetch(nx, xp.any(sw < 0), xp.sum(sw))
    if neg:
        raise ValueError("sample_weight must be non-negative")
    if not total > 0:
        raise ValueError("sample_weight must have a positive sum")
    return sw / total


def _entropy(p):
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-p * math.log(p) - (1 - p) * math.log(1 - p))


def prepare_design_xp(nx, X, y, *, datafit="quadratic", sample_weight=None,
                      fit_intercept=True, check_input=True):
    """Validate and prepare ``(X, y)`` on the backend ``nx`` (see the module docstring).

    Parameters
    ----------
    nx : backend
        From :func:`sparseopt.get_backend` (CuPy arrays: the GPU backend).
    X : dense array or CSR-like of shape (n_samples, n_features)
        A dense array of ``nx``'s library, or a sparse matrix on it
        (:class:`sparseopt.CSR` on device arrays, a ``cupyx.scipy.sparse``
        matrix, or any object with ``format == "csr"`` and ``indptr``,
        ``indices``, ``data``, ``shape``).  Never modified.
    y : array of shape (n_samples,)
        Targets; labels in {-1, +1} for ``datafit="logistic"``.
    datafit, sample_weight, fit_intercept, check_input
        As in :func:`~sparseopt.solvers.regression.prepare_design`.

    Returns
    -------
    DesignXP
    """
    xp = nx.xp
    if datafit not in ("quadratic", "logistic"):
        raise ValueError(f"datafit must be 'quadratic' or 'logistic', got {datafit!r}")
    quad = datafit == "quadratic"
    is_sparse = is_sparse_input(X)
    if is_sparse:
        indptr, indices, data, (n, p) = sparse_parts(nx, X)
        if data.dtype != xp.float32 and data.dtype != xp.float64:
            data = xp.astype(data, xp.float64)
        Xd = None
    else:
        if check_input:
            Xd = as_float_array(nx, X, "X", 2)
        else:
            Xd = X if X.dtype in (xp.float32, xp.float64) else xp.astype(X, xp.float64)
        if Xd.ndim != 2:
            raise ValueError(f"X must have 2 dimension(s), got shape {tuple(Xd.shape)}")
        n, p = Xd.shape
        indptr = indices = data = None
    kdtype = (data if is_sparse else Xd).dtype
    in_dtype = np.dtype(np.float32) if kdtype == xp.float32 else np.dtype(np.float64)
    y = as_float_array(nx, y, "y", 1) if check_input else y
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but X has {n} samples")
    if n == 0:
        raise ValueError("X must have at least one sample")
    if p == 0:
        raise ValueError("X must have at least one feature")
    y64 = xp.astype(y, xp.float64)
    sw = None if sample_weight is None else _check_sample_weight(nx, sample_weight, n)
    s = xp.full(n, 1.0 / n, dtype=xp.float64) if sw is None else sw
    if quad:
        v = None if sw is None else xp.sqrt(n * sw)
        y_t = y64 if v is None else y64 * v
    else:
        v = None
        y_t = y64
        (bad,) = fetch(nx, xp.any((y_t != 1.0) & (y_t != -1.0)))
        if bad:
            raise ValueError("y must hold labels in {-1, +1} for the logistic datafit")

    # rescaled design (a copy only with sample weights in the quadratic datafit)
    if v is not None:
        if is_sparse:
            rows = row_ids(xp, indptr, n)
            data = xp.astype(xp.astype(data, xp.float64) * xp.take(v, rows), kdtype)
        else:
            Xd = xp.astype(Xd * xp.astype(v, kdtype)[:, None], kdtype, copy=False)
    design = DesignXP(
        nx=nx, xp=xp, is_sparse=is_sparse, X=Xd, indptr=indptr, indices=indices,
        data=data, n=n, p=p, kdtype=kdtype, in_dtype=in_dtype,
        df_kind=_cd.DF_QUAD if quad else _cd.DF_LOGISTIC, y=y_t, s=s, v=v,
        n_scale=float(n) if quad else 1.0, fit_intercept=bool(fit_intercept),
        datafit_name=datafit)
    # column statistics: squared norms, and X^T (s x^2) for the logistic constants
    # (raw and rescaled norms differ only with weights in the quadratic datafit,
    # which uses the centred norms ``n lips``)
    ones = xp.ones(n, dtype=xp.float64)
    if is_sparse:
        sq_design = DesignXP(nx=nx, xp=xp, is_sparse=True, indptr=indptr, indices=indices,
                             data=data * data, n=n, p=p, kdtype=kdtype)
        sq = sq_design.rmatvec(ones)
        wsq = None if quad else sq_design.rmatvec(s)
    else:
        sq = xp.sum(Xd * Xd, axis=0, dtype=xp.float64)
        wsq = None if quad else xp.astype((Xd * Xd).T @ xp.astype(s, kdtype), xp.float64)
    if quad:
        sum_v = design.rmatvec(ones if v is None else v)
        mu = sum_v / n if fit_intercept else xp.zeros(p, dtype=xp.float64)
        b_y_dev = xp.vecdot(y_t, ones if v is None else v) / n
        yy = xp.vecdot(y_t, y_t) / n
        lips = xp.maximum(sq / n - mu * mu, 0.0)
        b_y, yy, sqmax = fetch(nx, b_y_dev, yy, xp.max(sq))
        if not fit_intercept:
            b_y = 0.0
        lips = xp.where(lips <= 1e-12 * max(sqmax / n, 1e-300), 0.0, lips)
        colnorm = xp.sqrt(n * lips)
        P0 = 0.5 * max(yy - b_y ** 2, 0.0)
        max_s = 1.0 / n
    else:
        mu = xp.zeros(p, dtype=xp.float64)
        b_y = 0.0
        lips = 0.25 * wsq
        lmax, pos, max_s = fetch(nx, xp.max(lips), xp.sum(xp.where(y_t > 0, s, 0.0)),
                                 xp.max(s))
        lips = xp.where(lips <= 1e-12 * max(lmax, 1e-300), 0.0, lips)
        colnorm = xp.sqrt(sq)
        P0 = _entropy(pos) if fit_intercept else math.log(2.0)
    design.mu = mu
    design.b_y = b_y
    design.lips = lips
    design.colnorm = colnorm
    design.P0 = P0
    design.max_s = max_s
    # intercept and gradient at the null model
    if quad:
        b0 = b_y if fit_intercept else 0.0
        st0 = y_t
        r0 = st0 - b0 * (ones if v is None else v)
        grad0 = -design.rmatvec(r0) / n
    else:
        b0 = math.log(pos / (1 - pos)) if fit_intercept and 0 < pos < 1 else 0.0
        d0 = -s * y_t * expit(xp, -y_t * b0)
        grad0 = design.rmatvec(d0)
    design.b0 = b0
    design.grad0 = grad0
    (design.grad0_inf,) = fetch(nx, xp.max(xp.abs(grad0)))
    return design


# ----------------------------------------------------------------------------
# glue for the estimators (sparseopt.linear_model)
# ----------------------------------------------------------------------------
def array_namespace(a):
    """The array-API namespace of an array (array-api-compat)."""
    import array_api_compat

    return array_api_compat.array_namespace(a)


def dtype_of(xp, dtype):
    """The namespace's float dtype (float32 or float64) matching ``dtype`` (any library's)."""
    is32 = False
    try:
        is32 = bool(dtype == xp.float32)
    except TypeError:
        pass
    if not is32:
        try:
            is32 = np.dtype(dtype) == np.float32
        except TypeError:
            pass
    return xp.float32 if is32 else xp.float64


def host_csr(X):
    """A host scipy.sparse matrix as a CSR array (raw arrays for the kernels); others unchanged."""
    import scipy.sparse as sp

    if sp.issparse(X):
        return sp.csr_array(X)
    if hasattr(X, "to_scipy") and hasattr(X, "indptr") and \
            type(X.data).__module__.split(".")[0] == "numpy":
        return X.to_scipy().tocsr()
    return X


def linear_predict_xp(nx, X, coef, n_features, *, check_input=True):
    """``X @ coef`` for a device ``X`` (dense or CSR-like) and ``coef`` of shape
    ``(p,)`` or ``(p, k)``, in ``X``'s float dtype.

    ``check_input=False``: a dense ``X`` already validated (a float32/float64
    2-D array, finite), as the estimators' ``predict`` passes it.
    """
    xp = nx.xp
    if is_sparse_input(X):
        indptr, indices, data, (n, p) = sparse_parts(nx, X)
    else:
        if check_input:
            X = as_float_array(nx, X, "X", 2)
        n, p = X.shape
    if p != n_features:
        raise ValueError(f"X has {p} features, but the model is expecting {n_features} "
                         "features as input")
    if not is_sparse_input(X):
        return X @ xp.astype(coef, X.dtype)
    vec = coef.ndim == 1
    W = xp.reshape(coef, (p, 1)) if vec else coef
    out = xp.empty((n, W.shape[1]), dtype=data.dtype)
    nx.spmm(indptr, indices, data, xp.astype(W, data.dtype), out)
    return xp.reshape(out, (n,)) if vec else out


def binary_labels_xp(nx, y):
    """``(classes, labels)`` of a binary device target: labels +1 for ``classes[1]``, else -1."""
    xp = nx.xp
    classes = xp.unique_values(y)
    k = int(classes.shape[0])
    if k != 2:
        raise ValueError(
            "Only binary classification is supported. SparseLogisticRegression "
            f"needs exactly 2 classes in y, got {k} class{'es' if k != 1 else ''}")
    labels = 2.0 * xp.astype(y == classes[1], xp.float64) - 1.0
    return classes, labels


class CSRParts:
    """A CSR matrix given by its raw device arrays (what :func:`sparse_parts` reads)."""

    format = "csr"

    def __init__(self, indptr, indices, data, shape):
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = tuple(shape)
        self.dtype = data.dtype


def take_rows_xp(nx, X, rows):
    """Rows ``rows`` (host int array) of a device ``X``: dense, or a :class:`CSRParts`."""
    xp = nx.xp
    idx = xp.asarray(np.asarray(rows, dtype=np.int64))
    if not is_sparse_input(X):
        return xp.take(X, idx, axis=0)
    indptr, indices, data, (_, p) = sparse_parts(nx, X)
    ip = xp.astype(indptr, xp.int64)
    counts = xp.take(ip[1:] - ip[:-1], idx)
    new_ptr = xp.concat([xp.zeros(1, dtype=xp.int64), xp.cumulative_sum(counts)])
    nnz = int(fetch(nx, new_ptr[-1])[0])
    starts = xp.repeat(xp.take(ip[:-1], idx), counts)
    offset = xp.arange(nnz, dtype=xp.int64) - xp.repeat(new_ptr[:-1], counts)
    pos = starts + offset
    return CSRParts(xp.astype(new_ptr, indptr.dtype), xp.take(indices, pos),
                    xp.take(data, pos), (int(idx.shape[0]), p))
