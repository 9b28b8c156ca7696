"""Monarch on device arrays: the backend-generic products, dense form and projection.

Without a GPU the device path runs on ``array_api_strict`` arrays through a
stand-in backend (``tests/xp_strict_backend.py``, registered for the test so
that ``MonarchMatrix`` and ``monarch_project`` dispatch to it exactly as they
do for CuPy arrays; its BSR kernels are the CPU's), and is compared with the
CPU path; a ``cudasim`` test runs the BSR product through the real
``CupyBackend`` in numba's CUDA simulator.  ``gpu``-marked tests compare CuPy
with NumPy on a device::

    python -m pytest -m gpu tests/test_monarch_gpu.py
"""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sparseopt import MonarchMatrix, monarch_project
from sparseopt._numpy_backend import NumpyBackend
from sparseopt.solvers import _monarch_xp
from sparseopt.solvers.monarch import make_layout, project_blocks
from tests.xp_strict_backend import registered

xs = pytest.importorskip("array_api_strict")
_STRICT_ARRAY = type(xs.asarray(0.0))

# (m, n, nblocks_out, nblocks_in, inner, rank), as in test_monarch.py
LAYOUTS = [
    (16, 16, 4, 4, 16, 1),
    (24, 24, 4, 4, 24, 1),
    (16, 16, 8, 8, 16, 1),
    (12, 20, 4, 4, 12, 2),
    (20, 12, 2, 4, 12, 1),
    (8, 18, 2, 3, 6, 1),
]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture
def strict():
    with registered() as backend:
        yield backend


def _pair(rng, m, n, l, k, N, rank, dtype=np.float64):
    lay = make_layout((m, n), (l, k), rank=rank, inner=N)
    Lb = rng.standard_normal(lay.L_shape).astype(dtype)
    Rb = rng.standard_normal(lay.R_shape).astype(dtype)
    host = MonarchMatrix(Lb, Rb, rank=rank)
    dev = MonarchMatrix(xs.asarray(Lb), xs.asarray(Rb), rank=rank)
    return host, dev


@pytest.mark.parametrize("case", LAYOUTS)
@pytest.mark.parametrize("kernel", ["auto", "bmm", "bsr"])
def test_products_match_cpu(strict, rng, case, kernel):
    host, dev = _pair(rng, *case)
    m, n = host.shape
    assert isinstance(dev.L_blocks, _STRICT_ARRAY)
    for B in (1, 5):
        X = rng.standard_normal((n, B))
        Y = dev.matmul(xs.asarray(X), kernel=kernel)
        assert isinstance(Y, _STRICT_ARRAY) and tuple(Y.shape) == (m, B)
        np.testing.assert_allclose(np.asarray(Y), host.matmul(X), rtol=1e-12, atol=1e-12)
        Z = rng.standard_normal((m, B))
        np.testing.assert_allclose(np.asarray(dev.T.matmul(xs.asarray(Z), kernel=kernel)),
                                   host.T @ Z, rtol=1e-12, atol=1e-12)
    x = rng.standard_normal(n)
    y = dev.matmul(xs.asarray(x), kernel=kernel)
    assert y.ndim == 1
    np.testing.assert_allclose(np.asarray(y), host @ x, rtol=1e-12, atol=1e-12)
    assert ("bsr_spmm" in strict.calls) == (kernel == "bsr")   # auto -> bmm on a device
    np.testing.assert_allclose(np.asarray(dev.todense()), host.todense(), rtol=1e-12,
                               atol=1e-13)
    np.testing.assert_allclose(np.asarray(dev.T.todense()), host.T.todense(), rtol=1e-12,
                               atol=1e-13)
    Xr = rng.standard_normal((3, m))         # X @ M (strict arrays refuse to defer to it)
    np.testing.assert_allclose(np.asarray(dev.__rmatmul__(xs.asarray(Xr))), Xr @ host,
                               rtol=1e-12, atol=1e-12)


