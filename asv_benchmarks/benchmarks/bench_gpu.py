"""asv benchmarks of the GPU kernels beside cuSPARSE (cupyx) and the CPU backend.

Every timed call synchronises the stream before returning, so the time is the
kernel's, not the launch's.  Without cupy or a CUDA device, ``setup`` raises
``NotImplementedError`` and asv skips the benchmark.  Targets (issue 4): SpMM
and SpGEMM at or faster than cuSPARSE on the structures of the core suite.
Not measured on this project's machines (no GPU): run ``asv run --bench bench_gpu``
on a GPU machine.
"""

import numpy as np

import sparseopt
from benchmarks.common import STRUCTURES, block_structured


def _cupy():
    try:
        from sparseopt.gpu import is_available

        if not is_available():
            raise NotImplementedError("no CUDA device")
        import cupy
    except ImportError as exc:
        raise NotImplementedError(f"cupy/numba-cuda missing: {exc}") from exc
    return cupy


def _cusparse(A_sp, cupy):
    import cupyx.scipy.sparse as csp

    A_sp = A_sp.tocsr()
    A_sp.sum_duplicates()
    return csp.csr_matrix((cupy.asarray(A_sp.data), cupy.asarray(A_sp.indices.astype(np.int32)),
                           cupy.asarray(A_sp.indptr.astype(np.int32))), shape=A_sp.shape)


class GpuSpMM:
    """CSR times dense on the device: ours vs cuSPARSE (``cusparseSpMM``) vs the CPU backend."""

    params = (list(STRUCTURES), [1, 64], ["sparseopt-gpu", "cusparse", "sparseopt-cpu"])
    param_names = ("structure", "n_vectors", "library")
    timeout = 300

    def setup(self, structure, n_vectors, library):
        cupy = self.cp = _cupy()
        from sparseopt.gpu import to_device

        A_sp = STRUCTURES[structure]()
        rng = np.random.default_rng(0)
        shape = (A_sp.shape[1], n_vectors) if n_vectors > 1 else (A_sp.shape[1],)
        X = rng.standard_normal(shape)
        Y = rng.standard_normal((A_sp.shape[0], *shape[1:]))
        if library == "sparseopt-cpu":
            self.A, self.X, self.Y = sparseopt.CSR.from_scipy(A_sp), X, Y
        elif library == "sparseopt-gpu":
            self.A = to_device(sparseopt.CSR.from_scipy(A_sp))
            self.X, self.Y = cupy.asarray(X), cupy.asarray(Y)
        else:
            self.A = _cusparse(A_sp, cupy)
            # cupyx copies a C-ordered dense operand to Fortran order on every
            # product; give it the layout it wants so we time cuSPARSE itself
            self.X, self.Y = cupy.asfortranarray(X), cupy.asfortranarray(Y)
        self.time_spmm(structure, n_vectors, library)  # compile / warm up
        self.time_spmm_t(structure, n_vectors, library)

    def _sync(self, library):
        if library != "sparseopt-cpu":
            self.cp.cuda.get_current_stream().synchronize()

    def time_spmm(self, structure, n_vectors, library):
        if library == "cusparse":
            self.A @ self.X
        else:
            sparseopt.spmm(self.A, self.X)
        self._sync(library)

    def time_spmm_t(self, structure, n_vectors, library):
        if library == "cusparse":
            self.A.T @ self.Y
        else:
            sparseopt.spmm_t(self.A, self.Y)
        self._sync(library)


class GpuBSRSpMM:
    """BSR times dense on the device (cupyx has no BSR: the baseline is cuSPARSE on the CSR)."""

    params = ([4, 16], ["sparseopt-gpu-bsr", "sparseopt-gpu-csr", "cusparse-csr"])
    param_names = ("block", "library")
    timeout = 300

    def setup(self, block, library):
        cupy = self.cp = _cupy()
        from sparseopt.gpu import to_device

        csr = block_structured(4096, block, 0.1)
        X = np.random.default_rng(0).standard_normal((4096, 256))
        if library == "sparseopt-gpu-bsr":
            self.A = to_device(sparseopt.BSR.from_scipy(csr.tobsr(blocksize=(block, block))))
            self.X = cupy.asarray(X)
        elif library == "sparseopt-gpu-csr":
            self.A = to_device(sparseopt.CSR.from_scipy(csr))
            self.X = cupy.asarray(X)
        else:
            self.A = _cusparse(csr, cupy)
            self.X = cupy.asfortranarray(X)
        self.time_bsr_spmm(block, library)

    def time_bsr_spmm(self, block, library):
        if library == "cusparse-csr":
            self.A @ self.X
        else:
            sparseopt.spmm(self.A, self.X)
        self.cp.cuda.get_current_stream().synchronize()


class GpuSpGEMM:
    """``A @ A`` on the device: ours (unsorted / sorted) vs cuSPARSE SpGEMM vs the CPU backend."""

    params = (["uniform", "rmat", "poisson2d"],
              ["sparseopt-gpu", "sparseopt-gpu-sorted", "cusparse", "sparseopt-cpu"])
    param_names = ("structure", "library")
    timeout = 300

    def setup(self, structure, library):
        cupy = self.cp = _cupy()
        from sparseopt.gpu import to_device

        A_sp = STRUCTURES[structure]()
        if library == "sparseopt-cpu":
            self.A = sparseopt.CSR.from_scipy(A_sp)
        elif library.startswith("sparseopt-gpu"):
            self.A = to_device(sparseopt.CSR.from_scipy(A_sp))
        else:
            self.A = _cusparse(A_sp, cupy)
        self.time_spgemm(structure, library)

    def time_spgemm(self, structure, library):
        if library == "cusparse":
            self.A @ self.A
        else:
            sparseopt.spgemm(self.A, self.A, sort=library.endswith("sorted"))
        if library != "sparseopt-cpu":
            self.cp.cuda.get_current_stream().synchronize()

    def peakmem_spgemm(self, structure, library):
        self.time_spgemm(structure, library)

    def track_nnz_per_second(self, structure, library):
        """Output nonzeros per second of one product (higher is better)."""
        import time

        t = time.perf_counter()
        C = self.A @ self.A if library == "cusparse" else sparseopt.spgemm(self.A, self.A)
        if library != "sparseopt-cpu":
            self.cp.cuda.get_current_stream().synchronize()
        return C.nnz / (time.perf_counter() - t)

    track_nnz_per_second.unit = "nnz/s"
