"""Distributed sparse arrays and products on a LocalCluster of worker processes.

One module-scoped cluster (2 worker processes, 1 thread each, a 150 MB
memory limit with spilling to disk from 40 % of it) serves every test here:
starting one costs seconds.  The products are compared with scipy.sparse
(exact up to summation order); the fault-tolerance tests kill a worker
process mid-computation, the spilling test persists more data than one
worker's memory limit.
"""

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (a dependency of distributed)

from sparseopt.distributed import (  # noqa: E402
    from_blocks,
    from_files,
    from_scipy,
    spgemm,
    spmm,
    spmm_t,
)

pytestmark = pytest.mark.dist

# the helpers below run on the workers, which cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MEMORY_LIMIT = 150_000_000

@pytest.fixture(scope="module")
def client():
    from sparseopt.distributed.preload import warm_kernels

    warm_kernels()  # compile here once; the workers then load from the cache
    config = {
        "distributed.worker.memory.target": 0.4,  # spill managed data beyond 60 MB
        "distributed.worker.memory.spill": False,  # not on process memory (~200 MB of imports)
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        # a survivor asking a killed worker for data gives up after 3 s, not 30 s
        "distributed.comm.timeouts.connect": "3s",
        # a (re)started worker joins once the kernels are loaded
        "distributed.worker.preload": ["sparseopt.distributed.preload"],
    }
    # kept set while the cluster lives: a nanny restarting a killed worker reads the
    # config again, and a replacement with the default pause threshold (80 % of the
    # limit, below the ~200 MB of imports) would be paused forever
    with dask.config.set(config):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit=MEMORY_LIMIT,
            dashboard_address=None, silence_logs=40)
        c = distributed.Client(cluster, set_as_default=False)
        yield c
        c.close()
        cluster.close()


def _compute(x, client):
    return dask.compute(x, scheduler=client)[0]


def _random(m, n, density, seed, dtype=np.float64):
    return sp.random_array((m, n), density=density, format="csr", random_state=seed,
                           dtype=dtype)


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


# ---------------------------------------------------------------------------
# construction (local scheduler: no cluster needed)


@pytest.mark.parametrize("chunks", [4, (3, 0, 7, 5), 100])
def test_from_scipy_roundtrip(chunks):
    A = _random(15, 6, 0.4, 0)
    before = A.copy()
    dA = from_scipy(A, chunks)
    assert dA.shape == A.shape
    assert sum(dA.chunks[0]) == 15 and dA.chunks[1] == (6,)
    assert isinstance(dA._meta, sp.csr_array)
    back = dA.compute()
    assert sp.issparse(back)
    np.testing.assert_array_equal(back.toarray(), A.toarray())
    np.testing.assert_array_equal(A.toarray(), before.toarray())  # input untouched
    # dask must see the blocks' real size (it only knows spmatrix): spilling depends on it
    from dask.sizeof import sizeof

    assert sizeof(A) >= A.data.nbytes + A.indices.nbytes + A.indptr.nbytes


def test_from_scipy_2d_grid_float32_int64_and_our_csr():
    from sparseopt import CSR

    A = _random(11, 9, 0.3, 1, np.float32)
    A64 = sp.csr_array((A.data, A.indices.astype(np.int64), A.indptr.astype(np.int64)),
                       shape=A.shape)
    for src in (A, A64, CSR.from_scipy(A)):
        dA = from_scipy(src, 4, col_chunks=(5, 4))
        assert dA.dtype == np.float32
        assert dA.chunks == ((4, 4, 3), (5, 4))
        np.testing.assert_array_equal(dA.compute().toarray(), A.toarray())
    # integer input becomes float64
    assert from_scipy(sp.csr_array(np.eye(3, dtype=np.int64)), 2).dtype == np.float64


def test_from_blocks_list_grid_delayed_pydata():
    import sparse

    A = _random(10, 7, 0.4, 2)
    blocks = [A[:3], sparse.GCXS.from_scipy_sparse(A[3:8]), dask.delayed(lambda: A[8:])()]
    dA = from_blocks(blocks, shapes=[(3, 7), (5, 7), (2, 7)])
    assert dA.chunks == ((3, 5, 2), (7,))
    np.testing.assert_array_equal(dA.compute().toarray(), A.toarray())
    grid = [[A[:4, :3], A[:4, 3:]], [A[4:, :3], A[4:, 3:]]]
    dG = from_blocks(grid)
    assert dG.chunks == ((4, 6), (3, 4))
    np.testing.assert_array_equal(dG.compute().toarray(), A.toarray())


