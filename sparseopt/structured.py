"""Monarch structured matrices (Dao et al., ICML 2022).

* :class:`MonarchMatrix` -- ``M = P_out L G R`` with ``L``, ``R`` block-diagonal
  (our :class:`~sparseopt.BSR`), products with vectors and batches.
* :func:`monarch_project` -- the optimal (Frobenius) Monarch approximation of
  a dense matrix, closed form by blockwise truncated SVDs; square with any
  divisor block count, rectangular, rank ``r``, optional zero padding.
* :class:`MonarchApproximation` -- a scikit-learn transformer that fits
  :func:`monarch_project` to a weight matrix and applies it as a linear map.

The layout and the proof that the projection is optimal are in
:mod:`sparseopt.solvers.monarch`; the user guide is ``docs/monarch.md``.

References
----------
T. Dao, B. Chen, N. Sohoni, A. Desai, M. Poli, J. Grogan, A. Liu, A. Rao,
A. Rudra, C. Ré. "Monarch: Expressive Structured Matrices for Efficient and
Accurate Training", ICML 2022, arXiv:2204.00595.
"""

import math
import numbers
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from sparseopt._backend import array_library, get_backend
from sparseopt._validation import check_array, check_positive_int
from sparseopt.formats import BSR
from sparseopt.formats._common import array_module
from sparseopt.solvers import _monarch_xp as _xp
from sparseopt.solvers import monarch as _core
from sparseopt.solvers._xp_checks import (
    check_array_xp,
    device_backend,
    fetch,
    float_dtype_xp,
)
from sparseopt.solvers._xp_validation import validate_data_xp

__all__ = ["MonarchApproximation", "MonarchMatrix", "monarch_project"]

_KERNELS = ("auto", "blockdiag", "bsr", "bmm")
# Up to this many columns the fused kernel uses plain loops instead of one BLAS
# GEMM per block (measured crossover at n = 256..4096, 4 to 64 blocks: loops
# 1.0-2x faster for 1-2 columns, within 25 % either way at 4, BLAS 1.3-2.5x
# faster from 8).
_SMALL_BATCH = 4
_PANEL_BYTES = 16 << 20   # scratch (inner panel) of the fused kernel at most this size


