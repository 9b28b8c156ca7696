"""asv benchmarks of Monarch matrices: products (three kernels and dense) and projection."""

import numpy as np

import sparseopt
from sparseopt.solvers.monarch import make_layout

N = 2048       # asv runs every parameter combination: keep it moderate
BATCH = 256


def _monarch(n, nblocks, dtype, seed=0):
    rng = np.random.default_rng(seed)
    lay = make_layout((n, n), (nblocks, nblocks))
    return sparseopt.MonarchMatrix(rng.standard_normal(lay.L_shape).astype(dtype),
                                   rng.standard_normal(lay.R_shape).astype(dtype))


class MonarchProduct:
    """``M @ X`` with ``X`` of shape ``(n, batch)``; "dense" is ``W @ X`` on the dense M."""

    params = ([4, 16, 64], ["blockdiag", "bmm", "bsr", "dense"], ["float32", "float64"])
    param_names = ("nblocks", "kernel", "dtype")

    def setup(self, nblocks, kernel, dtype):
        self.M = _monarch(N, nblocks, dtype)
        rng = np.random.default_rng(1)
        self.X = rng.standard_normal((N, BATCH)).astype(dtype)
        self.x = self.X[:, 0].copy()
        if kernel == "dense":
            self.W = self.M.todense()
        self.time_matmul(nblocks, kernel, dtype)       # warm the JIT
        self.time_matmul_t(nblocks, kernel, dtype)

    def time_matmul(self, nblocks, kernel, dtype):
        if kernel == "dense":
            self.W @ self.X
        else:
            self.M.matmul(self.X, kernel=kernel)

    def time_matmul_t(self, nblocks, kernel, dtype):
        if kernel == "dense":
            self.W.T @ self.X
        else:
            self.M.T.matmul(self.X, kernel=kernel)

    def time_matvec(self, nblocks, kernel, dtype):
        if kernel == "dense":
            self.W @ self.x
        else:
            self.M.matmul(self.x, kernel=kernel)

    def track_gflops(self, nblocks, kernel, dtype):
        """Useful GFLOP/s of ``M @ X`` (Monarch flop count, also for "dense")."""
        import time

        t0 = time.perf_counter()
        for _ in range(3):
            self.time_matmul(nblocks, kernel, dtype)
        t = (time.perf_counter() - t0) / 3
        return self.M.layout.flops(BATCH) / t / 1e9

    track_gflops.unit = "GFLOP/s"


class MonarchProjection:
    """``monarch_project`` of a dense Gaussian matrix."""

    params = ([1024, 4096], [16, 64], [1, 2])
    param_names = ("n", "nblocks", "rank")
    timeout = 300

    def setup(self, n, nblocks, rank):
        if nblocks * nblocks > n * 4:
            raise NotImplementedError  # skip: more blocks than useful
        self.W = np.random.default_rng(0).standard_normal((n, n))

    def time_project(self, n, nblocks, rank):
        sparseopt.monarch_project(self.W, nblocks, rank=rank)

    def peakmem_project(self, n, nblocks, rank):
        sparseopt.monarch_project(self.W, nblocks, rank=rank)

    def track_relative_error(self, n, nblocks, rank):
        M = sparseopt.monarch_project(self.W, nblocks, rank=rank)
        return float(np.linalg.norm(M.todense() - self.W) / np.linalg.norm(self.W))


class MonarchRecovery:
    """Exact recovery of a Monarch matrix by projection (relative error)."""

    params = ([256, 1024],)
    param_names = ("n",)

    def setup(self, n):
        b = int(np.sqrt(n))
        self.M = _monarch(n, b, np.float64)
        self.D = self.M.todense()
        self.b = b

    def track_recovery_error(self, n):
        P = sparseopt.monarch_project(self.D, self.b)
        return float(np.linalg.norm(P.todense() - self.D) / np.linalg.norm(self.D))