@pytest.mark.parametrize("fmt", ["mtx", "npz"])
def test_from_files_is_lazy(tmp_path, fmt):
    import scipy.io

    A = _random(12, 5, 0.5, 3)
    parts = [A[:5], A[5:]]
    paths = []
    for k, part in enumerate(parts):
        p = tmp_path / f"block{k}.{fmt}"
        if fmt == "mtx":
            scipy.io.mmwrite(p, sp.coo_matrix(part))
        else:
            sp.save_npz(p, sp.csr_matrix(part))
        paths.append(p)
    dA = from_files(paths)
    assert dA.chunks == ((5, 7), (5,))
    # the data is read at compute time: rewriting a file now changes the result
    new_first = 2.0 * parts[0]
    if fmt == "mtx":
        scipy.io.mmwrite(paths[0], sp.coo_matrix(new_first))
    else:
        sp.save_npz(paths[0], sp.csr_matrix(new_first))
    expected = sp.vstack([new_first, parts[1]]).toarray()
    np.testing.assert_allclose(dA.compute().toarray(), expected, rtol=1e-15)
    x = np.arange(5.0)
    np.testing.assert_allclose(spmm(dA, x).compute(), expected @ x, rtol=1e-12)


def test_bad_input_messages(tmp_path):
    A = _random(6, 4, 0.5, 4)
    with pytest.raises(ValueError, match=r"block \(1, 0\) has 3 columns"):
        from_blocks([A[:3], A[3:, :3]])
    with pytest.raises(ValueError, match=r"block \(0, 1\) has 2 rows"):
        from_blocks([[A[:3, :2], A[:2, 2:]], [A[3:, :2], A[3:, 2:]]])
    with pytest.raises(TypeError, match=r"blocks\[1\] must be sparse"):
        from_blocks([A[:3], A[3:].toarray()])
    with pytest.raises(ValueError, match="give its shape"):
        from_blocks([dask.delayed(lambda: A)()])
    with pytest.raises(ValueError, match="row_chunks"):
        from_scipy(A, 0)
    with pytest.raises(ValueError, match="summing to 6"):
        from_scipy(A, (2, 2))
    with pytest.raises(TypeError, match="must be sparse"):
        from_scipy(A.toarray(), 2)
    with pytest.raises(FileNotFoundError, match="no such block file"):
        from_files([tmp_path / "missing.npz"])
    # a delayed block that turns out dense: a clear error at compute time
    bad = from_blocks([dask.delayed(lambda: np.ones((2, 4)))()], shapes=[(2, 4)])
    with pytest.raises(TypeError, match=r"blocks\[0\] must be sparse"):
        bad.compute()
    # dense chunks where sparse are required
    import dask.array as da

    dense = da.from_array(A.toarray(), chunks=3)
    with pytest.raises(TypeError, match="must have sparse chunks"):
        spmm(dense, np.ones(4))
    with pytest.raises(TypeError, match="dask array of sparse blocks"):
        spmm(A, np.ones(4))
    dA = from_scipy(A, 3)
    with pytest.raises(ValueError, match="dimension mismatch in A @ X"):
        spmm(dA, np.ones(5))
    with pytest.raises(ValueError, match=r"dimension mismatch in A.T @ X"):
        spmm_t(dA, np.ones(4))
    with pytest.raises(ValueError, match="dimension mismatch in A @ B"):
        spgemm(dA, A)
    with pytest.raises(ValueError, match="method must be"):
        spgemm(dA, A.T, method="cannon")


def test_missing_scheduler_errors():
    from sparseopt.distributed._client import resolve_client

    with pytest.raises(RuntimeError, match="no Dask scheduler"):
        resolve_client(None, require=True)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(RuntimeError, match="no Dask scheduler reachable at"):
        resolve_client("tcp://127.0.0.1:9")
    with pytest.raises(TypeError, match="client must be"):
        resolve_client(3)


