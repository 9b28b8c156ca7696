"""Backend-generic (device) Monarch: products, dense form and optimal projection on ``nx.xp``.

The CPU path (``kernel="blockdiag"``: ``np.matmul`` on strided views, or
:mod:`sparseopt.kernels._monarch` calling BLAS through scipy's cython
bindings) runs one GEMM per block with the permutations folded into the row
strides: host-only.
On a device the same products are

* ``"bmm"`` (the device default): two batched matmuls over the block stacks
  (``xp.matmul`` on ``(nblocks, ., .)`` arrays: cuBLAS strided-batched GEMM on
  CuPy) with the permutations as one ``take`` (gather) each.  Dense blocks are
  what batched GEMM is built for (register/shared-memory tiling, tensor cores
  where the dtype allows); it is the formulation of the Monarch paper's own
  GPU code.
* ``"bsr"``: the backend's block-sparse kernels (``nx.bsr_spmm`` /
  ``nx.bsr_spmm_t``, shared-memory tiles on the GPU) on the block-diagonal
  factors, the same gathers between them.  General, but it runs scalar FMAs
  without tensor cores, so it is kept for comparison and for backends without
  a batched matmul.

The projection is batched SVDs (``xp.linalg.svd`` on the stack of all slabs,
in float64), and the factors are assembled by gathers: every parameter of
``L`` and ``R`` belongs to exactly one slab (see
:mod:`sparseopt.solvers.monarch`), so an index map computed once on the host
(``O(params)``) says where each one comes from.  Only standard array-API
operations are used (``take``, ``reshape``, ``permute_dims``, ``matmul``), so
the code runs on any namespace.
"""

import functools

import numpy as np

__all__ = ["blocks_to_dense_xp", "bmm_product", "bsr_product", "project_blocks_xp"]


def _device_index(nx, cache, key, host):
    """``host`` (int64 NumPy) on the device, copied once per matrix and key."""
    arr = cache.get(key)
    if arr is None:
        arr = nx.asarray(np.ascontiguousarray(host, dtype=np.int64))
        cache[key] = arr
    return arr


def _inv_out(layout):
    m = layout.shape[0]
    inv = np.empty(m, dtype=np.int64)
    inv[layout.out_pos()] = np.arange(m)
    return inv


def bmm_product(nx, cache, L, R, layout, X, transposed):
    """``M @ X`` (or ``M.T @ X``) by two batched matmuls and one gather."""
    xp = nx.xp
    k, p, l, s = layout.nblocks_in, layout.block_in, layout.nblocks_out, layout.block_out
    B = X.shape[1]
    if not transposed:
        Y1 = xp.reshape(xp.matmul(R, xp.reshape(X, (k, p, B))), (-1, B))
        Y1 = xp.take(Y1, _device_index(nx, cache, "mid_src", layout.mid_src()), axis=0)
        Y2 = xp.matmul(L, xp.reshape(Y1, (l, -1, B)))                  # (l, s, B)
        return xp.reshape(xp.permute_dims(Y2, (1, 0, 2)), (l * s, B))
    Z = xp.permute_dims(xp.reshape(X, (s, l, B)), (1, 0, 2))           # (l, s, B)
    U = xp.reshape(xp.matmul(xp.permute_dims(L, (0, 2, 1)), Z), (-1, B))
    V = xp.take(U, _device_index(nx, cache, "mid_dst", layout.mid_dst()), axis=0)
    return xp.reshape(xp.matmul(xp.permute_dims(R, (0, 2, 1)), xp.reshape(V, (k, -1, B))),
                      (k * p, B))


def _blockdiag(nx, cache, blocks, X, transposed):
    """Block-diagonal BSR product through the backend kernel (``out`` allocated here)."""
    xp = nx.xp
    nb, rows, cols = blocks.shape
    key = ("blockdiag", nb)
    if key not in cache:
        cache[key] = (xp.arange(nb + 1, dtype=xp.int32), xp.arange(nb, dtype=xp.int32))
    indptr, indices = cache[key]
    out = nx.empty((nb * (cols if transposed else rows), X.shape[1]), blocks.dtype)
    kernel = nx.bsr_spmm_t if transposed else nx.bsr_spmm
    kernel(indptr, indices, blocks, X, out)
    return out


def bsr_product(nx, cache, L, R, layout, X, transposed):
    """``M @ X`` (or ``M.T @ X``) by the backend's BSR kernels and gathers."""
    xp = nx.xp
    contiguous = getattr(xp, "ascontiguousarray", None)  # CuPy: coalesced kernel reads
    if contiguous is not None:
        X = contiguous(X)
    if not transposed:
        Y1 = _blockdiag(nx, cache, R, X, False)
        Y1 = xp.take(Y1, _device_index(nx, cache, "mid_src", layout.mid_src()), axis=0)
        Y2 = _blockdiag(nx, cache, L, Y1, False)
        return xp.take(Y2, _device_index(nx, cache, "inv_out", _inv_out(layout)), axis=0)
    Z = xp.take(X, _device_index(nx, cache, "out_pos", layout.out_pos()), axis=0)
    U = _blockdiag(nx, cache, L, Z, True)
    U = xp.take(U, _device_index(nx, cache, "mid_dst", layout.mid_dst()), axis=0)
    return _blockdiag(nx, cache, R, U, True)


