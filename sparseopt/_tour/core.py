"""Tour: sparse formats and kernels beside scipy.sparse."""

import numpy as np
import scipy.sparse as sp

TITLE = "Sparse formats and kernels (reference: scipy.sparse)"
ORDER = 10


def _poisson2d(n):
    T = sp.diags_array([-1.0, 4.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    S = sp.diags_array([-1.0, -1.0], offsets=[-1, 1], shape=(n, n))
    return (sp.kron(sp.eye_array(n), T) + sp.kron(S, sp.eye_array(n))).tocsr()


def run(report):
    import sparseopt
    from sparseopt._tour._report import timed

    rng = np.random.default_rng(0)
    A_sp = sp.random_array((20_000, 20_000), density=1e-3, format="csr", random_state=rng)
    A = sparseopt.CSR.from_scipy(A_sp)
    report.note(f"A: {A!r} (uniform random), shared with scipy without a copy")
    X = rng.standard_normal((20_000, 64))
    x = X[:, 0].copy()

    for what, ours, ref in [
        ("spmv  A @ x", lambda: sparseopt.spmv(A, x), lambda: A_sp @ x),
        ("spmm  A @ X (64 cols)", lambda: sparseopt.spmm(A, X), lambda: A_sp @ X),
        ("spmm_t A.T @ X", lambda: sparseopt.spmm_t(A, X), lambda: A_sp.T @ X),
    ]:
        ours()  # compile (or load from the on-disk cache)
        y, t = timed(ours, repeat=5)
        y_ref, t_ref = timed(ref, repeat=5)
        err = float(np.max(np.abs(y - y_ref)) / max(np.max(np.abs(y_ref)), 1e-300))
        report.compare(what + " max rel. diff", err, 0.0, t, t_ref, ref_name="scipy")

    P_sp = _poisson2d(300)
    P = sparseopt.CSR.from_scipy(P_sp)
    sparseopt.spgemm(P, P)
    C, t = timed(sparseopt.spgemm, P, P, repeat=5)
    C_ref, t_ref = timed(lambda: P_sp @ P_sp, repeat=5)
    diff = abs(C.to_scipy() - C_ref).max()
    report.compare("spgemm P @ P (2D Poisson 300x300 grid) nnz", C.nnz, C_ref.nnz, t, t_ref,
                   ref_name="scipy")
    report.note(f"max |difference| of the products: {diff:.2e}; ours left unsorted like scipy's")

    B_sp = sp.random_array((64, 64), density=0.1, format="csr", random_state=rng)
    B_sp = sp.kron(B_sp, np.ones((16, 16))).tobsr(blocksize=(16, 16))
    B = sparseopt.BSR.from_scipy(B_sp)
    Xb = rng.standard_normal((B.shape[1], 256))
    B @ Xb
    y, t = timed(lambda: B @ Xb, repeat=5)
    y_ref, t_ref = timed(lambda: B_sp @ Xb, repeat=5)
    err = float(np.max(np.abs(y - y_ref)) / np.max(np.abs(y_ref)))
    report.compare(f"bsr_spmm {B.shape[0]}x{B.shape[1]} 16x16 blocks @ X(256) max rel. diff",
                   err, 0.0, t, t_ref, ref_name="scipy")