# ---------------------------------------------------------------------------
# products on the cluster


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_spmm_spmm_t_match_scipy(client, dtype):
    rng = np.random.default_rng(5)
    A = _random(40, 17, 0.2, 5, dtype)
    X = rng.standard_normal((17, 3)).astype(dtype)
    Z = rng.standard_normal((40, 3)).astype(dtype)
    X0, Z0 = X.copy(), Z.copy()
    dA = from_scipy(A, 9)
    for got, ref in [
        (spmm(dA, X), A @ X),
        (spmm(dA, X[:, 0]), A @ X[:, 0]),
        (spmm_t(dA, Z), A.T @ Z),
        (spmm_t(dA, Z[:, 1]), A.T @ Z[:, 1]),
    ]:
        out = _compute(got, client)
        assert out.dtype == dtype and out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=_tol(dtype), atol=_tol(dtype))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Z, Z0)


def test_spmm_2d_grid_dask_operand_and_mixed_dtypes(client):
    import dask.array as da

    rng = np.random.default_rng(6)
    A = _random(30, 20, 0.2, 6, np.float32)
    X = rng.standard_normal((20, 4))  # float64: the result is float64
    dA = from_scipy(A, 8, col_chunks=7)
    dX = da.from_array(X, chunks=(6, 2))  # misaligned with A's column blocks
    Y = _compute(spmm(dA, dX), client)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, A.astype(np.float64) @ X, rtol=1e-12)
    Z = rng.standard_normal((30, 2))
    np.testing.assert_allclose(_compute(spmm_t(dA, da.from_array(Z, chunks=11)), client),
                               A.T.astype(np.float64) @ Z, rtol=1e-12, atol=1e-12)
    # one row, one column
    a = _random(1, 5, 1.0, 7)
    np.testing.assert_allclose(_compute(spmm(from_scipy(a, 1), np.ones(5)), client),
                               a @ np.ones(5), rtol=1e-14)
    c = _random(6, 1, 1.0, 8)
    np.testing.assert_allclose(_compute(spmm_t(from_scipy(c, 4), np.ones(6)), client),
                               c.T @ np.ones(6), rtol=1e-14)


@pytest.mark.parametrize("method", ["broadcast", "summa", "auto"])
def test_spgemm_matches_scipy(client, method):
    A = _random(35, 25, 0.15, 9)
    B = _random(25, 18, 0.15, 10)
    ref = (A @ B).toarray()
    cases = [
        (from_scipy(A, 10), B),  # local B
        (from_scipy(A, 10), from_scipy(B, 8)),  # row-chunked dask B
        (from_scipy(A, 10, col_chunks=9), from_scipy(B, 6, col_chunks=7)),  # 2-D grids
    ]
    for dA, Bx in cases:
        C = spgemm(dA, Bx, method=method, client=client)
        assert isinstance(C._meta, sp.csr_array)
        out = _compute(C, client)
        assert sp.issparse(out) and out.shape == ref.shape
        np.testing.assert_allclose(out.toarray(), ref, rtol=1e-13, atol=1e-15)
        if method == "broadcast":
            assert C.numblocks[1] == 1


def test_spgemm_auto_picks_summa_when_b_is_too_big(client, monkeypatch):
    from sparseopt.distributed import _products

    A = _random(20, 20, 0.2, 11)
    dA = from_scipy(A, 7)
    # the limit is a quarter of the worker memory limit
    assert _products.broadcast_limit(client) == MEMORY_LIMIT // 4
    monkeypatch.setattr(_products, "broadcast_limit", lambda client=None: 10)
    C = spgemm(dA, from_scipy(A, 5, col_chunks=10), client=client)
    assert C.numblocks == (3, 2)  # SUMMA keeps B's column blocks
    np.testing.assert_allclose(_compute(C, client).toarray(), (A @ A).toarray(), rtol=1e-13)


# ---------------------------------------------------------------------------
# fault tolerance and spilling


def _slow_identity(block, seconds):
    time.sleep(seconds)
    return block


def _kill_one_worker(client, delay):
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]

    def kill():
        time.sleep(delay)
        os.kill(victim, signal.SIGKILL)

    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t, victim


def test_killed_worker_mid_product_is_replaced(client):
    A = _random(80, 30, 0.2, 12)
    x = np.random.default_rng(12).standard_normal(30)
    dA = from_scipy(A, 10)
    slow = dA.map_blocks(_slow_identity, 0.4, dtype=dA.dtype, meta=dA._meta)
    y = spmm(slow, x)
    fut = client.compute(y)
    killer, victim = _kill_one_worker(client, 0.6)
    out = fut.result(timeout=300)
    killer.join()
    np.testing.assert_allclose(out, A @ x, rtol=1e-12, atol=1e-12)
    client.wait_for_workers(2, timeout=120)
    assert victim not in client.run(os.getpid).values()