@functools.lru_cache(maxsize=64)
def _gather_maps(layout):
    """Host index maps from the stacked slab factors to ``L`` and ``R``.

    With ``C`` slots per slab (``layout.pairs()``) and slab ``q = ll * k + kk``,
    column ``col`` of ``L`` block ``ll`` is slot ``(q, c)`` of the left
    factors and row ``row`` of ``R`` block ``kk`` is slot ``(q, c)`` of the
    right factors; the maps hold ``q * C + c`` for every parameter position.
    """
    rows, cols, mask = layout.pairs()
    l, k = layout.nblocks_out, layout.nblocks_in
    C = mask.shape[2]
    lr, rq = layout.L_shape[2], layout.R_shape[1]
    ll, kk, cc = np.nonzero(mask)
    slot = (ll * k + kk) * C + cc
    to_L = np.full(l * lr, -1, dtype=np.int64)
    to_L[ll * lr + cols[ll, kk, cc]] = slot
    to_R = np.full(k * rq, -1, dtype=np.int64)
    to_R[kk * rq + rows[ll, kk, cc]] = slot
    if (to_L < 0).any() or (to_R < 0).any():  # pragma: no cover - layout invariant
        raise AssertionError("every Monarch parameter must belong to one slab")
    lsel = (np.arange(l)[:, None, None] * lr + cols).reshape(-1)     # slots -> L columns
    rsel = (np.arange(k)[None, :, None] * rq + rows).reshape(-1)     # slots -> R rows
    return to_L, to_R, lsel, rsel, mask.reshape(l * k, C)


def _slabs(xp, A, layout):
    """``A`` (``m x n``) as its ``l * k`` slabs ``(s, p)``, slab ``ll * k + kk``."""
    l, k, s, p = layout.nblocks_out, layout.nblocks_in, layout.block_out, layout.block_in
    return xp.reshape(xp.permute_dims(xp.reshape(A, (s, l, k, p)), (1, 2, 0, 3)),
                      (l * k, s, p))


def project_blocks_xp(nx, A, layout):
    """Optimal Monarch factors ``(Lb, Rb)`` of the dense device array ``A``.

    The device twin of :func:`sparseopt.solvers.monarch.project_blocks`: one
    batched SVD of all slabs in float64, each slab truncated to its own rank
    (its slot count), balanced factors ``u sqrt(sigma)``, ``sqrt(sigma) v^T``,
    cast back to ``A``'s dtype.
    """
    xp = nx.xp
    l, k, s, p = layout.nblocks_out, layout.nblocks_in, layout.block_out, layout.block_in
    to_L, to_R, _, _, mask = _gather_maps(layout)
    C = mask.shape[1]
    d = min(s, p)
    U, sig, Vt = xp.linalg.svd(_slabs(xp, xp.astype(A, xp.float64), layout),
                               full_matrices=False)
    # slot c of slab q takes singular triple c when c < min(count_q, d), else zero
    keep = mask & (np.arange(C)[None, :] < d)
    cut = min(C, d)
    root = xp.sqrt(sig[:, :cut]) * nx.asarray(keep[:, :cut].astype(np.float64))
    left = U[:, :, :cut] * root[:, None, :]                         # (lk, s, cut)
    right = Vt[:, :cut, :] * root[:, :, None]                       # (lk, cut, p)
    if C > cut:
        left = xp.concat([left, xp.zeros((l * k, s, C - cut), dtype=xp.float64)], axis=2)
        right = xp.concat([right, xp.zeros((l * k, C - cut, p), dtype=xp.float64)], axis=1)
    lr, rq = layout.L_shape[2], layout.R_shape[1]
    left = xp.reshape(xp.permute_dims(left, (0, 2, 1)), (l * k * C, s))
    Lb = xp.take(left, nx.asarray(to_L), axis=0)                    # (l * lr, s)
    Lb = xp.permute_dims(xp.reshape(Lb, (l, lr, s)), (0, 2, 1))
    Rb = xp.take(xp.reshape(right, (l * k * C, p)), nx.asarray(to_R), axis=0)
    Rb = xp.reshape(Rb, (k, rq, p))
    return xp.astype(Lb, A.dtype), xp.astype(Rb, A.dtype)


def blocks_to_dense_xp(nx, L, R, layout):
    """Dense ``m x n`` matrix of device Monarch factors (slab by slab, batched matmul)."""
    xp = nx.xp
    l, k, s, p = layout.nblocks_out, layout.nblocks_in, layout.block_out, layout.block_in
    _, _, lsel, rsel, mask = _gather_maps(layout)
    C = mask.shape[1]
    weight = nx.asarray(mask.astype(np.float64))
    weight = xp.astype(weight, L.dtype)[:, :, None]                 # padding slots -> 0
    lr, rq = layout.L_shape[2], layout.R_shape[1]
    Lt = xp.reshape(xp.permute_dims(L, (0, 2, 1)), (l * lr, s))
    Lsel = xp.reshape(xp.take(Lt, nx.asarray(lsel), axis=0), (l * k, C, s)) * weight
    Rsel = xp.reshape(xp.take(xp.reshape(R, (k * rq, p)), nx.asarray(rsel), axis=0),
                      (l * k, C, p)) * weight
    slabs = xp.matmul(xp.permute_dims(Lsel, (0, 2, 1)), Rsel)       # (lk, s, p)
    slabs = xp.reshape(slabs, (l, k, s, p))
    return xp.reshape(xp.permute_dims(slabs, (2, 0, 1, 3)), (l * s, k * p))