def test_dtypes_padding_and_integer_input(strict, rng):
    host, dev = _pair(rng, 12, 20, 4, 4, 12, 2, dtype=np.float32)
    assert dev.dtype == xs.float32
    X = rng.standard_normal((20, 3)).astype(np.float32)
    Y = dev @ xs.asarray(X)
    assert Y.dtype == xs.float32
    np.testing.assert_allclose(np.asarray(Y), host @ X, rtol=1e-5, atol=1e-5)
    Y64 = dev @ xs.asarray(X.astype(np.float64))           # float32 only when both are
    assert Y64.dtype == xs.float64
    np.testing.assert_allclose(np.asarray(Y64), host @ X.astype(np.float64), rtol=1e-5,
                               atol=1e-5)
    ints = np.arange(20 * 2).reshape(20, 2) % 5
    np.testing.assert_allclose(np.asarray(dev @ xs.asarray(ints)), host @ ints, rtol=1e-5,
                               atol=1e-4)
    assert dev.astype(np.float64).dtype == xs.float64
    assert dev.astype(xs.float64).dtype == xs.float64
    assert host.astype("float64").dtype == np.float64
    # logical shape smaller than the blocks: inputs padded, outputs cut
    W = rng.standard_normal((30, 50))
    ref = monarch_project(W, (4, 3), pad=True)
    mine = monarch_project(xs.asarray(W), (4, 3), pad=True)
    assert mine.shape == (30, 50) and mine.padded_shape == ref.padded_shape
    X = rng.standard_normal((50, 4))
    for kernel in ("bmm", "bsr"):
        np.testing.assert_allclose(np.asarray(mine.matmul(xs.asarray(X), kernel=kernel)),
                                   ref @ X, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, nblocks, rank", [
    ((64, 64), 8, 1),          # tiny slabs: the CPU's batched SVD
    ((128, 128), 4, 1),        # 32 x 32 slabs of rank 8: the CPU's partial eigensolver
    ((48, 36), (4, 6), 2),     # rectangular, rank 2
    ((16, 16), 8, 1),          # structurally zero slabs
    ((40, 24), (2, 4), 3),     # slab rank above min(s, p) for some slabs
])
def test_projection_matches_cpu(strict, rng, shape, nblocks, rank):
    W = rng.standard_normal(shape)
    ref = monarch_project(W, nblocks, rank=rank)
    mine = monarch_project(xs.asarray(W), nblocks, rank=rank)
    assert isinstance(mine.L_blocks, _STRICT_ARRAY) and mine.rank == rank
    D, Dr = np.asarray(mine.todense()), ref.todense()
    # both are the unique optimum (distinct singular values): equal to rounding
    np.testing.assert_allclose(D, Dr, rtol=1e-9, atol=1e-9 * np.abs(Dr).max())
    np.testing.assert_allclose(np.linalg.norm(W - D), np.linalg.norm(W - Dr), rtol=1e-12)
    # a Kronecker product is a Monarch matrix: recovered exactly
    A = np.kron(rng.standard_normal((8, 8)), rng.standard_normal((8, 8)))
    K = monarch_project(xs.asarray(A), 8)
    np.testing.assert_allclose(np.asarray(K.todense()), A, atol=1e-11 * np.abs(A).max())


def test_projection_forced_on_numpy(rng):
    """The gather-based projection with the CPU backend, float32 in float32 out."""
    W = rng.standard_normal((96, 64)).astype(np.float32)
    lay = make_layout((96, 64), (4, 8), rank=2)
    Lb, Rb = _monarch_xp.project_blocks_xp(NumpyBackend(), W, lay)
    assert Lb.dtype == Rb.dtype == np.float32
    Lr, Rr = project_blocks(W, lay)
    np.testing.assert_allclose(MonarchMatrix(Lb, Rb, rank=2).todense(),
                               MonarchMatrix(Lr, Rr, rank=2).todense(), rtol=1e-5, atol=1e-5)


