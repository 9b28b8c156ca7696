"""Matrix structures shared by the kernel benchmarks."""

import numpy as np
import scipy.sparse as sp


def uniform(n, density, seed=0):
    """Uniform random n x n CSR."""
    return sp.random_array((n, n), density=density, format="csr", random_state=seed)


def rmat(scale, edge_factor=8, abcd=(0.57, 0.19, 0.19, 0.05), seed=0):
    """R-MAT power-law graph with 2**scale vertices (Chakrabarti et al., 2004)."""
    rng = np.random.default_rng(seed)
    n = 2**scale
    m = edge_factor * n
    rows = np.zeros(m, dtype=np.int64)
    cols = np.zeros(m, dtype=np.int64)
    a, b, c, _ = abcd
    for level in range(scale):
        r = rng.random(m)
        right = (r > a) & (r <= a + b) | (r > a + b + c)
        down = r > a + b
        rows |= down.astype(np.int64) << level
        cols |= right.astype(np.int64) << level
    A = sp.coo_array((rng.standard_normal(m), (rows, cols)), shape=(n, n)).tocsr()
    A.sum_duplicates()
    return A


def poisson2d(n):
    """5-point Laplacian on an n x n grid."""
    T = sp.diags_array([-1.0, 4.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    S = sp.diags_array([-1.0, -1.0], offsets=[-1, 1], shape=(n, n))
    return (sp.kron(sp.eye_array(n), T) + sp.kron(S, sp.eye_array(n))).tocsr()


def block_structured(n, block, block_density, seed=0):
    """n x n matrix of dense ``block`` x ``block`` tiles, a fraction present."""
    nb = n // block
    pattern = sp.random_array((nb, nb), density=block_density, format="csr", random_state=seed)
    rng = np.random.default_rng(seed)
    blocks = rng.standard_normal((pattern.nnz, block, block))
    return sp.bsr_array((blocks, pattern.indices, pattern.indptr), shape=(n, n)).tocsr()


STRUCTURES = {
    "uniform": lambda: uniform(20_000, 1e-3),
    "rmat": lambda: rmat(14),
    "poisson2d": lambda: poisson2d(200),
    "block": lambda: block_structured(4096, 16, 0.1),
}
