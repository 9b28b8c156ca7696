"""asv benchmarks of the shared sparse kernels, beside scipy on the same inputs."""

import numpy as np

import sparseopt

from .common import STRUCTURES, block_structured, peak_bytes


class SpMM:
    # k = 8 and 64 take the 8- and 32-column vector panels of kernels/_simd.py
    params = (list(STRUCTURES), [1, 8, 64], ["float64", "float32"], ["sparseopt", "scipy"])
    param_names = ["structure", "n_vectors", "dtype", "library"]

    def setup(self, structure, n_vectors, dtype, library):
        self.A_sp = STRUCTURES[structure]().astype(dtype)
        self.A = sparseopt.CSR.from_scipy(self.A_sp)
        rng = np.random.default_rng(0)
        shape = (self.A.shape[1], n_vectors) if n_vectors > 1 else (self.A.shape[1],)
        self.X = rng.standard_normal(shape).astype(dtype)
        self.Y = rng.standard_normal((self.A.shape[0],) + shape[1:]).astype(dtype)
        if library == "sparseopt":
            sparseopt.spmm(self.A, self.X)  # warm the JIT
            sparseopt.spmm_t(self.A, self.Y)

    def time_spmm(self, structure, n_vectors, dtype, library):
        if library == "sparseopt":
            sparseopt.spmm(self.A, self.X)
        else:
            self.A_sp @ self.X

    def time_spmm_t(self, structure, n_vectors, dtype, library):
        if library == "sparseopt":
            sparseopt.spmm_t(self.A, self.Y)
        else:
            self.A_sp.T @ self.Y

    def peakmem_spmm_t(self, structure, n_vectors, dtype, library):
        self.time_spmm_t(structure, n_vectors, dtype, library)


class BSRSpMM:
    params = ([4, 16], ["sparseopt", "scipy"])
    param_names = ["block", "library"]

    def setup(self, block, library):
        csr = block_structured(4096, block, 0.1)
        self.B_sp = csr.tobsr(blocksize=(block, block))
        self.B = sparseopt.BSR.from_scipy(self.B_sp)
        self.X = np.random.default_rng(0).standard_normal((4096, 256))
        if library == "sparseopt":
            self.B @ self.X
            self.B.T @ self.X

    def time_bsr_spmm(self, block, library):
        if library == "sparseopt":
            self.B @ self.X
        else:
            self.B_sp @ self.X

    def time_bsr_spmm_t(self, block, library):
        if library == "sparseopt":
            self.B.T @ self.X
        else:
            self.B_sp.T @ self.X


class SpGEMM:
    params = (["uniform", "rmat", "poisson2d"], ["sparseopt", "sparseopt-sorted", "scipy"])
    param_names = ["structure", "library"]

    def setup(self, structure, library):
        self.A_sp = STRUCTURES[structure]()
        self.A = sparseopt.CSR.from_scipy(self.A_sp)
        if library.startswith("sparseopt"):
            sparseopt.spgemm(self.A, self.A, sort=library.endswith("sorted"))

    def time_spgemm(self, structure, library):
        if library.startswith("sparseopt"):
            sparseopt.spgemm(self.A, self.A, sort=library.endswith("sorted"))
        else:
            self.A_sp @ self.A_sp

    def peakmem_spgemm(self, structure, library):
        # the whole process's peak: operands, Numba's compiled code and all
        self.time_spgemm(structure, library)

    def track_spgemm_peak_increase(self, structure, library):
        # the call's own peak above what was resident before it, in a fresh
        # process (the bound: no more than scipy's)
        setup = f"A_sp = STRUCTURES[{structure!r}]()\nA = sparseopt.CSR.from_scipy(A_sp)"
        call = ("A_sp @ A_sp" if library == "scipy" else
                f"sparseopt.spgemm(A, A, sort={library.endswith('sorted')})")
        return peak_bytes(setup, call)

    track_spgemm_peak_increase.unit = "bytes"
    track_spgemm_peak_increase.timeout = 300  # a fresh process: imports and Numba's cache

    def track_nnz(self, structure, library):
        if library.startswith("sparseopt"):
            return sparseopt.spgemm(self.A, self.A).nnz
        return (self.A_sp @ self.A_sp).nnz


class ColdStart:
    """First-call latency in a fresh process (Numba cache warm on disk)."""

    def timeraw_import_and_first_spmm(self):
        return """
import numpy as np, sparseopt
A = sparseopt.CSR.from_dense(np.eye(50))
sparseopt.spmm(A, np.ones((50, 4)))
"""
