"""Tour: Monarch matrices -- optimal projection and fast products."""

import numpy as np

TITLE = "Monarch matrices (Dao et al., ICML 2022): projection and products"
ORDER = 70


def _fly_bmm(x, w1, w2):
    """The authors' batched-matmul Monarch multiply (NumPy port), x of shape (batch, n)."""
    B = x.shape[0]
    k, _, p = w1.shape
    l, s, r = w2.shape
    out1 = np.matmul(x.reshape(B, k, p).transpose(1, 0, 2), w1.transpose(0, 2, 1))
    out1 = out1.transpose(1, 0, 2).reshape(B, r, l).transpose(2, 0, 1)
    return np.matmul(out1, w2.transpose(0, 2, 1)).transpose(1, 2, 0).reshape(B, l * s)


def run(report):
    from threadpoolctl import threadpool_limits

    from sparseopt import MonarchApproximation, monarch_project
    from sparseopt._tour._report import timed

    rng = np.random.default_rng(0)
    n, b = 1024, 32
    with threadpool_limits(1):
        # 1. a Kronecker product is a Monarch matrix: the projection recovers it
        K = np.kron(rng.standard_normal((b, b)), rng.standard_normal((b, b)))
        M, t = timed(monarch_project, K, b)
        err = np.linalg.norm(M.todense() - K) / np.linalg.norm(K)
        report.compare("recover kron(A, B), n=1024, relative error", float(err), 0.0, t,
                       ref_name="exact")

        # 2. Gaussian matrix: error of the projection = Eckart-Young bound per slab
        A = rng.standard_normal((n, n))
        M, t = timed(monarch_project, A, b)
        err = np.linalg.norm(M.todense() - A) / np.linalg.norm(A)
        slabs = A.reshape(n // b, b, b, n // b).transpose(1, 2, 0, 3)
        sv, t_svd = timed(np.linalg.svd, slabs, compute_uv=False)
        bound = np.sqrt(np.sum(sv[..., 1:] ** 2)) / np.linalg.norm(A)
        report.compare("Gaussian 1024x1024, nblocks=32: relative error vs Eckart-Young",
                       float(err), float(bound), t, t_svd, ref_name="slab SVDs")

        # 3. the product: ours vs dense and vs the batched-matmul formulation
        X = rng.standard_normal((n, 256)).astype(np.float32)
        M32 = M.astype(np.float32)
        W = M32.todense()
        Xr = np.ascontiguousarray(X.T)
        ours, t_ours = timed(M32.matmul, X, repeat=15)
        dense, t_dense = timed(np.matmul, W, X, repeat=15)
        fly, t_fly = timed(_fly_bmm, Xr, M32.R_blocks, M32.L_blocks, repeat=15)
        diff = float(np.abs(ours - dense).max() / np.abs(dense).max())
        report.compare("M @ X (float32, batch 256) max rel. difference to dense", diff,
                       0.0, t_ours, t_dense, ref_name="dense W @ X")
        report.compare("same product against the batched-matmul Monarch (fly)",
                       float(np.abs(ours - fly.T).max() / np.abs(fly).max()), 0.0,
                       t_ours, t_fly, ref_name="fly bmm")
        report.note(f"speedup over dense {t_dense / t_ours:.1f}x (FLOP ratio "
                    f"{n * n / M.n_params:.0f}x), over batched matmul {t_fly / t_ours:.2f}x")

        # 4. the estimator on a rectangular weight matrix with rank 2
        Wr = rng.standard_normal((512, 768))
        est, t = timed(MonarchApproximation(nblocks=16, rank=2).fit, Wr)
        report.note(f"MonarchApproximation 512x768, nblocks=16, rank=2: relative error "
                    f"{est.relative_error_:.4f}, {est.n_params_} parameters of {Wr.size} "
                    f"({est.compression_:.1%}), fit in {t * 1e3:.0f} ms")
