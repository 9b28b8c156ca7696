"""asv benchmarks of sparseopt.distributed: SpMM and a Lasso fit with 1 and 2 workers.

A LocalCluster of worker processes (1 thread each) is started in ``setup``
and the data persisted on it, so the timed calls measure the distributed
products and solver, not start-up.  ``n_workers = 0`` is the single-machine
path on the same data (the overhead baseline).
"""

import numpy as np
import scipy.sparse as sp


class _Cluster:
    params = ([0, 1, 2],)
    param_names = ("n_workers",)
    timeout = 300

    def _start(self, n_workers):
        import dask
        import distributed

        from sparseopt.distributed.preload import warm_kernels

        warm_kernels()
        self.client = self.cluster = None
        if n_workers:
            with dask.config.set({"distributed.worker.preload":
                                  ["sparseopt.distributed.preload"]}):
                self.cluster = distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=40)
            self.client = distributed.Client(self.cluster)

    def teardown(self, n_workers):
        if self.client is not None:
            self.client.close()
            self.cluster.close()


class SpMM(_Cluster):
    def setup(self, n_workers):
        from sparseopt.distributed import from_scipy

        self._start(n_workers)
        rng = np.random.default_rng(0)
        self.A = sp.random_array((200_000, 20_000), density=5e-4, format="csr",
                                 random_state=rng)
        self.X = rng.standard_normal((20_000, 32))
        if self.client is not None:
            self.dA = self.client.persist(from_scipy(self.A, 50_000))
        self.time_spmm(n_workers)

    def time_spmm(self, n_workers):
        if self.client is None:
            import sparseopt

            sparseopt.spmm(self.A, self.X)
        else:
            from sparseopt.distributed import spmm

            spmm(self.dA, self.X).compute()

    def track_gflops(self, n_workers):
        import time

        t0 = time.perf_counter()
        self.time_spmm(n_workers)
        return 2 * self.A.nnz * self.X.shape[1] / (time.perf_counter() - t0) / 1e9

    track_gflops.unit = "GFLOP/s"


class LassoFit(_Cluster):
    def setup(self, n_workers):
        from sparseopt.distributed import from_scipy

        self._start(n_workers)
        rng = np.random.default_rng(0)
        self.X = sp.random_array((50_000, 2_000), density=0.01, format="csr",
                                 random_state=rng)
        w = np.zeros(2_000)
        w[:20] = rng.standard_normal(20)
        self.y = self.X @ w + 0.01 * rng.standard_normal(50_000)
        self.dX = (self.client.persist(from_scipy(self.X, 12_500))
                   if self.client is not None else self.X)

    def time_fit(self, n_workers):
        from sparseopt.distributed import lasso

        lasso(self.dX, self.y, alpha=1e-3, tol=1e-4)

    def track_passes(self, n_workers):
        from sparseopt.distributed import lasso

        return lasso(self.dX, self.y, alpha=1e-3, tol=1e-4).n_passes
