"""Preparation of a regression problem for the coordinate-descent kernels.

:func:`prepare_design` validates ``X``, ``y`` and ``sample_weight`` once and
returns a :class:`Design`: the arrays the kernels read (dense Fortran ``X`` or
CSC triplets, in the working float dtype), the per-feature centring means
``mu`` used for the implicit intercept, the Lipschitz constants and the
quantities at ``w = 0`` (gradient, objective) that scale the stopping rules.

The least-squares datafit is rescaled so that sample weights disappear from
the kernels: with ``s = sample_weight / sum(sample_weight)`` and
``v = sqrt(n s)``,

.. math::

    \\sum_i s_i (y_i - x_i^T w - b)^2 / 2
    = \\frac{1}{2n} \\| \\tilde y - \\tilde X w - b v \\|^2,
    \\quad \\tilde X = \\operatorname{diag}(v) X,\\ \\tilde y = v \\circ y .

The intercept is eliminated exactly (implicit centring): at fixed ``w`` the
best ``b`` is ``v^T (\\tilde y - \\tilde X w) / n``, so the kernels only need
``mu_j = \\tilde x_j^T v / n`` (the weighted column means) and never form a
centred copy of ``X`` -- which keeps sparse designs sparse.
"""

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from sparseopt._validation import check_array, check_finite, float_dtype
from sparseopt.kernels import _cd

__all__ = ["Design", "prepare_design", "to_csc"]


def to_csc(X):
    """Return ``X`` as a ``scipy.sparse`` CSC matrix if it is sparse, else None."""
    if sp.issparse(X):
        return X.tocsc()
    if hasattr(X, "to_scipy") and hasattr(X, "indptr"):  # sparseopt.CSR / BSR
        return X.to_scipy().tocsc()
    return None


