"""Fused Monarch products: block-diagonal GEMMs with the permutations in the strides.

``M @ X = P_out (L (G (R X)))`` with ``L`` and ``R`` block-diagonal (the data
arrays of their BSR containers, shapes ``(l, s, rank * r)`` and
``(k, rank * q, p)``, see :mod:`sparseopt.solvers.monarch` for the layout).

The permutations need no copies: with ``R``'s stacked rows ordered
``(inner index t, term j)`` the inner vector is ``Y[t * rank + j]``, and the
rows that ``L`` block ``ll`` reads for term ``j`` are ``t = rr * l + ll``, i.e.
every ``(l * rank)``-th row of ``Y`` starting at ``ll * rank + j``; the output
rows of block ``ll`` are every ``l``-th row from ``ll``.  Both are plain
matrices with a larger leading dimension, so each block is one BLAS ``?gemm``
call on strided operands (C-ordered ``(rows, batch)`` arrays, row stride a
multiple of the batch).  The GEMM is called directly through the function
pointers that ``scipy.linalg.cython_blas`` exports, registered as LLVM
symbols so that the compiled kernels can still be cached on disk.

The batch is processed in column panels (the whole batch unless the inner
``(rank N, B)`` intermediate exceeds a scratch budget, see
``sparseopt.structured._panel_width``); the scratch comes from the caller.
Measured at ``n = 4096, B = 1024``, one thread: the time is the GEMMs plus
streaming ``X`` in and ``out`` back (about 15 ms for 64 blocks against 330 ms
for the dense GEMM, float32).  Narrow panels that keep the intermediate in L2
(64-256 columns) were 5-25 % slower (smaller GEMMs), padding the row strides
of the intermediate or of ``out`` against cache-set aliasing changed nothing,
and a contiguous second-stage output plus a permutation copy was 40 % slower
than writing ``out`` through the strided GEMM.

Compared with the generic BSR kernel (:mod:`sparseopt.kernels._bsr`), which
runs scalar loops per block row, the GEMM does the register and cache
blocking; compared with a batched ``matmul`` it saves the two permutation
copies.
"""

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

_VOIDP13 = types.void(*([types.voidptr] * 13))
for _name in ("sgemm", "dgemm"):
    llvm.add_symbol(f"sparseopt_monarch_{_name}",
                    get_cython_function_address("scipy.linalg.cython_blas", _name))
_sgemm = types.ExternalFunction("sparseopt_monarch_sgemm", _VOIDP13)
_dgemm = types.ExternalFunction("sparseopt_monarch_dgemm", _VOIDP13)

_N = ord("N")
_T = ord("T")