def _banded_block(i, rows, n, k, seed):
    """A deterministic sparse block with k entries per row (cheap to regenerate)."""
    rng = np.random.default_rng(seed + i)
    indptr = np.arange(rows + 1, dtype=np.int64) * k
    indices = ((np.arange(rows)[:, None] * 7 + np.arange(k)[None, :] * 13 + i) % n)
    return sp.csr_array((rng.standard_normal(rows * k), indices.ravel().astype(np.int32),
                         indptr), shape=(rows, n))


def test_larger_than_worker_memory_completes_by_spilling(client):
    n_blocks, rows, n, k = 8, 60_000, 4_000, 32
    block_bytes = rows * k * 12 + (rows + 1) * 8  # float64 data + int32 indices + indptr
    assert n_blocks * block_bytes > MEMORY_LIMIT
    blocks = [dask.delayed(_banded_block, pure=True)(i, rows, n, k, 100)
              for i in range(n_blocks)]
    dA = from_blocks(blocks, shapes=[(rows, n)] * n_blocks)
    dA = client.persist(dA)
    with client.as_current():
        distributed.wait(dA)
    spilled = client.run(lambda dask_worker: len(dask_worker.data.slow))
    assert sum(spilled.values()) > 0, "nothing was spilled to disk"
    x = np.random.default_rng(0).standard_normal(n)
    y = _compute(spmm(dA, x), client)
    z = np.random.default_rng(1).standard_normal(n_blocks * rows)
    g = _compute(spmm_t(dA, z), client)
    g_ref = np.zeros(n)
    for i in range(n_blocks):
        B = _banded_block(i, rows, n, k, 100)
        np.testing.assert_allclose(y[i * rows:(i + 1) * rows], B @ x, rtol=1e-12, atol=1e-12)
        g_ref += B.T @ z[i * rows:(i + 1) * rows]
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)
    del dA


# ---------------------------------------------------------------------------
# solvers on the cluster


def _lasso_problem(n=160, p=20, seed=20):
    rng = np.random.default_rng(seed)
    X = _random(n, p, 0.3, seed)
    w = np.zeros(p)
    w[:3] = 2.0 * rng.standard_normal(3)
    return X, X @ w + 0.1 * rng.standard_normal(n) + 1.0


def test_lasso_on_cluster_equals_single_machine(client):
    from sklearn.linear_model import Lasso as SkLasso

    from sparseopt.distributed import Lasso, lasso

    X, y = _lasso_problem()
    alpha, tol = 0.02, 1e-8
    res = lasso(from_scipy(X, 40), y, alpha=alpha, tol=tol, client=client)
    sk = SkLasso(alpha=alpha, tol=tol, max_iter=100_000).fit(X, y)
    assert res.converged and res.n_blocks == 4
    np.testing.assert_allclose(res.coef, sk.coef_, atol=1e-4)
    yc2 = np.var(y)

    def obj(w, b):
        return 0.5 * np.mean((y - X @ w - b) ** 2) + alpha * np.abs(w).sum()

    assert abs(obj(res.coef, res.intercept) - obj(sk.coef_, sk.intercept_)) <= 2 * tol * yc2
    # the estimator on the active client, in-memory input split over the workers
    with client.as_current():
        model = Lasso(alpha=alpha, tol=tol).fit(X, y)
    np.testing.assert_allclose(model.coef_, res.coef, atol=1e-4)


def test_killed_worker_mid_lasso_solve(client):
    from sparseopt.distributed import lasso

    X, y = _lasso_problem(seed=21)
    alpha, tol = 0.02, 1e-8
    ref = lasso(X, y, alpha=alpha, tol=tol)  # in-process, same algorithm
    killer, victim = _kill_one_worker(client, 2.0)
    res = lasso(from_scipy(X, 40), y, alpha=alpha, tol=tol, client=client, max_iter=5000)
    killer.join()
    assert res.converged
    # same iterates up to summation order: the same solution to the solver tolerance
    np.testing.assert_allclose(res.coef, ref.coef, atol=1e-6)
    np.testing.assert_allclose(res.intercept, ref.intercept, atol=1e-6)
    assert victim not in client.run(os.getpid).values()