def test_inputs_untouched_and_bad_input(strict, rng):
    host, dev = _pair(rng, 16, 16, 4, 4, 16, 1)
    X = xs.asarray(rng.standard_normal((16, 3)))
    before = np.asarray(X).copy()
    blocks = np.asarray(dev.L_blocks).copy()
    dev.matmul(X, kernel="bsr")
    dev.T.matmul(X)
    np.testing.assert_array_equal(np.asarray(X), before)
    np.testing.assert_array_equal(np.asarray(dev.L_blocks), blocks)
    W = rng.standard_normal((16, 16))
    Wd = xs.asarray(W)
    monarch_project(Wd, 4)
    np.testing.assert_array_equal(np.asarray(Wd), W)
    with pytest.raises(ValueError, match="dimension mismatch"):
        dev @ xs.ones((15, 2))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        dev @ xs.ones((16, 2, 2))
    with pytest.raises(ValueError, match="blockdiag"):
        dev.matmul(X, kernel="blockdiag")
    with pytest.raises(TypeError, match="real numbers"):
        dev @ (X + 0j)
    bad = W.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="W contains NaN"):
        monarch_project(xs.asarray(bad), 4)
    with pytest.raises(ValueError, match="nblocks"):
        monarch_project(Wd, 5)
    with pytest.raises(ValueError, match="L contains infinity"):
        MonarchMatrix(xs.asarray(np.full((4, 4, 4), np.inf)), dev.R_blocks)
    # host and device operands: a TypeError saying which is where
    with pytest.raises(TypeError, match=r"M: array_api_strict \(device\), X: numpy \(host\)"):
        dev @ np.ones((16, 2))
    with pytest.raises(TypeError, match=r"M: numpy \(host\), X: array_api_strict \(device\)"):
        host @ X
    with pytest.raises(TypeError, match=r"L: numpy \(host\), R: array_api_strict"):
        MonarchMatrix(np.ones((4, 4, 4)), dev.R_blocks)


# ------------------------------------------------------------------ on a GPU


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["auto", "bmm", "bsr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cupy_matches_numpy(cp, kernel, dtype):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((256, 192)).astype(dtype)
    ref = monarch_project(W, (8, 8), rank=2)
    dev = monarch_project(cp.asarray(W), (8, 8), rank=2)
    assert isinstance(dev.L_blocks, cp.ndarray) and dev.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(cp.asnumpy(dev.todense()), ref.todense(), rtol=tol, atol=tol)
    X = rng.standard_normal((192, 33)).astype(dtype)
    Y = dev.matmul(cp.asarray(X), kernel=kernel)
    assert isinstance(Y, cp.ndarray) and Y.dtype == dtype
    np.testing.assert_allclose(cp.asnumpy(Y), ref @ X, rtol=tol, atol=tol * 10)
    Z = rng.standard_normal((256, 4)).astype(dtype)
    np.testing.assert_allclose(cp.asnumpy(dev.T.matmul(cp.asarray(Z), kernel=kernel)),
                               ref.T @ Z, rtol=tol, atol=tol * 10)
    P, L, G, R = dev.to_bsr()
    assert all(isinstance(f.data, cp.ndarray) for f in (P, L, G, R))
    D = cp.asarray(np.eye(192, dtype=dtype))
    np.testing.assert_allclose(cp.asnumpy(P @ (L @ (G @ (R @ D)))), ref.todense(),
                               rtol=tol, atol=tol * 10)
    with pytest.raises(TypeError, match=r"X: numpy \(host\)"):
        dev @ X


@pytest.mark.cudasim
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="needs NUMBA_ENABLE_CUDASIM=1 before numba is imported")
@pytest.mark.parametrize("transposed", [False, True])
def test_bsr_product_on_simulated_cupy_backend(rng, transposed):
    """The "bsr" product through CupyBackend's numba.cuda BSR kernels (simulated)."""
    from sparseopt.gpu import CupyBackend

    host, _ = _pair(rng, 12, 20, 4, 4, 12, 2)
    X = rng.standard_normal((12 if transposed else 20, 3))
    Y = _monarch_xp.bsr_product(CupyBackend(xp=np), {}, host.L_blocks, host.R_blocks,
                                host.layout, X, transposed)
    np.testing.assert_allclose(Y, (host.T if transposed else host) @ X, rtol=1e-12,
                               atol=1e-12)
