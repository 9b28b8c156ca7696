"""BCD kernels: message passing, forest growth, colouring, heap, 1-D prox helpers."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from sparseopt.kernels import _bcd as K
from sparseopt.solvers.bcd._blocks import ForestSolver
from sparseopt.solvers.bcd._design import canonical_csr


def _random_tree_matrix(n, seed, extra_edges=0):
    """SPD matrix whose graph is a random tree (plus ``extra_edges`` chords)."""
    rng = np.random.default_rng(seed)
    parent = np.array([rng.integers(0, i) for i in range(1, n)])
    r = np.concatenate([np.arange(1, n), rng.integers(0, n, extra_edges)])
    c = np.concatenate([parent, rng.integers(0, n, extra_edges)])
    keep = r != c
    w = rng.uniform(-1, 1, keep.sum())
    W = sp.coo_array((w, (r[keep], c[keep])), shape=(n, n)).tocsr()
    W = W + W.T
    diag = np.asarray(abs(W).sum(axis=1)).ravel() + rng.uniform(0.1, 1, n)
    return canonical_csr(sp.csr_array(W + sp.diags_array(diag)), "Q")


def _lattice_laplacian(m, reg=0.1):
    idx = np.arange(m * m).reshape(m, m)
    r = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    c = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    W = sp.coo_array((np.ones(len(r)), (r, c)), shape=(m * m, m * m)).tocsr()
    W = W + W.T
    Q = sp.diags_array(np.asarray(W.sum(axis=1)).ravel() + reg) - W
    return canonical_csr(sp.csr_array(Q), "Q")


def _induced_is_forest(Q, block):
    sub = Q[block][:, block].tocoo()
    off = sub.row < sub.col
    n_edges = int(np.count_nonzero(sub.data[off]))
    ncomp, _ = connected_components(sub, directed=False)
    return n_edges == len(block) - ncomp


@pytest.mark.parametrize("n,seed", [(1, 0), (2, 1), (50, 2), (300, 3)])
def test_message_passing_equals_dense_solve_on_a_tree(n, seed):
    Q = _random_tree_matrix(n, seed)
    rhs = np.random.default_rng(seed).standard_normal(n)
    z = ForestSolver(Q).solve(np.arange(n, dtype=np.int64), rhs)
    np.testing.assert_allclose(z, np.linalg.solve(Q.toarray(), rhs), rtol=1e-11,
                               atol=1e-12)


def test_message_passing_on_forest_subblock_of_lattice():
    Q = _lattice_laplacian(9)
    p = Q.shape[0]
    order = np.random.default_rng(0).permutation(p).astype(np.int64)
    out = np.empty(p, np.int64)
    size = K.greedy_forest(Q.indptr, Q.indices, order, np.ones(p, np.bool_), p,
                           np.empty(p, np.int64), np.empty(p, np.bool_),
                           np.empty(p, np.int64), out)
    block = np.sort(out[:size])
    assert size > p // 2 and _induced_is_forest(Q, block)
    rhs = np.random.default_rng(1).standard_normal(size)
    z = ForestSolver(Q).solve(block, rhs)
    np.testing.assert_allclose(z, np.linalg.solve(Q[block][:, block].toarray(), rhs),
                               rtol=1e-11, atol=1e-12)


def test_message_passing_detects_cycles():
    Q = _random_tree_matrix(30, 4, extra_edges=3)
    with pytest.raises(ValueError, match="cycle"):
        ForestSolver(Q).solve(np.arange(30, dtype=np.int64), np.ones(30))


def test_greedy_forest_respects_max_size_and_allowed():
    Q = _lattice_laplacian(6)
    p = Q.shape[0]
    allowed = np.ones(p, np.bool_)
    allowed[::3] = False
    out = np.empty(p, np.int64)
    size = K.greedy_forest(Q.indptr, Q.indices, np.arange(p, dtype=np.int64), allowed,
                           10, np.empty(p, np.int64), np.empty(p, np.bool_),
                           np.empty(p, np.int64), out)
    assert size == 10
    assert allowed[out[:size]].all()


@pytest.mark.parametrize("m", [5, 12])
def test_forest_partition_and_coloring(m):
    Q = _lattice_laplacian(m)
    p = Q.shape[0]
    labels, nf = K.forest_partition(Q.indptr, Q.indices, np.arange(p, dtype=np.int64))
    assert (labels >= 0).all() and labels.max() == nf - 1
    assert nf <= 3
    for k in range(nf):
        assert _induced_is_forest(Q, np.flatnonzero(labels == k))
    color, nc = K.greedy_coloring(Q.indptr, Q.indices, np.arange(p, dtype=np.int64))
    coo = Q.tocoo()
    off = coo.row != coo.col
    assert (color[coo.row[off]] != color[coo.col[off]]).all()
    assert nc == 2  # row-major greedy colouring of a lattice is the red-black one


def test_heap_rekey_keeps_max():
    rng = np.random.default_rng(0)
    p = 200
    key = rng.random(p)
    heap = np.empty(p, np.int64)
    pos = np.empty(p, np.int64)
    K.heap_build(heap, pos, key)
    for _ in range(2000):
        j = rng.integers(p)
        K.heap_rekey(heap, pos, key, j, rng.random() * 2)
        assert key[heap[0]] == key.max()
    np.testing.assert_array_equal(heap[pos], np.arange(p))
    for k in range(1, p):
        assert key[heap[(k - 1) // 2]] >= key[heap[k]]


@pytest.mark.parametrize("l1,lo,hi", [(0.0, -np.inf, np.inf), (0.7, -np.inf, np.inf),
                                      (0.7, 0.0, np.inf), (0.3, -0.5, 0.4),
                                      (0.0, 0.2, 0.2)])
def test_prox_and_scores_against_brute_force(l1, lo, hi):
    rng = np.random.default_rng(0)
    grid = np.linspace(max(lo, -20.0), min(hi, 20.0), 400001)
    for _ in range(30):
        x = float(np.clip(rng.choice([0.0, rng.standard_normal()]), lo, hi))
        g = float(rng.standard_normal() * 2)
        L = float(rng.uniform(0.5, 3))
        # prox step: argmin_z g (z - x) + L/2 (z - x)^2 + l1 |z| on [lo, hi]
        obj = g * (grid - x) + 0.5 * L * (grid - x) ** 2 + l1 * np.abs(grid)
        z = K.prox1(x - g / L, 1 / L, l1, lo, hi)
        np.testing.assert_allclose(z, grid[np.argmin(obj)], atol=1e-4)
        prog = K.gsq_progress1(x, g, L, l1, lo, hi)
        obj_z = g * (z - x) + 0.5 * L * (z - x) ** 2 + l1 * abs(z)
        assert obj_z <= obj.min() + 1e-12  # z is at least as good as the grid
        np.testing.assert_allclose(prog, l1 * abs(x) - obj_z, rtol=1e-12, atol=1e-14)
        # minimum-norm subgradient: 0 exactly when x is optimal for the model
        s = K.minnorm_subgrad1(x, g, l1, lo, hi)
        assert (s == 0.0) == (abs(z - x) < 1e-12)


def test_box_l1_qp_matches_enumeration():
    rng = np.random.default_rng(3)
    for _ in range(5):
        M = rng.standard_normal((6, 4))
        H = M.T @ M + 0.1 * np.eye(4)
        q = rng.standard_normal(4) * 3
        z = np.zeros(4)
        lo, hi = np.full(4, -0.5), np.full(4, 1.0)
        K.box_l1_qp(H, q, z, 0.4, lo, hi, 1e-14, 100000)
        g = q + H @ z
        out = np.empty(4)
        K.prox_grad_map(z, g, np.diag(H).copy(), 0.4, lo, hi, out)
        np.testing.assert_allclose(out, 0, atol=1e-10)
