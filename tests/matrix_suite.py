"""The generic matrix suite: named sparse structures in every storage variant.

``cases()`` yields ``(name, indptr, indices, data, shape)`` raw CSR arrays; the
``variant`` helpers turn a canonical case into unsorted / duplicated /
int64-indexed / float32 versions, so every kernel test runs over
structures x variants and compares with scipy on the same arrays.
"""

import numpy as np
import scipy.sparse as sp


def _from_scipy(A):
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A.indptr.copy(), A.indices.copy(), A.data.astype(np.float64), A.shape


def _power_law(n_rows, n_cols, seed, alpha=1.6, max_row=None):
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.zipf(alpha, n_rows), max_row or n_cols)
    rows = np.repeat(np.arange(n_rows), lengths)
    cols = rng.integers(0, n_cols, rows.size)
    return sp.coo_array((rng.standard_normal(rows.size), (rows, cols)),
                        shape=(n_rows, n_cols))


def _poisson2d(n):
    T = sp.diags_array([-1.0, 4.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    S = sp.diags_array([-1.0, -1.0], offsets=[-1, 1], shape=(n, n))
    return sp.kron(sp.eye_array(n), T) + sp.kron(S, sp.eye_array(n))


def structures():
    """Named canonical test matrices (scipy CSR, float64)."""
    rng = np.random.default_rng(42)
    out = {}
    out["empty_0x5"] = sp.csr_array((0, 5))
    out["empty_5x0"] = sp.csr_array((5, 0))
    out["empty_0x0"] = sp.csr_array((0, 0))
    out["1x1"] = sp.csr_array(np.array([[2.5]]))
    out["all_zero_4x3"] = sp.csr_array((4, 3))
    A = sp.random_array((30, 20), density=0.15, random_state=rng, format="lil")
    A[3, :] = 0
    A[17, :] = 0
    A[:, 5] = 0
    out["empty_rows_cols"] = A
    B = sp.random_array((25, 40), density=0.05, random_state=rng, format="lil")
    B[7, :] = rng.standard_normal(40)
    out["dense_row"] = B
    out["power_law"] = _power_law(60, 50, seed=1)
    out["poisson2d"] = _poisson2d(6)
    out["uniform"] = sp.random_array((45, 35), density=0.1, random_state=rng)
    return {k: _from_scipy(v) for k, v in out.items()}


def make_noncanonical(indptr, indices, data, seed=0):
    """Shuffle each row and split some entries into duplicates (same matrix)."""
    rng = np.random.default_rng(seed)
    new_ind, new_dat, new_ptr = [], [], [0]
    for i in range(len(indptr) - 1):
        cols = indices[indptr[i]:indptr[i + 1]]
        vals = data[indptr[i]:indptr[i + 1]]
        c, v = list(cols), list(vals)
        for k in range(len(cols)):
            if rng.random() < 0.3:  # split value into two equal-index entries
                part = rng.standard_normal()
                v[k] = vals[k] - part
                c.append(cols[k])
                v.append(part)
        order = rng.permutation(len(c))
        new_ind.extend(np.asarray(c, dtype=np.int64)[order])
        new_dat.extend(np.asarray(v)[order])
        new_ptr.append(len(new_ind))
    return (np.asarray(new_ptr, dtype=indptr.dtype), np.asarray(new_ind, dtype=indices.dtype),
            np.asarray(new_dat, dtype=np.float64))


def variant(case, *, index_dtype, value_dtype, canonical):
    indptr, indices, data, shape = case
    if not canonical:
        indptr, indices, data = make_noncanonical(indptr, indices, data)
    return (indptr.astype(index_dtype), indices.astype(index_dtype),
            data.astype(value_dtype), shape)


def scipy_of(indptr, indices, data, shape):
    """scipy reference of raw (possibly non-canonical) arrays, in float64."""
    return sp.csr_array((data.astype(np.float64), indices.copy(), indptr.copy()), shape=shape)


def rtol_for(dtype):
    """Rounding tolerance of a dtype's sums over the suite's short rows."""
    return 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