def _panel_width(rows, B, itemsize):
    """Column panel width of the fused kernel: the whole batch unless the
    ``(rows, B)`` intermediate exceeds ``_PANEL_BYTES``, then a multiple of 16.

    Measured at ``n = 4096``, float32/float64, 4 to 64 blocks: wider panels are
    never slower (fewer, larger GEMMs); keeping the intermediate in L2 with
    64-256 columns lost 5-25 %, so panels only bound the scratch memory.
    """
    w = _PANEL_BYTES // max(rows * itemsize, 1)
    if w >= B:
        return B
    return max(16, w // 16 * 16)


def _blockdiag_bsr(blocks):
    """Block-diagonal :class:`BSR` sharing ``blocks`` (shape ``(nb, R, C)``)."""
    xp = array_module(blocks)
    nb, R, C = blocks.shape
    idx = xp.arange(nb, dtype=np.int32)
    indptr = xp.arange(nb + 1, dtype=np.int32)
    out = BSR((blocks, idx, indptr), shape=(nb * R, nb * C), check=False)
    out._sorted = out._canonical = True
    return out


def _permutation_bsr(cols, n, nx=None):
    """``n x n`` permutation matrix with a one at ``(i, cols[i])``, as BSR (on ``nx``'s device)."""
    parts = (np.ones((n, 1, 1)), cols.astype(np.int32), np.arange(n + 1, dtype=np.int32))
    if nx is not None:
        parts = tuple(nx.asarray(a) for a in parts)
    out = BSR(parts, shape=(n, n), check=False)
    out._sorted = out._canonical = True
    return out


def _as_blocks(A, name):
    """3-D block array from a ``(nb, R, C)`` array or a block-diagonal BSR."""
    if isinstance(A, BSR):
        nb = A.indptr.shape[0] - 1
        ok = (A.n_blocks == nb
              and np.array_equal(np.asarray(A.indices), np.arange(nb))
              and np.array_equal(np.asarray(A.indptr), np.arange(nb + 1))
              and A.shape == (nb * A.blocksize[0], nb * A.blocksize[1]))
        if not ok:
            raise ValueError(f"{name} must be block-diagonal: block i in block row i")
        return A.data
    if hasattr(A, "toarray") or hasattr(A, "todense"):
        raise TypeError(f"{name} must be a (nblocks, R, C) array or a block-diagonal "
                        f"sparseopt.BSR, got {type(A).__name__}")
    if not isinstance(A, np.ndarray) and array_library(A) != "numpy":
        # device blocks (any array-API namespace): checked where they live
        return check_array_xp(get_backend(A), A, name, ndim=3)
    xp = array_module(A)
    if xp is np:
        return check_array(A, name, ndim=3, order="C")
    A = xp.ascontiguousarray(A)
    if A.ndim != 3:
        raise ValueError(f"{name} must have 3 dimensions, got shape {A.shape}")
    return A


_CONTROLLER = []


class _blas_threads:
    """Context manager limiting BLAS threads (no-op for ``None``); ~3 us per use."""

    def __init__(self, n):
        self.n = n
        self._ctx = None

    def __enter__(self):
        if self.n is not None:
            if not _CONTROLLER:
                from threadpoolctl import ThreadpoolController

                _CONTROLLER.append(ThreadpoolController())
            self._ctx = _CONTROLLER[0].limit(limits=self.n, user_api="blas")
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def _result_dtype(*dtypes):
    dtype = np.result_type(*dtypes)
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


class MonarchMatrix:
    """A Monarch matrix ``M = P_out L G R`` with block-diagonal ``L`` and ``R``.

    For ``rank = 1``, ``m = n = N`` and ``nblocks_out = nblocks_in = b`` this is
    the paper's ``M = P L P^T R`` with ``P`` the reshape-``(b, n/b)``-transpose
    permutation.  In general (see :mod:`sparseopt.solvers.monarch`)

    .. math::

        M = \\sum_{j=1}^{\\mathrm{rank}} P_{(l, m)} L_j P_{(l, N)}^\\top R_j

    where ``R_j`` has ``k`` diagonal blocks ``(N/k, n/k)`` and ``L_j`` has ``l``
    diagonal blocks ``(m/l, N/l)``; the terms are stored stacked along the inner
    dimension, so ``L`` and ``R`` are each one block-diagonal BSR matrix.  A
    product costs ``2 * n_params`` flops per column instead of ``2 m n``.

    Parameters
    ----------
    L : array of shape (l, s, rank * r) or block-diagonal BSR
        Output blocks (applied second).
    R : array of shape (k, rank * q, p) or block-diagonal BSR
        Input blocks (applied first); term ``j`` is in rows ``j::rank`` of each
        block (term ``j`` of ``L`` in columns ``j*r:(j+1)*r``).  ``k * q == l * r``
        is the inner size.
    rank : int, default=1
        Number of stacked Monarch terms.
    shape : tuple of int, optional
        Logical shape ``(m, n)`` when the blocks describe a zero-padded matrix
        of shape ``(l * s, k * p)`` (see ``monarch_project(..., pad=True)``):
        products pad their input with zeros and drop the padded output rows.

    Attributes
    ----------
    L, R : BSR
        The block-diagonal factors (their ``data`` shares the block arrays).
    shape : tuple of int
    dtype : numpy dtype
    nblocks : tuple of int
        ``(l, k)``, the block counts of ``L`` and ``R``.
    rank, inner_size : int
    n_params : int
        Stored entries of ``L`` and ``R``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import MonarchMatrix
    >>> rng = np.random.default_rng(0)
    >>> M = MonarchMatrix(rng.standard_normal((4, 4, 4)), rng.standard_normal((4, 4, 4)))
    >>> M.shape, M.n_params
    ((16, 16), 128)
    >>> x = rng.standard_normal(16)
    >>> bool(np.allclose(M @ x, M.todense() @ x))
    True
    """

    __array_priority__ = 10.2
    ndim = 2
    format = "monarch"

    def __init__(self, L, R, *, rank=1, shape=None):
        Lb = _as_blocks(L, "L")
        Rb = _as_blocks(R, "R")
        rank = check_positive_int(rank, "rank")
        l, s, rr = (int(d) for d in Lb.shape)
        k, rq, p = (int(d) for d in Rb.shape)
        if rr % rank or rq % rank:
            raise ValueError(f"rank={rank} must divide L.shape[2]={rr} and R.shape[1]={rq}")
        if k * rq != l * rr:
            raise ValueError(
                f"inner sizes differ: R has {k} blocks of {rq} rows ({k * rq}), "
                f"L has {l} blocks of {rr} columns ({l * rr})"
            )
        if min(l, s, rr, k, rq, p) < 1:
            raise ValueError(f"empty blocks: L.shape={Lb.shape}, R.shape={Rb.shape}")
        self._layout = _core.MonarchLayout(l, k, s, p, k * rq // rank, rank)
        self._nx = device_backend(L=Lb, R=Rb)   # None: NumPy blocks, the CPU kernels
        self._dev = {}                          # device index arrays, copied once
        if self._nx is None:
            dtype = _result_dtype(Lb.dtype, Rb.dtype)
            self._L = Lb.astype(dtype, copy=False)
            self._R = Rb.astype(dtype, copy=False)
        else:
            xp = self._nx.xp
            dtype = float_dtype_xp(xp, Lb.dtype, Rb.dtype)
            self._L = xp.astype(Lb, dtype, copy=False)
            self._R = xp.astype(Rb, dtype, copy=False)
        padded = self._layout.shape
        if shape is None:
            shape = padded
        shape = tuple(int(d) for d in shape)
        if (len(shape) != 2 or not 0 < shape[0] <= padded[0]
                or not 0 < shape[1] <= padded[1]):
            raise ValueError(f"shape {shape} must be positive and fit in the "
                             f"block shape {padded}")
        self._shape = shape
        self._transposed = False
        self._cast = {}

    # ------------------------------------------------------------------ info
    @property
    def shape(self):
        m, n = self._shape
        return (n, m) if self._transposed else (m, n)

    @property
    def padded_shape(self):
        m, n = self._layout.shape
        return (n, m) if self._transposed else (m, n)

    @property
    def dtype(self):
        return self._L.dtype

    @property
    def layout(self):
        """The :class:`~sparseopt.solvers.monarch.MonarchLayout` (untransposed)."""
        return self._layout

    @property
    def nblocks(self):
        return (self._layout.nblocks_out, self._layout.nblocks_in)

    @property
    def rank(self):
        return self._layout.rank

    @property
    def inner_size(self):
        return self._layout.inner

    @property
    def n_params(self):
        return self._layout.n_params

    @property
    def L_blocks(self):
        """``(l, s, rank * r)`` array of the diagonal blocks of ``L``."""
        return self._L

    @property
    def R_blocks(self):
        """``(k, rank * q, p)`` array of the diagonal blocks of ``R``."""
        return self._R

    @property
    def L(self):
        return _blockdiag_bsr(self._L)

    @property
    def R(self):
        return _blockdiag_bsr(self._R)

    @property
    def T(self):
        """The transpose (a view sharing the blocks)."""
        out = object.__new__(MonarchMatrix)
        out.__dict__.update(self.__dict__)
        out._transposed = not self._transposed
        return out

    def __repr__(self):
        t = ".T" if self._transposed else ""
        return (f"<MonarchMatrix{t} {self.shape[0]}x{self.shape[1]} nblocks={self.nblocks} "
                f"rank={self.rank} inner={self.inner_size} params={self.n_params} "
                f"dtype={self.dtype}>")

    def astype(self, dtype):
        """A copy with blocks cast to ``dtype`` (float32 or float64)."""
        try:
            dtype = np.dtype(dtype)
        except TypeError:  # a device namespace's dtype object
            xp = None if self._nx is None else self._nx.xp
            if xp is None or dtype not in (xp.float32, xp.float64):
                raise ValueError(f"dtype must be float32 or float64, got {dtype}") from None
            dtype = np.dtype(np.float32 if dtype == xp.float32 else np.float64)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        if self._nx is not None:
            xp = self._nx.xp
            dtype = xp.float32 if dtype == np.float32 else xp.float64
        L, R = self._cast_blocks(dtype)
        out = MonarchMatrix(L, R, rank=self.rank, shape=self._shape)
        return out.T if self._transposed else out

    def _cast_blocks(self, dtype):
        if self._nx is None:
            return self._L.astype(dtype), self._R.astype(dtype)
        xp = self._nx.xp
        return xp.astype(self._L, dtype), xp.astype(self._R, dtype)

    def _blocks_as(self, dtype):
        if dtype == self.dtype:
            return self._L, self._R
        if dtype not in self._cast:
            self._cast[dtype] = self._cast_blocks(dtype)
        return self._cast[dtype]

    # -------------------------------------------------------------- dense etc
    def todense(self):
        """The dense matrix (``shape``), built slab by slab in ``O(m n rank N / (l k))``.

        On the blocks' device for device blocks (batched matmul of the slab factors).
        """
        if self._nx is not None:
            D = _xp.blocks_to_dense_xp(self._nx, self._L, self._R, self._layout)
            D = D[: self._shape[0], : self._shape[1]]
            return D.T if self._transposed else D
        D = _core.blocks_to_dense(self._L, self._R, self._layout)
        D = D[: self._shape[0], : self._shape[1]]
        return np.ascontiguousarray(D.T if self._transposed else D)

    toarray = todense

    def to_bsr(self):
        """The four sparse factors ``[P_out, L, G, R]`` with ``M = P_out @ L @ G @ R``.

        ``P_out`` and ``G`` are permutation matrices (BSR with 1x1 blocks), ``L``
        and ``R`` the block-diagonal factors sharing this matrix's blocks.  For a
        transposed matrix the list is ``[R.T, G.T, L.T, P_out.T]`` (lazy BSR
        transposes).  The product is the padded matrix when ``shape`` is smaller
        than ``padded_shape``.
        """
        lay = self._layout
        m, _ = lay.shape
        inv_out = np.empty(m, dtype=np.int64)
        inv_out[lay.out_pos()] = np.arange(m)
        P = _permutation_bsr(inv_out, m, self._nx)
        G = _permutation_bsr(lay.mid_src(), lay.rank * lay.inner, self._nx)
        factors = [P, self.L, G, self.R]
        if self._transposed:
            return [f.T for f in factors[::-1]]
        return factors

    # --------------------------------------------------------------- products
    def matmul(self, X, *, kernel="auto"):
        """``M @ X`` for ``X`` of shape ``(n,)`` or ``(n, B)``.

        Parameters
        ----------
        X : array_like (NumPy or CuPy)
            On the blocks' device: host blocks take host arrays, device (CuPy)
            blocks device arrays; mixing is a ``TypeError``.
        kernel : {"auto", "blockdiag", "bsr", "bmm"}
            ``"blockdiag"``: one BLAS GEMM per block with the permutations
            folded into the operands' row strides, no copies (``np.matmul`` on
            strided views for rank 1, a Numba kernel calling SciPy's BLAS for
            rank > 1, plain Numba loops for up to 4 columns; NumPy only).
            ``"bsr"``: the backend's
            BSR SpMM kernels (:func:`sparseopt.spmm` / :func:`sparseopt.spmm_t`
            on NumPy, the numba.cuda BSR kernels on CuPy) for ``L`` and ``R``
            with the permutations as gathers.  ``"bmm"``: two batched
            ``matmul`` calls (cuBLAS batched GEMM on CuPy).  ``"auto"``:
            ``"blockdiag"`` for NumPy, ``"bmm"`` for device arrays (dense
            blocks are what batched GEMM is tuned for; see ``docs/gpu.md``).

        Returns
        -------
        ndarray of shape ``(m,)`` or ``(m, B)``; float32 only when both operands are.
        """
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
        if self._nx is not None or not isinstance(X, np.ndarray):
            nx = device_backend(M=self._L, X=X)
            if nx is not None:
                return self._matmul_xp(nx, X, kernel)
        xp = array_module(X)
        X = xp.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.ndim not in (1, 2):
            raise ValueError(f"X must be 1-D or 2-D, got shape {X.shape}")
        m, n = self.shape
        if X.shape[0] != n:
            raise ValueError(f"dimension mismatch: M has {n} columns, X has shape {X.shape}")
        if kernel == "auto":
            kernel = "blockdiag" if xp is np else "bsr"
        vector = X.ndim == 1
        X2 = X[:, None] if vector else X
        # the fused BLAS kernel checks X panel by panel while it is in cache
        in_kernel = kernel == "blockdiag" and X2.shape[1] > _SMALL_BATCH
        if (xp is np and not in_kernel and X.dtype.kind == "f" and X.size
                and not np.isfinite(X).all()):
            raise ValueError("X contains NaN or infinity")
        dtype = _result_dtype(self.dtype, X.dtype)
        n_pad = self.padded_shape[1]
        if n_pad != n:
            Xp = xp.zeros((n_pad, X2.shape[1]), dtype=dtype)
            Xp[:n] = X2
        else:
            Xp = xp.ascontiguousarray(X2.astype(dtype, copy=False))
        out = self._apply(Xp, dtype, kernel, xp)[:m]
        return out[:, 0] if vector else out

    def _matmul_xp(self, nx, X, kernel):
        """``M @ X`` on the blocks' device (array-API code and the backend's kernels)."""
        xp = nx.xp
        if not xp.isdtype(X.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.ndim not in (1, 2):
            raise ValueError(f"X must be 1-D or 2-D, got shape {tuple(X.shape)}")
        m, n = self.shape
        if X.shape[0] != n:
            raise ValueError(f"dimension mismatch: M has {n} columns, X has shape "
                             f"{tuple(X.shape)}")
        if kernel == "blockdiag":
            raise ValueError("kernel='blockdiag' needs NumPy arrays; use 'bsr' or 'bmm'")
        dtype = float_dtype_xp(xp, self.dtype,
                               None if xp.isdtype(X.dtype, "bool") else X.dtype)
        vector = X.ndim == 1
        X2 = xp.astype(X[:, None] if vector else X, dtype)
        n_pad = self.padded_shape[1]
        if n_pad != n:
            Xp = xp.zeros((n_pad, X2.shape[1]), dtype=dtype)
            Xp[:n, :] = X2
            X2 = Xp
        L, R = self._blocks_as(dtype)
        product = _xp.bsr_product if kernel == "bsr" else _xp.bmm_product
        out = product(nx, self._dev, L, R, self._layout, X2, self._transposed)[:m, :]
        return out[:, 0] if vector else out

    def _apply(self, X, dtype, kernel, xp):
        lay = self._layout
        L, R = self._blocks_as(dtype)
        t = self._transposed
        B = X.shape[1]
        if kernel == "blockdiag":
            if xp is not np:
                raise ValueError("kernel='blockdiag' needs NumPy arrays; use 'bsr' or 'bmm'")
            from sparseopt.kernels._monarch import (
                all_finite,
                monarch_matmul,
                monarch_matmul_small,
                monarch_matmul_t,
                monarch_matmul_t_small,
            )

            m, n = lay.shape
            out = np.empty((n, B) if t else (m, B), dtype=dtype)
            if B <= _SMALL_BATCH:     # per-call BLAS overhead dominates
                if t:
                    monarch_matmul_t_small(L, R, lay.rank, X, out)
                else:
                    monarch_matmul_small(L, R, lay.rank, X, out)
                return out
            rows = R.shape[0] * R.shape[1]          # stacked inner size rank * N
            w = _panel_width(rows, B, out.itemsize)
            if lay.rank == 1:
                # np.matmul on strided views: one GEMM per block through NumPy's
                # BLAS; faster than the Numba kernel through SciPy's BLAS at every
                # size measured (n = 4096, 4 to 64 blocks: 2-27 %; n = 256-1024:
                # 1.2-2x; the two wheels bundle different OpenBLAS builds)
                if not all_finite(X):
                    raise ValueError("X contains NaN or infinity")
                strided = _core.monarch_rmatmul_strided if t else _core.monarch_matmul_strided
                with _blas_threads(self._blas_thread_limit(B)):
                    return strided(L, R, lay, X, out, w)
            work = np.empty(rows * w, dtype=dtype)   # NumPy: huge pages for large arrays
            with _blas_threads(self._blas_thread_limit(B)):
                if t:
                    finite = monarch_matmul_t(L, R, lay.rank, X, out, work, w)
                else:
                    finite = monarch_matmul(L, R, lay.rank, X, out, work, w)
            if not finite:
                raise ValueError("X contains NaN or infinity")
            return out
        if kernel == "bmm":
            if t:
                return _core.monarch_rmatmul_reference(L, R, lay, X)
            return _core.monarch_matmul_reference(L, R, lay, X)
        from sparseopt.linalg import spmm, spmm_t

        Lm, Rm = _blockdiag_bsr(L), _blockdiag_bsr(R)
        if not t:
            Y1 = spmm(Rm, X)
            Y1 = Y1[self._index(lay.mid_src(), xp)]
            Y2 = spmm(Lm, Y1)
            return Y2[self._index(self._inv_out(), xp)]
        Z = X[self._index(lay.out_pos(), xp)]
        U = spmm_t(Lm, Z)
        U = U[self._index(lay.mid_dst(), xp)]
        return spmm_t(Rm, U)

    def _blas_thread_limit(self, B):
        """BLAS threads for the per-block GEMMs (``None``: leave BLAS alone).

        ``n_threads`` from :func:`sparseopt.config_context` wins.  Otherwise
        GEMMs below ``2**24`` multiply-adds run on one thread: threading such
        small products costs more in synchronisation than it gains, and on a
        busy machine far more (measured 10-100x slower at load 6 on 2 cores).
        """
        from sparseopt._config import get_config

        n = get_config()["n_threads"]
        if n is not None:
            return n
        lay = self._layout
        work = max(lay.R_shape[1] * lay.R_shape[2], lay.L_shape[1] * lay.L_shape[2] // lay.rank)
        return 1 if work * B < 2**24 else None

    def _inv_out(self):
        lay = self._layout
        inv = np.empty(lay.shape[0], dtype=np.int64)
        inv[lay.out_pos()] = np.arange(lay.shape[0])
        return inv

    @staticmethod
    def _index(idx, xp):
        return idx if xp is np else xp.asarray(idx)

    def __matmul__(self, other):
        if isinstance(other, MonarchMatrix):
            return NotImplemented
        return self.matmul(other)

    def __rmatmul__(self, other):
        """``X @ M`` for ``X`` of shape ``(B, m)`` or ``(m,)``: ``(M.T @ X.T).T``."""
        if not isinstance(other, np.ndarray) and array_library(other) != "numpy":
            if other.ndim == 1:                       # device array: stays there
                return self.T.matmul(other)
            return self.T.matmul(other.T).T
        xp = array_module(other)
        other = xp.asarray(other)
        if other.ndim == 1:
            return self.T.matmul(other)
        return self.T.matmul(other.T).T


# ---------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------
def _check_nblocks(nblocks, shape):
    if isinstance(nblocks, str):
        if nblocks != "auto":
            raise ValueError(f"nblocks must be a positive int, a pair or 'auto', got {nblocks!r}")
        b = _core.default_nblocks(*shape)
        return (b, b)
    if isinstance(nblocks, numbers.Integral) and not isinstance(nblocks, bool):
        b = check_positive_int(nblocks, "nblocks")
        return (b, b)
    try:
        pair = tuple(nblocks)
    except TypeError:
        raise TypeError(f"nblocks must be a positive int, a pair of ints or 'auto', "
                        f"got {type(nblocks).__name__}") from None
    if len(pair) != 2:
        raise ValueError(f"nblocks must be an int or a pair (out, in), got {nblocks!r}")
    return tuple(check_positive_int(b, "nblocks") for b in pair)


def monarch_project(W, nblocks="auto", *, rank=1, inner_size=None, pad=False):
    """Optimal Monarch approximation of a dense matrix in Frobenius norm.

    Solves ``min ||W - M||_F`` over Monarch matrices ``M`` of the given layout.
    The problem is non-convex, but every parameter of ``L`` and ``R`` belongs to
    exactly one ``(m/l) x (n/k)`` slab of ``M`` (after a row permutation), and
    each slab is the product of its own ``(m/l) x c`` and ``c x (n/k)`` factors
    (``c = rank * N / (l k)`` inner indices, up to rounding).  The problem thus
    splits into independent best-rank-``c`` approximations, solved exactly by
    truncated SVDs (Eckart-Young-Mirsky); ``Dao et al. (2022)``, Theorem 1, is
    the square ``b = sqrt(n)``, ``c = 1`` case.

    Parameters
    ----------
    W : array_like of shape (m, n)
        Dense real matrix (float32 stays float32; the SVDs run in float64).
    nblocks : int, (int, int) or "auto", default="auto"
        Block counts ``(l, k)`` of ``L`` (output side) and ``R`` (input side).
        An int uses it for both.  It must divide ``m`` (``l``) and ``n`` (``k``)
        unless ``pad=True``.  ``"auto"``: the largest common divisor of ``m``
        and ``n`` not above ``sqrt(min(m, n))``.
    rank : int, default=1
        Number of Monarch terms summed (Monarch rank ``r``).
    inner_size : int, optional
        Inner size ``N`` of one term; default ``min(m, n)`` (padded sizes), as in
        the Monarch paper's ``MonarchLinear``.  Must be a multiple of ``l`` and ``k``.
    pad : bool, default=False
        Zero-pad ``W`` to multiples of the block counts instead of raising.  The
        result is then optimal for the zero-padded matrix (the padded rows and
        columns are fitted to zero), which can be suboptimal for ``W`` itself.

    Returns
    -------
    MonarchMatrix
        Of shape ``(m, n)`` and ``W``'s float dtype.

    Raises
    ------
    ValueError
        Non-finite ``W``, a block count that does not divide the sizes (without
        ``pad``), an inner size that is not a multiple of the block counts.

    Notes
    -----
    Cost: one Gram matrix and a partial symmetric eigendecomposition (LAPACK
    ``syevr``, only the ``c`` wanted eigenvectors) per slab, or a batched SVD for
    tiny or nearly full-rank slabs: ``O(m n min(m/l, n/k))`` flops.

    References
    ----------
    T. Dao et al., "Monarch: Expressive Structured Matrices for Efficient and
    Accurate Training", ICML 2022, Section 3.3 and Appendix.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import monarch_project
    >>> rng = np.random.default_rng(0)
    >>> A = np.kron(rng.standard_normal((8, 8)), rng.standard_normal((8, 8)))
    >>> M = monarch_project(A, nblocks=8)     # Kronecker products are Monarch
    >>> bool(np.linalg.norm(M.todense() - A) < 1e-12 * np.linalg.norm(A))
    True
    """
    nx = device_backend(W=W)   # None for host input; device input stays on its device
    if nx is None:
        W = check_array(W, "W", ndim=2, min_shape=(1, 1))
    else:
        W = check_array_xp(nx, W, "W", ndim=2, min_shape=(1, 1))
    m, n = W.shape
    l, k = _check_nblocks(nblocks, (m, n))
    rank = check_positive_int(rank, "rank")
    if inner_size is not None:
        inner_size = check_positive_int(inner_size, "inner_size")
    if not isinstance(pad, bool | np.bool_):
        raise TypeError(f"pad must be a bool, got {type(pad).__name__}")
    if m % l or n % k:
        if not pad:
            raise ValueError(
                f"W has shape {(m, n)}: nblocks (out={l}, in={k}) must divide the "
                f"number of rows ({m}) and columns ({n}); pass pad=True to zero-pad"
            )
        mp, np_ = math.ceil(m / l) * l, math.ceil(n / k) * k
        Wp = (np if nx is None else nx.xp).zeros((mp, np_), dtype=W.dtype)
        Wp[:m, :n] = W
        W = Wp
    layout = _core.make_layout(tuple(W.shape), (l, k), rank=rank, inner=inner_size)
    if nx is None:
        Lb, Rb = _core.project_blocks(W, layout)
    else:  # batched SVDs of the slabs on the device
        Lb, Rb = _xp.project_blocks_xp(nx, W, layout)
    return MonarchMatrix(Lb, Rb, rank=rank, shape=(m, n))


# ---------------------------------------------------------------------------
# estimator
# ---------------------------------------------------------------------------
_ESTIMATOR_DTYPES = [np.float64, np.float32]


class MonarchApproximation(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Fit the optimal Monarch approximation of a weight matrix; apply it as a layer.

    ``fit(W)`` computes ``monarch_ = monarch_project(W, ...)`` for the matrix
    ``W`` of shape ``(m, n)`` (rows play the role of samples for scikit-learn,
    so ``n_features_in_ = n``) and reports ``relative_error_ =
    ||W - M||_F / ||W||_F``.  ``transform(X)`` applies the fitted matrix as a
    linear layer, ``X @ M.T`` (shape ``(n_samples, m)``), through the fast
    Monarch product -- the dense-to-sparse replacement of a weight matrix used
    in the paper's fine-tuning experiments.

    Parameters
    ----------
    nblocks : int, (int, int) or "auto", default="auto"
        See :func:`monarch_project`.
    rank : int, default=1
        Monarch rank (number of summed terms).
    inner_size : int or None, default=None
        Inner size of one term (default ``min(m, n)``).
    pad : bool, default=False
        Zero-pad sizes that the block counts do not divide.

    Attributes
    ----------
    monarch_ : MonarchMatrix
    relative_error_ : float
    n_params_ : int
        Stored parameters of ``monarch_``.
    compression_ : float
        ``n_params_ / (m * n)``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``W`` has string column names.

    Notes
    -----
    Device (CuPy or other array-API) input stays on its device: ``W`` is
    validated there with the messages of scikit-learn's ``validate_data``,
    projected by :func:`monarch_project`'s device path (batched SVDs), and
    ``monarch_`` holds device blocks; :meth:`transform` of device input runs
    the device product and returns a device array.  ``relative_error_``,
    ``n_params_`` and ``compression_`` are Python numbers (the two norms
    cross to the host in one transfer).  A model fitted on one side refuses
    input from the other with a ``TypeError`` naming which is where.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt import MonarchApproximation
    >>> W = np.random.default_rng(0).standard_normal((64, 64))
    >>> est = MonarchApproximation(nblocks=8).fit(W)
    >>> est.n_params_, round(est.compression_, 3)
    (1024, 0.25)
    >>> est.transform(np.ones((2, 64))).shape
    (2, 64)
    """

    _parameter_constraints: ClassVar[dict] = {
        "nblocks": [Interval(numbers.Integral, 1, None, closed="left"),
                    StrOptions({"auto"}), tuple, list],
        "rank": [Interval(numbers.Integral, 1, None, closed="left")],
        "inner_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "pad": ["boolean"],
    }

    def __init__(self, nblocks="auto", *, rank=1, inner_size=None, pad=False):
        self.nblocks = nblocks
        self.rank = rank
        self.inner_size = inner_size
        self.pad = pad

    def fit(self, X, y=None):
        """Fit the Monarch approximation of the matrix ``X`` (shape ``(m, n)``).

        Parameters
        ----------
        X : array_like of shape (m, n)
            The weight matrix to approximate (NumPy-like on the host, or a
            CuPy / array-API array, which stays on its device).
        y : None
            Ignored.

        Returns
        -------
        self
        """
        self._validate_params()
        nx = device_backend(X=X)   # None for host input: the scikit-learn path
        if nx is None:
            W = validate_data(self, X, dtype=_ESTIMATOR_DTYPES, ensure_min_samples=1)
        else:
            W = validate_data_xp(nx, self, X, reset=True).X
        self.monarch_ = monarch_project(W, self.nblocks, rank=self.rank,
                                        inner_size=self.inner_size, pad=self.pad)
        if nx is None:
            norm = float(np.linalg.norm(W))
            diff = float(np.linalg.norm(self.monarch_.todense().astype(np.float64) - W))
        else:  # both norms in float64 on the device, fetched in one transfer
            xp = nx.xp
            W64 = xp.astype(W, xp.float64)
            D = xp.astype(self.monarch_.todense(), xp.float64) - W64
            norm, diff = fetch(nx, xp.sqrt(xp.sum(W64 * W64)), xp.sqrt(xp.sum(D * D)))
        self.relative_error_ = diff / norm if norm > 0 else 0.0
        m, n = (int(d) for d in W.shape)
        self.n_params_ = self.monarch_.n_params
        self.compression_ = self.n_params_ / (m * n)
        self._n_features_out = m
        return self

    def transform(self, X):
        """Apply the fitted matrix as a linear layer: ``X @ monarch_.T``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n)
            On the side the model was fitted on (host or device).

        Returns
        -------
        ndarray of shape (n_samples, m)
            A device array for device input; float32 only when ``X`` and
            ``monarch_`` both are.

        Raises
        ------
        TypeError
            ``X`` on the host and ``monarch_`` on a device, or the reverse.
        """
        check_is_fitted(self)
        nx = device_backend(X=X, monarch_=self.monarch_.L_blocks)   # mixing: TypeError
        if nx is None:
            X = validate_data(self, X, dtype=_ESTIMATOR_DTYPES, reset=False)
            return np.ascontiguousarray(self.monarch_.matmul(X.T).T)
        X = validate_data_xp(nx, self, X, reset=False).X
        Y = self.monarch_.matmul(X.T).T
        contiguous = getattr(nx.xp, "ascontiguousarray", None)   # CuPy: C order as on the host
        return Y if contiguous is None else contiguous(Y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
