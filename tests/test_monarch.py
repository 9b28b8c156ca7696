"""Monarch matrices: layout against the definition, products, optimal projection."""

import functools

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from sparseopt import BSR, MonarchMatrix, monarch_project
from sparseopt.solvers.monarch import make_layout


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # tiny BLAS calls on an oversubscribed machine are 100x slower with threads
    with threadpool_limits(1):
        yield


KERNELS = ["blockdiag", "bsr", "bmm"]

# (m, n, nblocks_out, nblocks_in, inner, rank)
LAYOUTS = [
    (16, 16, 4, 4, 16, 1),    # paper: b = sqrt(n), M = P L P R
    (24, 24, 4, 4, 24, 1),    # b^2 does not divide n: slabs of rank 1 or 2
    (16, 16, 8, 8, 16, 1),    # b > sqrt(n): some slabs structurally zero
    (12, 12, 2, 2, 12, 1),    # b < sqrt(n): rank-3 slabs
    (12, 20, 4, 4, 12, 2),    # rectangular, rank 2
    (20, 12, 2, 4, 12, 1),    # different block counts in and out
    (24, 24, 4, 4, 24, 3),    # rank 3
    (8, 18, 2, 3, 6, 1),      # rectangular with l != k, inner = lcm
]


def _perm(b, d):
    """Dense P_(b, d): reshape (b, d/b), transpose, flatten (from the definition)."""
    return np.eye(d)[np.arange(d).reshape(b, d // b).T.ravel()]


def _explicit(Lb, Rb, m, n, l, k, N, rank):
    """sum_j P_(l,m) L_j P_(l,N)^T R_j with dense block_diag, term by term."""
    r = N // l
    M = np.zeros((m, n))
    for j in range(rank):
        Rj = scipy.linalg.block_diag(*[Rb[i, j::rank] for i in range(k)])
        Lj = scipy.linalg.block_diag(*[Lb[i][:, j * r:(j + 1) * r] for i in range(l)])
        M += _perm(l, m) @ Lj @ _perm(l, N).T @ Rj
    return M


def _random_monarch(rng, m, n, l, k, N, rank, dtype=np.float64):
    lay = make_layout((m, n), (l, k), rank=rank, inner=N)
    Lb = rng.standard_normal(lay.L_shape).astype(dtype)
    Rb = rng.standard_normal(lay.R_shape).astype(dtype)
    return MonarchMatrix(Lb, Rb, rank=rank), Lb, Rb


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ---------------------------------------------------------------------------
# definition and products
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", LAYOUTS)
def test_todense_matches_definition(rng, case):
    m, n, l, k, N, rank = case
    M, Lb, Rb = _random_monarch(rng, *case)
    assert M.shape == (m, n)
    assert M.nblocks == (l, k) and M.rank == rank and M.inner_size == N
    assert M.n_params == Lb.size + Rb.size
    np.testing.assert_allclose(M.todense(), _explicit(Lb, Rb, *case), rtol=0, atol=1e-12)


def test_paper_square_case_is_P_L_P_R(rng):
    # b = sqrt(n): P is its own inverse and M = P L P R (Dao et al., Def. 3.1)
    n, b = 16, 4
    M, Lb, Rb = _random_monarch(rng, n, n, b, b, n, 1)
    P = _perm(b, n)
    np.testing.assert_array_equal(P, P.T)
    dense = P @ scipy.linalg.block_diag(*Lb) @ P @ scipy.linalg.block_diag(*Rb)
    np.testing.assert_allclose(M.todense(), dense, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch", [2, 7, 16])  # 2: loops; 7, 16: BLAS GEMMs
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("case", LAYOUTS)
def test_products_match_todense(rng, case, kernel, batch):
    m, n = case[:2]
    M, _, _ = _random_monarch(rng, *case)
    D = M.todense()
    X = rng.standard_normal((n, batch))
    Y = rng.standard_normal((m, batch))
    scale = np.abs(D).sum(axis=1).max() * np.abs(X).max()
    np.testing.assert_allclose(M.matmul(X, kernel=kernel), D @ X, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(M.matmul(X[:, 0], kernel=kernel), D @ X[:, 0],
                               rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(M.T.matmul(Y, kernel=kernel), D.T @ Y, rtol=0,
                               atol=1e-12 * scale)
    np.testing.assert_allclose(M.T.matmul(Y[:, -1], kernel=kernel), D.T @ Y[:, -1],
                               rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("case", [LAYOUTS[0], LAYOUTS[4], LAYOUTS[6], LAYOUTS[7]])
def test_products_in_column_panels(rng, case, monkeypatch):
    # a scratch budget of ~one 16-column panel: 3 panels, the last one ragged
    import sparseopt.structured as st

    m, n, _, _, N, rank = case
    monkeypatch.setattr(st, "_PANEL_BYTES", rank * N * 8 * 16)
    assert st._panel_width(rank * N, 40, 8) == 16
    M, _, _ = _random_monarch(rng, *case)
    D = M.todense()
    X = rng.standard_normal((n, 40))
    Y = rng.standard_normal((m, 40))
    scale = np.abs(D).sum(axis=1).max() * max(np.abs(X).max(), np.abs(Y).max())
    np.testing.assert_allclose(M.matmul(X, kernel="blockdiag"), D @ X, rtol=0,
                               atol=1e-12 * scale)
    np.testing.assert_allclose(M.T.matmul(Y, kernel="blockdiag"), D.T @ Y, rtol=0,
                               atol=1e-12 * scale)
    M32 = M.astype(np.float32)
    np.testing.assert_allclose(M32.matmul(X.astype(np.float32), kernel="blockdiag"),
                               M32.todense().astype(np.float64) @ X.astype(np.float32),
                               rtol=0, atol=1e-5 * scale)


def test_strided_products_write_in_place(rng):
    # the rank-1 formulation: permutations as strided views, result written into `out`
    from sparseopt.solvers.monarch import (
        blocks_to_dense,
        monarch_matmul_strided,
        monarch_rmatmul_strided,
    )

    lay = make_layout((8, 18), (2, 3), inner=6)
    Lb, Rb = rng.standard_normal(lay.L_shape), rng.standard_normal(lay.R_shape)
    D = blocks_to_dense(Lb, Rb, lay)
    X, Y = rng.standard_normal((18, 11)), rng.standard_normal((8, 11))
    for w in (11, 4):                          # one panel; three, the last ragged
        out = np.full((8, 11), np.nan)
        assert monarch_matmul_strided(Lb, Rb, lay, X, out, w) is out
        np.testing.assert_allclose(out, D @ X, rtol=0, atol=1e-12)
        out_t = np.full((18, 11), np.nan)
        assert monarch_rmatmul_strided(Lb, Rb, lay, Y, out_t, w) is out_t
        np.testing.assert_allclose(out_t, D.T @ Y, rtol=0, atol=1e-12)
    lay2 = make_layout((8, 8), (2, 2), rank=2)
    with pytest.raises(ValueError, match="rank 1"):
        monarch_matmul_strided(np.zeros(lay2.L_shape), np.zeros(lay2.R_shape), lay2,
                               np.zeros((8, 5)), np.zeros((8, 5)), 5)


def test_operators_and_transpose(rng):
    M, _, _ = _random_monarch(rng, 12, 20, 4, 4, 12, 2)
    D = M.todense()
    X = rng.standard_normal((20, 3))
    Z = rng.standard_normal((5, 12))
    np.testing.assert_allclose(M @ X, D @ X, atol=1e-12)
    np.testing.assert_allclose(Z @ M, Z @ D, atol=1e-12)
    np.testing.assert_allclose(Z[0] @ M, Z[0] @ D, atol=1e-12)
    assert M.T.shape == (20, 12)
    np.testing.assert_array_equal(M.T.todense(), D.T)
    assert M.T.T.shape == M.shape
    np.testing.assert_allclose(M.T @ Z.T, D.T @ Z.T, atol=1e-12)
    assert "MonarchMatrix.T 20x12" in repr(M.T)


def test_to_bsr_factors(rng):
    M, Lb, Rb = _random_monarch(rng, 24, 24, 4, 4, 24, 3)
    P, L, G, R = M.to_bsr()
    assert all(isinstance(f, BSR) for f in (P, L, G, R))
    assert L.blocksize == Lb.shape[1:] and R.blocksize == Rb.shape[1:]
    assert np.shares_memory(L.data, M.L_blocks)
    prod = P.to_scipy() @ L.to_scipy() @ G.to_scipy() @ R.to_scipy()
    np.testing.assert_allclose(prod.toarray(), M.todense(), atol=1e-12)
    # P and G are permutation matrices
    for perm in (P, G):
        d = perm.to_scipy().toarray()
        np.testing.assert_array_equal(d @ d.T, np.eye(d.shape[0]))
    Tf = M.T.to_bsr()
    prod_t = functools.reduce(np.matmul, [f.todense() for f in Tf])
    np.testing.assert_allclose(prod_t, M.todense().T, atol=1e-12)


def test_bsr_factors_as_input(rng):
    M, Lb, _ = _random_monarch(rng, 16, 16, 4, 4, 16, 1)
    M2 = MonarchMatrix(M.L, M.R)
    np.testing.assert_array_equal(M2.todense(), M.todense())
    scipy_bsr = BSR.from_scipy(sp.bsr_array(scipy.linalg.block_diag(*Lb), blocksize=(4, 4)))
    M3 = MonarchMatrix(scipy_bsr, M.R)
    np.testing.assert_array_equal(M3.todense(), M.todense())
    not_diag = BSR((Lb[:2], np.array([1, 0]), np.array([0, 1, 2])), shape=(8, 8))
    with pytest.raises(ValueError, match="L must be block-diagonal"):
        MonarchMatrix(not_diag, M.R)


@pytest.mark.parametrize("kernel", KERNELS)
def test_float32(rng, kernel):
    M, _, _ = _random_monarch(rng, 16, 16, 4, 4, 16, 1, dtype=np.float32)
    assert M.dtype == np.float32
    X = rng.standard_normal((16, 4)).astype(np.float32)
    out = M.matmul(X, kernel=kernel)
    assert out.dtype == np.float32
    D = M.todense().astype(np.float64)
    np.testing.assert_allclose(out, D @ X, rtol=0,
                               atol=1e-5 * np.abs(D).sum(1).max() * np.abs(X).max())
    # mixed precision promotes to float64
    assert M.matmul(X.astype(np.float64), kernel=kernel).dtype == np.float64
    assert M.astype(np.float64).dtype == np.float64


def test_integer_input_and_not_modified(rng):
    M, _, _ = _random_monarch(rng, 16, 16, 4, 4, 16, 1)
    Xi = rng.integers(-3, 4, size=(16, 2))
    Xc = Xi.copy()
    np.testing.assert_allclose(M @ Xi, M.todense() @ Xi, atol=1e-12)
    np.testing.assert_array_equal(Xi, Xc)


def test_product_bad_input(rng):
    M, _, _ = _random_monarch(rng, 16, 16, 4, 4, 16, 1)
    with pytest.raises(ValueError, match="dimension mismatch"):
        M @ np.ones(15)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        M @ np.ones((16, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        M @ np.full(16, np.nan)
    with pytest.raises(TypeError, match="real numbers"):
        M @ np.ones(16, dtype=complex)
    with pytest.raises(ValueError, match="kernel must be one of"):
        M.matmul(np.ones(16), kernel="magic")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_product_nonfinite_batches(rng, kernel, dtype, bad, monkeypatch):
    # the fused kernel checks X panel by panel: every row and every panel counts
    import sparseopt.structured as st

    monkeypatch.setattr(st, "_PANEL_BYTES", 12 * 2 * 8 * 16)   # 16-column panels
    M, _, _ = _random_monarch(rng, 12, 20, 4, 4, 12, 2, dtype=dtype)
    Mp = monarch_project(rng.standard_normal((10, 14)), (4, 4), pad=True).astype(dtype)
    for A, transpose in ((M, False), (M, True), (Mp, False), (Mp, True)):
        op = A.T if transpose else A
        for i, j in ((0, 0), (-1, -1), (3, 37), (op.shape[1] // 2, 20)):
            X = rng.standard_normal((op.shape[1], 40)).astype(dtype)
            X[i, j] = bad
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                op.matmul(X, kernel=kernel)
    X = rng.standard_normal((12, 40)).astype(dtype)
    X[5, 30] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        X.T @ M                                    # __rmatmul__ goes through M.T


def test_constructor_bad_input(rng):
    with pytest.raises(ValueError, match="inner sizes differ"):
        MonarchMatrix(np.ones((4, 4, 4)), np.ones((4, 3, 4)))
    with pytest.raises(ValueError, match="rank=3 must divide"):
        MonarchMatrix(np.ones((4, 4, 4)), np.ones((4, 4, 4)), rank=3)
    with pytest.raises(ValueError, match="L must have 3"):
        MonarchMatrix(np.ones((4, 4)), np.ones((4, 4, 4)))
    with pytest.raises(ValueError, match="R contains NaN"):
        MonarchMatrix(np.ones((4, 4, 4)), np.full((4, 4, 4), np.nan))
    with pytest.raises(ValueError, match="shape"):
        MonarchMatrix(np.ones((4, 4, 4)), np.ones((4, 4, 4)), shape=(17, 16))
    with pytest.raises(TypeError, match=r"block-diagonal sparseopt\.BSR"):
        MonarchMatrix(sp.eye(16, format="csr"), np.ones((4, 4, 4)))


# ---------------------------------------------------------------------------
# projection: exactness and optimality
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", LAYOUTS)
def test_projection_recovers_monarch(rng, case):
    m, n, l, k, N, rank = case
    M, _, _ = _random_monarch(rng, *case)
    D = M.todense()
    P = monarch_project(D, (l, k), rank=rank, inner_size=N)
    assert P.shape == (m, n) and P.n_params == M.n_params
    assert _rel(P.todense(), D) < 1e-12


def test_projection_recovers_monarch_larger(rng):
    # b = sqrt(n) with 32 x 32 blocks exercises the partial-eigensolver path
    M, _, _ = _random_monarch(rng, 1024, 1024, 32, 32, 1024, 1)
    D = M.todense()
    assert _rel(monarch_project(D, 32).todense(), D) < 1e-12
    M2, _, _ = _random_monarch(rng, 256, 256, 4, 4, 256, 2)   # rank-32 slabs of 64x64
    D2 = M2.todense()
    assert _rel(monarch_project(D2, 4, rank=2).todense(), D2) < 1e-12


def test_kronecker_and_hadamard_are_monarch(rng):
    # A (x) B = (A (x) I)(I (x) B) = P (I (x) A) P^T (I (x) B)
    A, B = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    K = np.kron(A, B)
    assert _rel(monarch_project(K, 6).todense(), K) < 1e-12
    H = scipy.linalg.hadamard(256).astype(float)
    P = monarch_project(H, 16)
    assert _rel(P.todense(), H) < 1e-12
    assert P.n_params == 2 * 256 * 16


def _optimal_error(A, m, n, l, k, N, rank):
    """Error from the singular values of each slab (independent of the factors)."""
    s, p = m // l, n // k
    slabs = A.reshape(s, l, k, p).transpose(1, 2, 0, 3)
    t = np.arange(N)
    total = 0.0
    for ll in range(l):
        for kk in range(k):
            c = rank * np.count_nonzero((t // (N // k) == kk) & (t % l == ll))
            sv = np.linalg.svd(slabs[ll, kk], compute_uv=False)
            total += np.sum(sv[c:] ** 2)
    return np.sqrt(total)


@pytest.mark.parametrize("case", LAYOUTS)
def test_projection_error_is_eckart_young(rng, case):
    m, n, l, k, N, rank = case
    A = rng.standard_normal((m, n))
    P = monarch_project(A, (l, k), rank=rank, inner_size=N)
    err = np.linalg.norm(P.todense() - A)
    np.testing.assert_allclose(err, _optimal_error(A, *case), rtol=1e-12)


def _loss(A, Lb, Rb, rank):
    return np.linalg.norm(MonarchMatrix(Lb, Rb, rank=rank).todense() - A) ** 2


@pytest.mark.parametrize("case", [LAYOUTS[0], LAYOUTS[1], LAYOUTS[4], LAYOUTS[5]])
def test_projection_beats_random_perturbations(rng, case):
    m, n, l, k, N, rank = case
    A = rng.standard_normal((m, n))
    P = monarch_project(A, (l, k), rank=rank, inner_size=N)
    best = _loss(A, P.L_blocks, P.R_blocks, rank)
    scale = np.sqrt(np.mean(P.L_blocks ** 2))
    worst_ratio = []
    for i in range(100):
        eps = scale * 10.0 ** -(1 + i % 4)
        Lp = P.L_blocks + eps * rng.standard_normal(P.L_blocks.shape)
        Rp = P.R_blocks + eps * rng.standard_normal(P.R_blocks.shape)
        worst_ratio.append(_loss(A, Lp, Rp, rank) / best)
    # every perturbation is worse; the smallest (1e-4) increases it by O(eps^2)
    assert min(worst_ratio) > 1.0


def _factor_gradient_descent(A, layout, rng, iters):
    """L-BFGS on the factors, gradient from the BSR factors P L G R (dense here)."""
    from sparseopt.structured import MonarchMatrix as MM

    Ls, Rs = layout.L_shape, layout.R_shape
    proto = MM(np.ones(Ls), np.ones(Rs), rank=layout.rank)
    P, Lm, G, Rm = (f.todense() for f in proto.to_bsr())
    Lmask, Rmask = Lm != 0, Rm != 0
    nL = int(np.prod(Ls))

    def unpack(z):
        Lfull = np.zeros(Lm.shape)
        Rfull = np.zeros(Rm.shape)
        Lfull[Lmask] = z[:nL]
        Rfull[Rmask] = z[nL:]
        return Lfull, Rfull

    def fun(z):
        Lfull, Rfull = unpack(z)
        E = P @ Lfull @ G @ Rfull - A
        gL = 2 * P.T @ E @ (G @ Rfull).T
        gR = 2 * (P @ Lfull @ G).T @ E
        return np.sum(E ** 2), np.concatenate([gL[Lmask], gR[Rmask]])

    z0 = rng.standard_normal(nL + int(np.prod(Rs)))
    res = scipy.optimize.minimize(fun, z0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": iters, "gtol": 1e-12, "ftol": 1e-15})
    return res.fun


@pytest.mark.parametrize("case", [LAYOUTS[0], LAYOUTS[1], LAYOUTS[5], LAYOUTS[6]])
def test_projection_beats_gradient_descent(rng, case):
    m, n, l, k, N, rank = case
    A = rng.standard_normal((m, n))
    P = monarch_project(A, (l, k), rank=rank, inner_size=N)
    best = np.linalg.norm(P.todense() - A) ** 2
    layout = make_layout((m, n), (l, k), rank=rank, inner=N)
    finals = [_factor_gradient_descent(A, layout, rng, 3000) for _ in range(3)]
    # no descent run goes below the closed form ...
    assert min(finals) >= best * (1 - 1e-10)
    # ... and they reach it (the factorisation has no spurious local minima)
    np.testing.assert_allclose(min(finals), best, rtol=1e-6)


def test_projection_float32(rng):
    A = rng.standard_normal((64, 64)).astype(np.float32)
    P = monarch_project(A, 8)
    assert P.dtype == np.float32
    P64 = monarch_project(A.astype(np.float64), 8)
    np.testing.assert_allclose(P.todense(), P64.todense(), rtol=0, atol=1e-5)


def test_projection_edge_shapes(rng):
    for shape in [(1, 1), (1, 7), (7, 1), (5, 3)]:
        A = rng.standard_normal(shape)
        P = monarch_project(A, 1)             # one block each: a full-rank factorisation
        np.testing.assert_allclose(P.todense(), A, atol=1e-14)
    Z = np.zeros((16, 16))
    P = monarch_project(Z, 4)
    np.testing.assert_array_equal(P.todense(), Z)
    # nblocks = n: diagonal Monarch (1x1 blocks)
    A = rng.standard_normal((6, 6))
    P = monarch_project(A, 6)
    np.testing.assert_allclose(P.todense(), np.diag(np.diag(A)), atol=1e-14)


def test_auto_nblocks(rng):
    assert monarch_project(rng.standard_normal((64, 64))).nblocks == (8, 8)
    assert monarch_project(rng.standard_normal((48, 64))).nblocks == (4, 4)
    assert monarch_project(rng.standard_normal((7, 5))).nblocks == (1, 1)


def test_padding(rng):
    A = rng.standard_normal((10, 14))
    with pytest.raises(ValueError, match="pass pad=True"):
        monarch_project(A, 4)
    P = monarch_project(A, 4, pad=True)
    assert P.shape == (10, 14) and P.padded_shape == (12, 16)
    Ap = np.zeros((12, 16))
    Ap[:10, :14] = A
    Pp = monarch_project(Ap, 4)
    np.testing.assert_allclose(P.todense(), Pp.todense()[:10, :14], atol=1e-14)
    X = rng.standard_normal((14, 3))
    for kernel in KERNELS:
        np.testing.assert_allclose(P.matmul(X, kernel=kernel), P.todense() @ X, atol=1e-12)
        np.testing.assert_allclose(P.T.matmul(X[:10], kernel=kernel),
                                   P.todense().T @ X[:10], atol=1e-12)


def test_project_bad_input(rng):
    A = rng.standard_normal((16, 16))
    bad = A.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="W contains NaN"):
        monarch_project(bad, 4)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="W contains infinity"):
        monarch_project(bad, 4)
    with pytest.raises(ValueError, match="nblocks must be > 0"):
        monarch_project(A, 0)
    with pytest.raises(ValueError, match="nblocks must be > 0"):
        monarch_project(A, (4, -1))
    with pytest.raises(TypeError, match="nblocks"):
        monarch_project(A, 2.5)
    with pytest.raises(ValueError, match="nblocks must be"):
        monarch_project(A, "many")
    with pytest.raises(ValueError, match="rank must be > 0"):
        monarch_project(A, 4, rank=0)
    with pytest.raises(ValueError, match="inner_size=10"):
        monarch_project(A, 4, inner_size=10)
    with pytest.raises(ValueError, match="W must have 2"):
        monarch_project(np.ones(16), 4)
    with pytest.raises(TypeError, match="W must be a dense array"):
        monarch_project(sp.eye(16, format="csr"), 4)
    with pytest.raises(TypeError, match="pad must be a bool"):
        monarch_project(A, 4, pad="yes")


def test_project_does_not_modify_input(rng):
    A = rng.standard_normal((24, 24))
    A32 = A.astype(np.float32)
    copies = A.copy(), A32.copy()
    monarch_project(A, 4, rank=2)
    monarch_project(A32, 4)
    np.testing.assert_array_equal(A, copies[0])
    np.testing.assert_array_equal(A32, copies[1])