@njit(cache=True, nogil=True)
def _gemm(trans_a, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, m, n, k, beta):
    """Row-major ``C[m, n] = op(A)[m, k] @ B[k, n] + beta * C`` on flat arrays.

    ``a``, ``b``, ``c`` are 1-D views of C-ordered storage; ``*_off`` the offset
    of the first element and ``ld*`` the row strides (in elements).  With
    ``trans_a`` the stored ``A`` is ``(k, m)``.  BLAS is column-major, so this
    computes ``C^T = B^T op(A)^T``.
    """
    ints = np.empty(6, dtype=np.int32)
    ints[0] = n
    ints[1] = m
    ints[2] = k
    ints[3] = ldb
    ints[4] = lda
    ints[5] = ldc
    scal = np.empty(2, dtype=c.dtype)
    scal[0] = 1.0
    scal[1] = beta
    ch = np.empty(2, dtype=np.uint8)
    ch[0] = _N
    ch[1] = _T if trans_a else _N
    args_b = b[b_off:]
    args_a = a[a_off:]
    args_c = c[c_off:]
    if c.itemsize == 4:  # float32
        _sgemm(ch[0:].ctypes, ch[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes,
               ints[2:].ctypes, scal[0:].ctypes, args_b.ctypes, ints[3:].ctypes,
               args_a.ctypes, ints[4:].ctypes, scal[1:].ctypes, args_c.ctypes,
               ints[5:].ctypes)
    else:
        _dgemm(ch[0:].ctypes, ch[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes,
               ints[2:].ctypes, scal[0:].ctypes, args_b.ctypes, ints[3:].ctypes,
               args_a.ctypes, ints[4:].ctypes, scal[1:].ctypes, args_c.ctypes,
               ints[5:].ctypes)


@njit(cache=True, nogil=True)
def _finite_rows(a, off, ld, rows, cols):
    """True if the ``rows x cols`` panel of flat ``a`` (row stride ``ld``) is finite.

    Called right after the GEMM that read the panel, while it is in cache: a
    separate ``np.isfinite(X).all()`` pass streamed ``X`` from memory once more
    (5-15 % of the product at 64 blocks).  ``v - v`` is NaN exactly for NaN
    and infinity; the branch-free OR vectorises without fast-math flags.
    """
    bad = False
    for i in range(rows):
        o = off + i * ld
        for c in range(cols):
            v = a[o + c]
            bad |= (v - v) != 0.0
    return not bad


@njit(cache=True, nogil=True)
def all_finite(X):
    """True if the C-contiguous 2-D array ``X`` holds no NaN or infinity.

    One vectorised pass without the temporary of ``np.isfinite(X).all()``
    (0.55 ms against 0.86 ms on 16 MB).
    """
    f = X.reshape(-1)
    return _finite_rows(f, 0, f.size, 1, f.size)


@njit(cache=True, nogil=True)
def monarch_matmul(Lb, Rb, rank, X, out, work, w):
    """``out = M @ X``; ``X`` of shape ``(k * p, B)``, ``out`` of shape ``(l * s, B)``.

    ``Lb`` ``(l, s, rank * r)``, ``Rb`` ``(k, rank * q, p)``, ``X`` and ``out``
    C-contiguous, all of one float dtype (``B >= 1``).  The batch is processed
    in column panels of width ``w``; ``work`` is a 1-D scratch array of at
    least ``k * rank * q * w`` elements holding the inner panel (row stride
    ``w``).  The caller allocates it (NumPy backs large arrays with huge
    pages; a fresh Numba allocation of the full ``(rank N, B)`` intermediate
    page-faulted on every call and cost up to 60 % of the product).

    Returns True if ``X`` is finite (checked panel by panel, in cache); on
    False ``out`` holds garbage.
    """
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = X.shape[1]
    Rf = Rb.reshape(-1)
    Lf = Lb.reshape(-1)
    Xf = X.reshape(-1)
    of = out.reshape(-1)
    finite = True
    for c0 in range(0, B, w):
        wc = min(w, B - c0)
        for kb in range(k):             # Y[kb block] = R_kb @ X[kb block, panel]
            _gemm(False, Rf, kb * rq * p, p, Xf, kb * p * B + c0, B, work, kb * rq * w, w,
                  rq, wc, p, 0.0)
            finite &= _finite_rows(Xf, kb * p * B + c0, B, p, wc)
        for lb in range(l):             # out[lb::l] = sum_j L_lb,j @ Y[(lb*rank+j)::(l*rank)]
            for j in range(rank):
                _gemm(False, Lf, lb * s * lr + j * r, lr, work, (lb * rank + j) * w,
                      l * rank * w, of, lb * B + c0, l * B, s, wc, r, 0.0 if j == 0 else 1.0)
    return finite


@njit(cache=True, nogil=True)
def monarch_matmul_t(Lb, Rb, rank, Y, out, work, w):
    """``out = M.T @ Y``; ``Y`` of shape ``(l * s, B)``, ``out`` of shape ``(k * p, B)``.

    Column panels of width ``w``, caller-provided scratch ``work`` and the
    returned finiteness flag of ``Y`` as in :func:`monarch_matmul`.
    """
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = Y.shape[1]
    Rf = Rb.reshape(-1)
    Lf = Lb.reshape(-1)
    Yf = Y.reshape(-1)
    of = out.reshape(-1)
    finite = True
    for c0 in range(0, B, w):
        wc = min(w, B - c0)
        for lb in range(l):             # Z[(lb*rank+j)::(l*rank)] = L_lb,j^T @ Y[lb::l, panel]
            for j in range(rank):
                _gemm(True, Lf, lb * s * lr + j * r, lr, Yf, lb * B + c0, l * B,
                      work, (lb * rank + j) * w, l * rank * w, r, wc, s, 0.0)
            finite &= _finite_rows(Yf, lb * B + c0, l * B, s, wc)
        for kb in range(k):             # out[kb block, panel] = R_kb^T @ Z[kb block]
            _gemm(True, Rf, kb * rq * p, p, work, kb * rq * w, w, of, kb * p * B + c0, B,
                  p, wc, rq, 0.0)
    return finite


@njit(cache=True, nogil=True, fastmath=True)
def monarch_matmul_small(Lb, Rb, rank, X, out):
    """``out = M @ X`` by plain loops, for a few columns (BLAS call overhead dominates).

    Per column (copied contiguous): ``R`` block dot products, a gather of the inner vector into
    ``L``'s input order (so that the second stage is contiguous dot products
    too; reading it through the permutation's stride was 3.8x slower), then
    the ``L`` block dot products.
    """
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = X.shape[1]
    x = np.empty(k * p, dtype=X.dtype)
    Y = np.empty(k * rq, dtype=X.dtype)
    Z = np.empty(l * lr, dtype=X.dtype)
    for c in range(B):
        x[:] = X[:, c]                  # contiguous column: the dot products vectorise
        for kb in range(k):
            for i in range(rq):
                acc = 0.0
                for jj in range(p):
                    acc += Rb[kb, i, jj] * x[kb * p + jj]
                Y[kb * rq + i] = acc
        for lb in range(l):
            for j in range(rank):
                for rr in range(r):
                    Z[lb * lr + j * r + rr] = Y[(rr * l + lb) * rank + j]
        for lb in range(l):
            for i in range(s):
                acc = 0.0
                for t in range(lr):
                    acc += Lb[lb, i, t] * Z[lb * lr + t]
                out[i * l + lb, c] = acc


@njit(cache=True, nogil=True, fastmath=True)
def monarch_matmul_t_small(Lb, Rb, rank, Y, out):
    """``out = M.T @ Y`` by plain loops, for a few columns.

    Per column: ``L`` block transposed products as row updates (contiguous in
    ``L``'s input order), a scatter into ``R``'s stacked output order, then the
    ``R`` block transposed products the same way.
    """
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = Y.shape[1]
    Z = np.empty(l * lr, dtype=Y.dtype)
    V = np.empty(k * rq, dtype=Y.dtype)
    o = np.empty(k * p, dtype=Y.dtype)
    for c in range(B):
        Z[:] = 0.0
        for lb in range(l):
            for i in range(s):
                y = Y[i * l + lb, c]
                for t in range(lr):
                    Z[lb * lr + t] += Lb[lb, i, t] * y
        for lb in range(l):
            for j in range(rank):
                for rr in range(r):
                    V[(rr * l + lb) * rank + j] = Z[lb * lr + j * r + rr]
        o[:] = 0.0
        for kb in range(k):
            for i in range(rq):
                v = V[kb * rq + i]
                for jj in range(p):
                    o[kb * p + jj] += Rb[kb, i, jj] * v
        out[:, c] = o
