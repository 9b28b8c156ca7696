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
def _padded_stride(B):
    """Row stride of the inner buffer: ``B`` plus one when ``B`` is a multiple of 16.

    The second stage reads every ``(l * rank)``-th row of the buffer; with ``l``
    and ``B`` powers of two that stride is a multiple of 4 KiB and all the rows
    of a GEMM panel fall into the same cache sets (measured 2x slower at
    ``n = 4096, B = 1024, l = 64``).  One extra element breaks the aliasing.
    """
    return B + 1 if B % 16 == 0 else B


@njit(cache=True, nogil=True)
def monarch_matmul(Lb, Rb, rank, X, out):
    """``out = M @ X``; ``X`` of shape ``(k * p, B)``, ``out`` of shape ``(l * s, B)``.

    ``Lb`` ``(l, s, rank * r)``, ``Rb`` ``(k, rank * q, p)``, ``X`` and ``out``
    C-contiguous, all of one float dtype (``B >= 1``).
    """
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = X.shape[1]
    ldy = _padded_stride(B)
    Yf = np.empty(k * rq * ldy, dtype=X.dtype)
    Rf = Rb.reshape(-1)
    Lf = Lb.reshape(-1)
    Xf = X.reshape(-1)
    of = out.reshape(-1)
    for kb in range(k):                 # Y[kb block] = R_kb @ X[kb block]
        _gemm(False, Rf, kb * rq * p, p, Xf, kb * p * B, B, Yf, kb * rq * ldy, ldy,
              rq, B, p, 0.0)
    if ldy == B:                        # out[lb::l] = sum_j L_lb,j @ Y[(lb*rank+j)::(l*rank)]
        for lb in range(l):
            for j in range(rank):
                _gemm(False, Lf, lb * s * lr + j * r, lr, Yf, (lb * rank + j) * ldy,
                      l * rank * ldy, of, lb * B, l * B, s, B, r, 0.0 if j == 0 else 1.0)
        return
    # aliasing strides: compute each block contiguously, then scatter its rows
    Tf = np.empty(s * ldy, dtype=X.dtype)
    for lb in range(l):
        for j in range(rank):
            _gemm(False, Lf, lb * s * lr + j * r, lr, Yf, (lb * rank + j) * ldy,
                  l * rank * ldy, Tf, 0, ldy, s, B, r, 0.0 if j == 0 else 1.0)
        for i in range(s):
            o = (i * l + lb) * B
            t = i * ldy
            for c in range(B):
                of[o + c] = Tf[t + c]


@njit(cache=True, nogil=True)
def monarch_matmul_t(Lb, Rb, rank, Y, out):
    """``out = M.T @ Y``; ``Y`` of shape ``(l * s, B)``, ``out`` of shape ``(k * p, B)``."""
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = Y.shape[1]
    ldz = _padded_stride(B)
    Zf = np.empty(k * rq * ldz, dtype=Y.dtype)
    Rf = Rb.reshape(-1)
    Lf = Lb.reshape(-1)
    Yf = Y.reshape(-1)
    of = out.reshape(-1)
    for lb in range(l):                 # Z[(lb*rank+j)::(l*rank)] = L_lb,j^T @ Y[lb::l]
        for j in range(rank):
            _gemm(True, Lf, lb * s * lr + j * r, lr, Yf, lb * B, l * B,
                  Zf, (lb * rank + j) * ldz, l * rank * ldz, r, B, s, 0.0)
    for kb in range(k):                 # out[kb block] = R_kb^T @ Z[kb block]
        _gemm(True, Rf, kb * rq * p, p, Zf, kb * rq * ldz, ldz, of, kb * p * B, B,
              p, B, rq, 0.0)


@njit(cache=True, nogil=True, fastmath=True)
def monarch_matmul_small(Lb, Rb, rank, X, out):
    """``out = M @ X`` by plain loops, for a few columns (BLAS call overhead dominates)."""
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = X.shape[1]
    Y = np.empty((k * rq, B), dtype=X.dtype)
    for c in range(B):
        for kb in range(k):
            for i in range(rq):
                acc = 0.0
                for jj in range(p):
                    acc += Rb[kb, i, jj] * X[kb * p + jj, c]
                Y[kb * rq + i, c] = acc
        for lb in range(l):
            for i in range(s):
                acc = 0.0
                for j in range(rank):
                    for rr in range(r):
                        acc += Lb[lb, i, j * r + rr] * Y[(rr * l + lb) * rank + j, c]
                out[i * l + lb, c] = acc


@njit(cache=True, nogil=True, fastmath=True)
def monarch_matmul_t_small(Lb, Rb, rank, Y, out):
    """``out = M.T @ Y`` by plain loops, for a few columns."""
    k, rq, p = Rb.shape
    l, s, lr = Lb.shape
    r = lr // rank
    B = Y.shape[1]
    Z = np.zeros((k * rq, B), dtype=Y.dtype)
    for c in range(B):
        for lb in range(l):
            for i in range(s):
                y = Y[i * l + lb, c]
                for j in range(rank):
                    for rr in range(r):
                        Z[(rr * l + lb) * rank + j, c] += Lb[lb, i, j * r + rr] * y
        for kb in range(k):
            for jj in range(p):
                out[kb * p + jj, c] = 0.0
            for i in range(rq):
                z = Z[kb * rq + i, c]
                for jj in range(p):
                    out[kb * p + jj, c] += Rb[kb, i, jj] * z