class Design:
    """Arrays and constants of one prepared problem (see module docstring).

    Attributes
    ----------
    is_sparse : bool
    X : ndarray, shape (n, p) Fortran, or (0, 0) when sparse
    indptr, indices, data : CSC arrays, or empty when dense
    n, p : int
    dtype : numpy dtype
        Working float dtype of the kernels (always float64).
    in_dtype : numpy dtype
        Float dtype of the input ``X`` (float32 or float64): results follow it.
    df_kind : int
        ``_cd.DF_QUAD`` or ``_cd.DF_LOGISTIC``.
    y : ndarray
        Rescaled target (quadratic) or labels in {-1, +1} (logistic).
    s : ndarray
        Normalised sample weights (logistic; empty for quadratic).
    n_scale : float
        ``n`` for the quadratic datafit, 1 for the logistic one.
    mu : ndarray, float64
        Centring means (zeros without intercept or for logistic).
    b_y : float
        Weighted mean of ``y`` (quadratic with intercept), else 0.
    fit_intercept : bool
    lips : ndarray, float64
        Per-feature Lipschitz constants of the partial gradients.
    colnorm : ndarray, float64
        Feature norms used by gap-safe screening.
    rawnorm : ndarray, float64
        Euclidean norms of the (weighted, uncentred) columns the kernels read:
        they bound the change of a partial gradient by the change of the
        residual.
    rawnorm1 : ndarray, float64
        The same columns' L1 norms (bound with the residual's max-norm change).
    max_s : float
        Largest normalised sample weight (logistic screening radius).
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    # -- state at a given coefficient vector ------------------------------
    def state(self, w, b=0.0):
        """Return ``(st, b)`` consistent with ``w`` (see :mod:`sparseopt.kernels._cd`)."""
        if self.df_kind == _cd.DF_QUAD:
            st = self.y.copy()
            neg = np.zeros(self.n, dtype=self.dtype)
            _cd.x_w(self.is_sparse, self.X, self.indptr, self.indices, self.data,
                    w, neg)
            st -= neg
            b = self.b_y - float(self.mu @ w) if self.fit_intercept else 0.0
            return st, b
        st = np.zeros(self.n, dtype=self.dtype)
        _cd.x_w(self.is_sparse, self.X, self.indptr, self.indices, self.data, w, st)
        return st, (float(b) if self.fit_intercept else 0.0)

    def grad_vector(self, st, b):
        """``v`` such that the datafit gradient is ``X^T v`` (+ ``b mu`` for quadratic)."""
        if self.df_kind == _cd.DF_QUAD:
            return (-st / self.n).astype(self.dtype, copy=False)
        return (-self.s * self.y * expit(-self.y * (st + b))).astype(self.dtype,
                                                                     copy=False)

    def xt(self, v, skip=None, out=None):
        """``X^T v`` over the features not in ``skip`` (float64 output)."""
        if out is None:
            out = np.zeros(self.p)
        if skip is None:
            skip = np.zeros(self.p, dtype=bool)
        _cd.xt_v(self.is_sparse, self.X, self.indptr, self.indices, self.data,
                 np.ascontiguousarray(v, dtype=self.dtype), skip, out)
        return out

    def gradient(self, st, b, skip=None):
        """Gradient of the datafit in ``w`` (intercept at its current value).

        Entries in ``skip`` (screened features) are left at zero."""
        g = self.xt(self.grad_vector(st, b), skip)
        if self.df_kind == _cd.DF_QUAD and self.fit_intercept:
            g += b * self.mu
            if skip is not None:
                g[skip] = 0.0
        return g

    def datafit(self, st, b):
        return float(_cd.datafit_value(self.df_kind, self.y, self.s, self.n_scale,
                                       st, b))


def _check_sample_weight(sample_weight, n, dtype):
    if sample_weight is None:
        return None
    sw = check_array(sample_weight, "sample_weight", ndim=(0, 1))
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    if sw.shape[0] != n:
        raise ValueError(
            f"sample_weight has {sw.shape[0]} entries but X has {n} samples")
    if np.any(sw < 0):
        raise ValueError("sample_weight must be non-negative")
    total = float(sw.sum(dtype=np.float64))
    if not total > 0:
        raise ValueError("sample_weight must have a positive sum")
    return (sw / total).astype(np.float64)


def prepare_design(X, y, *, datafit="quadratic", sample_weight=None,
                   fit_intercept=True, check_input=True):
    """Validate and prepare ``(X, y)`` for the kernels.

    Parameters
    ----------
    X : array_like or sparse matrix, shape (n_samples, n_features)
        Dense (converted to Fortran order) or scipy.sparse / sparseopt
        CSR/BSR (converted to CSC).  Never modified.
    y : array_like, shape (n_samples,)
        Targets; for ``datafit="logistic"`` labels in {-1, +1}.
    datafit : {"quadratic", "logistic"}
    sample_weight : array_like or None
        Non-negative, normalised by their sum.
    fit_intercept : bool
    check_input : bool
        Check finiteness of the inputs (the estimators already did).

    Returns
    -------
    Design
    """
    if datafit not in ("quadratic", "logistic"):
        raise ValueError(f"datafit must be 'quadratic' or 'logistic', got {datafit!r}")
    Xs = to_csc(X)
    if Xs is not None:
        if Xs.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {Xs.shape}")
        if Xs.dtype.kind not in "fiub":
            raise TypeError(f"X must hold real numbers, got dtype {Xs.dtype}")
        in_dtype = float_dtype(Xs.dtype) if Xs.dtype.kind == "f" else \
            np.dtype(np.float64)
        if check_input:
            check_finite(Xs.data, "X")
        n, p = Xs.shape
    else:
        X = check_array(X, "X", ndim=2, finite=check_input)
        in_dtype = X.dtype
        n, p = X.shape
        if min(n, p) == 1:
            # a single row or column is both C- and F-contiguous, which numba
            # types as a separate layout: run it through the CSC kernel instead
            Xs = sp.csc_matrix(X)
    y = check_array(y, "y", ndim=1, finite=check_input)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but X has {n} samples")
    if n == 0:
        raise ValueError("X must have at least one sample")
    if p == 0:
        raise ValueError("X must have at least one feature")
    # the kernels always compute in float64 (one compiled specialisation);
    # results are cast back to ``in_dtype`` by the callers
    dtype = np.dtype(np.float64)
    sw = _check_sample_weight(sample_weight, n, dtype)
    is_sparse = Xs is not None
    quad = datafit == "quadratic"

    if quad:
        v = None if sw is None else np.sqrt(n * sw)
        y_t = y.astype(np.float64) if v is None else y * v
    else:
        v = None
        y_t = y.astype(np.float64)
        if not np.all(np.isin(y_t, (-1.0, 1.0))):
            raise ValueError("y must hold labels in {-1, +1} for the logistic datafit")
    s = np.full(n, 1.0 / n) if sw is None else sw

    # ----- design arrays in the working dtype --------------------------------
    if is_sparse:
        nnz = Xs.nnz
        # int32 indices whenever they fit (as scipy), whatever the input's dtype
        itype = np.int32 if max(nnz, n, p) < np.iinfo(np.int32).max else np.int64
        indptr = np.asarray(Xs.indptr, dtype=itype)
        indices = np.asarray(Xs.indices, dtype=itype)
        data = np.asarray(Xs.data, dtype=dtype)
        if v is not None:
            data = (data * v[indices]).astype(dtype, copy=False)
        # dummy dense operand; (2, 2) so that it is F- but not C-contiguous
        Xd = np.empty((2, 2), dtype=dtype, order="F")
        raw64 = np.asarray(Xs.data, dtype=np.float64)
        sq = np.empty(p)
        sum_v = np.empty(p)
        raw_sq = np.empty(p)
        wsq = np.empty(p)
        abs1 = np.empty(p)
        _cd.csc_col_stats(indptr, indices, raw64, data,
                          np.ones(n) if v is None else v,
                          np.empty(0) if quad else s, sq, sum_v, raw_sq, wsq, abs1)
    else:
        indptr = np.empty(1, np.int32)
        indices = np.empty(0, np.int32)
        data = np.empty(0, dtype=dtype)
        if v is not None:
            Xd = np.asfortranarray(X * v[:, None].astype(dtype), dtype=dtype)
        else:
            Xd = np.asfortranarray(X, dtype=dtype)
        X64 = Xd if dtype == np.float64 else Xd.astype(np.float64)
        sq = np.empty(p)
        sum_v = np.empty(p)
        abs1 = np.empty(p)
        _cd.dense_col_stats(X64, v if v is not None else np.ones(n), sq, sum_v, abs1)
        raw_sq = sq if v is None else np.einsum("ij,ij->j", X, X, dtype=np.float64)
        if not quad:
            wsq = (X64 * X64).T @ s
    y_k = np.ascontiguousarray(y_t, dtype=dtype)
    s_k = np.ascontiguousarray(s, dtype=dtype) if not quad else np.empty(0, dtype)

    if quad:
        mu = sum_v / n if fit_intercept else np.zeros(p)
        b_y = float((y_t @ (v if v is not None else np.ones(n))) / n) \
            if fit_intercept else 0.0
        lips = np.maximum(sq / n - mu ** 2, 0.0)
        # columns that are constant (zero after centring) cannot move
        lips[lips <= 1e-12 * max(float(sq.max(initial=0.0)) / n, 1e-300)] = 0.0
        colnorm = np.sqrt(n * lips)
        yc_sq = float(y_t @ y_t) / n - b_y ** 2
        P0 = 0.5 * max(yc_sq, 0.0)
        max_s = 1.0 / n
    else:
        mu = np.zeros(p)
        b_y = 0.0
        lips = 0.25 * wsq
        lips[lips <= 1e-12 * max(float(lips.max(initial=0.0)), 1e-300)] = 0.0
        colnorm = np.sqrt(raw_sq)
        pos = float(s[y_t > 0].sum())
        if fit_intercept:
            P0 = _entropy(pos)
        else:
            P0 = float(np.log(2.0))
        max_s = float(s.max())

    design = Design(
        is_sparse=is_sparse, X=Xd, indptr=indptr, indices=indices, data=data,
        n=n, p=p, dtype=np.dtype(dtype), in_dtype=np.dtype(in_dtype),
        df_kind=_cd.DF_QUAD if quad else _cd.DF_LOGISTIC, y=y_k, s=s_k,
        n_scale=float(n) if quad else 1.0,
        mu=np.ascontiguousarray(mu, dtype=np.float64), b_y=b_y,
        fit_intercept=bool(fit_intercept), lips=np.ascontiguousarray(lips),
        colnorm=colnorm, rawnorm=np.sqrt(sq), rawnorm1=abs1, max_s=max_s, P0=P0,
        datafit_name=datafit,
    )
    # intercept and gradient at w = 0 (the null model)
    w0 = np.zeros(p, dtype=dtype)
    if quad:
        st0, b0 = design.state(w0)
    else:
        b0 = float(np.log(pos / (1 - pos))) if fit_intercept and 0 < pos < 1 else 0.0
        st0, b0 = design.state(w0, b0)
    design.b0 = b0
    design.grad0 = design.gradient(st0, b0)
    design.grad0_inf = float(np.max(np.abs(design.grad0)))
    return design


def _entropy(p):
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-p * np.log(p) - (1 - p) * np.log(1 - p))


def group_lipschitz(design, grp_ptr, grp_idx):
    """Largest eigenvalue of each centred block's Gram matrix (scaled).

    For the quadratic datafit ``L_g = ||(X_g - v mu_g^T)||_2^2 / n``; for the
    logistic one ``||diag(sqrt(s)) X_g||_2^2 / 4``.
    """
    n_groups = grp_ptr.shape[0] - 1
    out = np.zeros(n_groups)
    quad = design.df_kind == _cd.DF_QUAD
    sizes = np.diff(grp_ptr)
    out_ptr = np.concatenate([[0], np.cumsum(sizes * sizes)]).astype(np.int64)
    grams = np.zeros(int(out_ptr[-1]))
    sw = np.ones(design.n) if quad else np.asarray(design.s, np.float64)
    _cd.group_grams(design.is_sparse, design.X, design.indptr, design.indices,
                    design.data, sw, np.asarray(grp_ptr, np.int64),
                    np.asarray(grp_idx, np.int64), grams, out_ptr)
    # batched eigenvalues per group size
    for sz in np.unique(sizes):
        gs = np.flatnonzero(sizes == sz)
        idx = out_ptr[gs][:, None] + np.arange(sz * sz)[None, :]
        G = grams[idx].reshape(-1, sz, sz)
        if quad:
            m = design.mu[np.asarray(grp_idx)[grp_ptr[gs][:, None] + np.arange(sz)]]
            G = G / design.n - m[:, :, None] * m[:, None, :]
        else:
            G = 0.25 * G
        out[gs] = np.maximum(np.linalg.eigvalsh(G)[:, -1], 0.0)
    scale = max(float(out.max(initial=0.0)), 1e-300)
    out[out <= 1e-12 * scale] = 0.0
    return out
