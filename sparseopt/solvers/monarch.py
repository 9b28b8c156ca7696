"""Monarch matrices: layout, optimal projection and reference products.

Notation (Dao et al., "Monarch: Expressive Structured Matrices for Efficient
and Accurate Training", ICML 2022, generalised as in the authors' ``fly``
repository).  An ``m x n`` Monarch matrix of rank ``rank`` with ``l`` output
blocks, ``k`` input blocks and inner size ``N`` is

.. math::

    M = \\sum_{j=1}^{\\mathrm{rank}} P_{(l, m)} \\, L_j \\, P_{(l, N)}^\\top R_j ,

where

* ``R_j`` is block-diagonal with ``k`` blocks of shape ``(Q, p)``,
  ``p = n / k``, ``Q = N / k``;
* ``L_j`` is block-diagonal with ``l`` blocks of shape ``(s, r)``,
  ``s = m / l``, ``r = N / l``;
* ``P_{(b, d)}`` is the reshape-transpose permutation of length ``d``: reshape
  a vector to ``(b, d / b)`` (row-major), transpose, flatten.

The ``rank`` terms are stored stacked: ``R`` has ``k`` blocks of shape
``(rank*Q, p)`` (term ``j`` in the interleaved rows ``j::rank``) and ``L`` has
``l`` blocks of shape ``(s, rank*r)`` (term ``j`` in columns
``j*r:(j+1)*r``), so
that ``M = P_out @ L @ G @ R`` with ``G`` one permutation of the stacked
inner vector.  With ``m = n = N``, ``k = l = b`` and ``rank = 1`` this is the
paper's ``M = P L P^T R``; with ``b = sqrt(n)`` it is its Definition 3.1.

Why the projection is closed form: index the inner vector of one term by
``t`` (``0 <= t < N``).  ``t`` is output ``q = t mod Q`` of input block
``kk = t // Q`` and input ``r = t // l`` of output block ``ll = t mod l``.
Hence, after the row permutation ``P_out``, the ``(s, p)`` slab of ``M``
joining output block ``ll`` and input block ``kk`` is

.. math::

    M_{ll, kk} = \\sum_j \\sum_{t \\in T(ll, kk)} L[ll][:, j r + r(t)] \\,
                 R[kk][q(t) \\, \\mathrm{rank} + j, :]

with ``T(ll, kk) = {t : t // Q = kk, t mod l = ll}``.  Every parameter of
``L`` and ``R`` appears in exactly one slab, so ``min ||A - M||_F`` splits into
``l * k`` independent problems "best approximation of the slab ``A_{ll,kk}``
of rank ``rank * |T(ll, kk)|``", solved exactly by a truncated SVD
(Eckart-Young-Mirsky).  This module computes those slabs, their truncated
SVDs and the factors, plus the batched-matmul reference products.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = [
    "MonarchLayout",
    "blocks_to_dense",
    "dense_to_slabs",
    "monarch_matmul_reference",
    "monarch_matmul_strided",
    "monarch_rmatmul_reference",
    "monarch_rmatmul_strided",
    "project_blocks",
    "slab_factors",
]


@dataclass(frozen=True)
class MonarchLayout:
    """Sizes of a Monarch matrix (all padded sizes; see module docstring).

    Attributes
    ----------
    nblocks_out, nblocks_in : int
        ``l`` and ``k``.
    block_out, block_in : int
        ``s = m / l`` (rows of an ``L`` block) and ``p = n / k`` (columns of an
        ``R`` block).
    inner : int
        ``N``, the inner size of one term.
    rank : int
        Number of stacked terms.
    """

    nblocks_out: int
    nblocks_in: int
    block_out: int
    block_in: int
    inner: int
    rank: int

    @property
    def shape(self):
        return (self.nblocks_out * self.block_out, self.nblocks_in * self.block_in)

    @property
    def q(self):
        """Rows of one term of an ``R`` block (``N / k``)."""
        return self.inner // self.nblocks_in

    @property
    def r(self):
        """Columns of one term of an ``L`` block (``N / l``)."""
        return self.inner // self.nblocks_out

    @property
    def R_shape(self):
        return (self.nblocks_in, self.rank * self.q, self.block_in)

    @property
    def L_shape(self):
        return (self.nblocks_out, self.block_out, self.rank * self.r)

    @property
    def n_params(self):
        return int(np.prod(self.R_shape)) + int(np.prod(self.L_shape))

    def flops(self, batch=1):
        """Multiply-adds times two of ``M @ X`` for ``X`` with ``batch`` columns."""
        return 2 * self.n_params * batch

    # cached index arrays ------------------------------------------------
    def mid_dst(self):
        """Position in the stacked ``L`` input of each stacked ``R`` output row."""
        return _index_arrays(self)[0]

    def mid_src(self):
        """Stacked ``R`` output row feeding each stacked ``L`` input position."""
        return _index_arrays(self)[1]

    def out_pos(self):
        """Output row of each stacked ``L`` output row ``ll * s + si``."""
        return _index_arrays(self)[2]

    def pairs(self):
        """``(rows, cols, mask)``: per slab, the ``R`` rows and ``L`` columns it owns.

        Arrays of shape ``(l, k, C)`` with ``C = rank * max |T(ll, kk)|``;
        ``rows[ll, kk, c]`` is a row inside ``R`` block ``kk``, ``cols[ll, kk, c]``
        a column inside ``L`` block ``ll``; ``mask`` is False on padding.
        """
        return _index_arrays(self)[3:6]


@functools.lru_cache(maxsize=64)
def _index_arrays(layout):
    l, k, s = layout.nblocks_out, layout.nblocks_in, layout.block_out
    N, rank, Q, r = layout.inner, layout.rank, layout.q, layout.r
    t = np.arange(N, dtype=np.int64)
    kk, qq = t // Q, t % Q          # R block and row of inner index t
    ll, rr = t % l, t // l          # L block and column of inner index t
    j = np.arange(rank, dtype=np.int64)[:, None]
    src = (t * rank + j).ravel()                      # stacked R output row
    dst = (ll * (rank * r) + j * r + rr).ravel()      # stacked L input position
    mid_dst = np.empty(rank * N, dtype=np.int64)
    mid_dst[src] = dst
    mid_src = np.empty(rank * N, dtype=np.int64)
    mid_src[dst] = src
    li, si = np.divmod(np.arange(l * s, dtype=np.int64), s)
    out_pos = si * l + li
    # slabs: group inner indices by (ll, kk)
    key = ll * k + kk
    counts = np.bincount(key, minlength=l * k)
    cmax = int(counts.max()) if N else 0
    order = np.argsort(key, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(N) - starts[key[order]]
    C = rank * cmax
    rows = np.zeros((l * k, max(C, 1)), dtype=np.int64)
    cols = np.zeros((l * k, max(C, 1)), dtype=np.int64)
    mask = np.zeros((l * k, max(C, 1)), dtype=bool)
    for jj in range(rank):
        pos = jj * counts[key[order]] + slot      # valid slots come first
        rows[key[order], pos] = qq[order] * rank + jj
        cols[key[order], pos] = jj * r + rr[order]
        mask[key[order], pos] = True
    shape3 = (l, k, max(C, 1))
    out = (mid_dst, mid_src, out_pos, rows.reshape(shape3), cols.reshape(shape3),
           mask.reshape(shape3))
    for a in out:
        a.flags.writeable = False
    return out


def make_layout(shape, nblocks, *, rank=1, inner=None):
    """Validate sizes and return the :class:`MonarchLayout` (padded shape given)."""
    m, n = shape
    l, k = nblocks
    if m % l or n % k:
        raise ValueError(
            f"shape {shape} is not divisible by nblocks (out={l}, in={k})"
        )
    if inner is None:  # min(m, n), rounded up to a multiple of lcm(l, k)
        step = math.lcm(l, k)
        N = -(-min(m, n) // step) * step
    else:
        N = int(inner)
    if N < 1 or N % k or N % l:
        raise ValueError(
            f"inner_size={N} must be a positive multiple of both block counts "
            f"(out={l}, in={k}); pass inner_size explicitly"
        )
    return MonarchLayout(l, k, m // l, n // k, N, rank)


# ---------------------------------------------------------------------------
# dense <-> slabs
# ---------------------------------------------------------------------------
def dense_to_slabs(A, layout):
    """View ``A`` (padded ``m x n``) as slabs ``(l, k, s, p)`` (a copy)."""
    l, k, s, p = (layout.nblocks_out, layout.nblocks_in, layout.block_out,
                  layout.block_in)
    return np.ascontiguousarray(A.reshape(s, l, k, p).transpose(1, 2, 0, 3))


def slab_factors(Lb, Rb, layout):
    """Per-slab factors ``(Lsel, Rsel)`` of shapes ``(l, k, s, C)``, ``(l, k, C, p)``.

    Padding columns/rows are zero, so ``Lsel @ Rsel`` are the slabs of ``M``.
    """
    rows, cols, mask = layout.pairs()
    l, k = layout.nblocks_out, layout.nblocks_in
    Lsel = Lb[np.arange(l)[:, None, None], :, cols]          # (l, k, C, s)
    Lsel = np.where(mask[..., None], Lsel, 0).transpose(0, 1, 3, 2)
    Rsel = Rb[np.arange(k)[None, :, None], rows, :]          # (l, k, C, p)
    Rsel = np.where(mask[..., None], Rsel, 0)
    return Lsel, Rsel


def blocks_to_dense(Lb, Rb, layout):
    """Dense ``m x n`` matrix of the Monarch factors (slab by slab)."""
    Lsel, Rsel = slab_factors(Lb, Rb, layout)
    slabs = np.matmul(Lsel, Rsel)                             # (l, k, s, p)
    m, n = layout.shape
    return np.ascontiguousarray(slabs.transpose(2, 0, 1, 3)).reshape(m, n)


# ---------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------
def _top_subspace(A, rho):
    """Orthonormal basis ``V`` (p x rho) of the top-``rho`` right singular space of A.

    For ``rho`` well below ``min(A.shape)`` the eigenvectors of the Gram matrix
    ``A^T A`` for its ``rho`` largest eigenvalues are computed by LAPACK
    ``syevr`` (only the selected ones), which is several times cheaper than a
    full SVD.  The factorisation built from ``V`` is ``(A V) V^T``, the
    orthogonal projection of the rows of ``A`` on ``span(V)``, so it does not
    depend on how accurately the small singular values are known.
    """
    p = A.shape[1]
    G = A.T @ A
    return scipy.linalg.eigh(G, subset_by_index=[p - rho, p - 1], driver="evr",
                             check_finite=False, overwrite_a=True)[1][:, ::-1]


def _truncated_factors(A, rho):
    """Best rank-``rho`` factors ``U (s x rho)``, ``V (rho x p)`` of one slab ``A``.

    ``U @ V`` is the Eckart-Young optimum; factors are balanced (``U = u sqrt(sigma)``,
    ``V = sqrt(sigma) v^T``).  Ranks beyond ``min(A.shape)`` are zero-padded.
    """
    s, p = A.shape
    d = min(s, p)
    U = np.zeros((s, rho), dtype=A.dtype)
    V = np.zeros((rho, p), dtype=A.dtype)
    if d == 0 or rho == 0:
        return U, V
    rr = min(rho, d)
    if rr >= d or d <= 8 or 2 * rr > d:
        u, sig, vt = np.linalg.svd(A, full_matrices=False)
        u, sig, vt = u[:, :rr], sig[:rr], vt[:rr]
        root = np.sqrt(sig)
        U[:, :rr] = u * root
        V[:rr] = root[:, None] * vt
        return U, V
    transpose = s < p
    B = A.T if transpose else A
    basis = _top_subspace(B, rr)                 # right singular vectors of B
    left = B @ basis                             # = u * sigma
    sig = np.linalg.norm(left, axis=0)
    root = np.sqrt(sig)
    safe = np.where(root > 0, root, 1.0)
    left_f = np.where(root > 0, left / safe, 0.0)
    right_f = (basis * root).T                   # sqrt(sigma) v^T
    if transpose:                                # A = B^T = basis sig u^T
        U[:, :rr] = right_f.T
        V[:rr] = left_f.T
    else:
        U[:, :rr] = left_f
        V[:rr] = right_f
    return U, V


def project_blocks(A, layout):
    """Optimal Monarch factors of the (padded, float64 or float32) dense ``A``.

    Returns ``(Lb, Rb)`` of shapes ``layout.L_shape`` and ``layout.R_shape`` with
    ``||A - M(Lb, Rb)||_F`` minimal over all Monarch matrices of this layout.
    Work is done in float64 and cast back to ``A.dtype``.
    """
    dtype = A.dtype
    slabs = dense_to_slabs(np.asarray(A, dtype=np.float64), layout)
    rows, cols, mask = layout.pairs()
    counts = mask.sum(axis=2)
    Lb = np.zeros(layout.L_shape, dtype=np.float64)
    Rb = np.zeros(layout.R_shape, dtype=np.float64)
    s, p = layout.block_out, layout.block_in
    d = min(s, p)
    for c in np.unique(counts):
        if c == 0:
            continue
        ls, ks = np.nonzero(counts == c)
        if c >= d or d <= 8 or 2 * c > d:
            # batched LAPACK SVD for tiny or nearly full-rank slabs
            u, sig, vt = np.linalg.svd(slabs[ls, ks], full_matrices=False)
            cc = min(c, d)
            root = np.sqrt(sig[:, :cc])
            Uall = np.zeros((len(ls), s, c))
            Vall = np.zeros((len(ls), c, p))
            Uall[:, :, :cc] = u[:, :, :cc] * root[:, None, :]
            Vall[:, :cc] = root[:, :, None] * vt[:, :cc]
        else:
            Uall = np.empty((len(ls), s, c))
            Vall = np.empty((len(ls), c, p))
            for i, (a, b) in enumerate(zip(ls, ks, strict=True)):
                Uall[i], Vall[i] = _truncated_factors(slabs[a, b], c)
        rsel = rows[ls, ks, :c]
        csel = cols[ls, ks, :c]
        Lb[ls[:, None], :, csel] = Uall.transpose(0, 2, 1)
        Rb[ks[:, None], rsel, :] = Vall
    return Lb.astype(dtype, copy=False), Rb.astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# batched-matmul products (the reference formulation, any array library)
# ---------------------------------------------------------------------------
def monarch_matmul_reference(Lb, Rb, layout, X):
    """``M @ X`` for ``X`` of shape ``(n, B)`` by two batched matmuls (numpy).

    The straightforward formulation of ``fly``'s ``blockdiag_butterfly_multiply``
    in column layout: ``np.matmul`` over blocks, with the permutations done by
    gathers between them.
    """
    k, p = layout.nblocks_in, layout.block_in
    l, s = layout.nblocks_out, layout.block_out
    B = X.shape[1]
    Y1 = np.matmul(Rb, X.reshape(k, p, B)).reshape(-1, B)       # stacked R rows
    Y1 = Y1[layout.mid_src()].reshape(l, -1, B)                   # L input order
    Y2 = np.matmul(Lb, Y1)                                        # (l, s, B)
    return Y2.transpose(1, 0, 2).reshape(l * s, B)


def monarch_rmatmul_reference(Lb, Rb, layout, Y):
    """``M.T @ Y`` for ``Y`` of shape ``(m, B)`` by two batched matmuls."""
    k, p = layout.nblocks_in, layout.block_in
    l, s = layout.nblocks_out, layout.block_out
    B = Y.shape[1]
    Z = Y.reshape(s, l, B).transpose(1, 0, 2)                     # (l, s, B)
    U = np.matmul(Lb.transpose(0, 2, 1), Z).reshape(-1, B)        # L input order
    V = U[layout.mid_dst()].reshape(k, -1, B)                     # stacked R rows
    return np.matmul(Rb.transpose(0, 2, 1), V).reshape(k * p, B)


# ---------------------------------------------------------------------------
# batched matmuls with the permutations in the strides (NumPy, rank 1)
# ---------------------------------------------------------------------------
def monarch_matmul_strided(Lb, Rb, layout, X, out, w):
    """``out = M @ X`` (rank 1) by batched ``np.matmul`` on strided views, no copies.

    With one term the inner vector of index ``t = rr * l + ll`` is row ``t`` of
    ``Y = R X``, so ``L`` block ``ll`` reads ``Y.reshape(r, l, B)[:, ll]`` and
    writes ``out.reshape(s, l, B)[:, ll]``: 2-D slices with unit last stride
    and a row stride of ``l * B``, which ``np.matmul`` hands to BLAS ``?gemm``
    as they are (leading dimension), one call per block.  Column panels of
    width ``w`` bound the intermediate to ``N * w`` elements (the whole batch
    when ``w >= B``).  ``X`` ``(n, B)`` and ``out`` ``(m, B)`` C-contiguous, one
    float dtype.
    """
    if layout.rank != 1:
        raise ValueError("the strided formulation needs rank 1")
    k, p, l, s = layout.nblocks_in, layout.block_in, layout.nblocks_out, layout.block_out
    N, Q, r = layout.inner, layout.q, layout.r
    B = X.shape[1]
    w = min(w, B)
    Y = np.empty((N, w), dtype=out.dtype)
    X3 = X.reshape(k, p, B)
    O3 = out.reshape(s, l, B).transpose(1, 0, 2)                  # (l, s, B) view
    for c0 in range(0, B, w):
        c1 = min(c0 + w, B)
        wc = c1 - c0
        Yk = Y.reshape(k, Q, w)[:, :, :wc]
        np.matmul(Rb, X3[:, :, c0:c1], out=Yk)
        Yl = Y.reshape(r, l, w)[:, :, :wc].transpose(1, 0, 2)      # (l, r, wc) view
        np.matmul(Lb, Yl, out=O3[:, :, c0:c1])
    return out


def monarch_rmatmul_strided(Lb, Rb, layout, Y, out, w):
    """``out = M.T @ Y`` (rank 1), the transposed products of :func:`monarch_matmul_strided`."""
    if layout.rank != 1:
        raise ValueError("the strided formulation needs rank 1")
    k, p, l, s = layout.nblocks_in, layout.block_in, layout.nblocks_out, layout.block_out
    N, Q, r = layout.inner, layout.q, layout.r
    B = Y.shape[1]
    w = min(w, B)
    Z = np.empty((N, w), dtype=out.dtype)
    Y3 = Y.reshape(s, l, B).transpose(1, 0, 2)                    # (l, s, B) view
    O3 = out.reshape(k, p, B)
    Lt = Lb.transpose(0, 2, 1)
    Rt = Rb.transpose(0, 2, 1)
    for c0 in range(0, B, w):
        c1 = min(c0 + w, B)
        wc = c1 - c0
        Zl = Z.reshape(r, l, w)[:, :, :wc].transpose(1, 0, 2)      # (l, r, wc) view
        np.matmul(Lt, Y3[:, :, c0:c1], out=Zl)
        np.matmul(Rt, Z.reshape(k, Q, w)[:, :, :wc], out=O3[:, :, c0:c1])
    return out


def default_nblocks(m, n):
    """Largest common divisor of ``m`` and ``n`` not above ``sqrt(min(m, n))``."""
    g = math.gcd(m, n)
    limit = math.isqrt(max(min(m, n), 1))
    best = 1
    for b in range(1, min(g, limit) + 1):
        if g % b == 0:
            best = b
    return best
