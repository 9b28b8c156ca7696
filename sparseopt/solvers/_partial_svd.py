"""Partial singular value decompositions for singular value thresholding.

Robust PCA solvers need, at every iteration, the singular triplets of a dense
matrix whose singular values exceed a threshold ``tau`` (singular value
thresholding, SVT).  Those are few, so a full SVD wastes most of its work.
This module provides

* :func:`randomized_svd`: the randomized range finder of Halko, Martinsson
  and Tropp (2011, Algorithms 4.3/4.4 and 5.1) with QR-orthonormalised power
  (subspace) iterations and an optional *warm start* (the previous
  iteration's right singular vectors seed the test matrix, so the subspace
  iteration restarts close to the answer).  Written with array-namespace
  calls only (``xp.matmul``, ``xp.linalg.qr``, ``xp.linalg.svd``), so it runs
  unchanged on CuPy arrays.
* :func:`lanczos_svd`: Golub-Kahan-Lanczos bidiagonalisation with partial
  reorthogonalisation (PROPACK, through :func:`scipy.sparse.linalg.svds`),
  NumPy only.
* :class:`ThresholdedSVD`: the SVT driver used by the inexact ALM.  It keeps
  the *rank prediction* of Lin, Chen & Ma (2010): after an SVD with ``sv``
  requested values of which ``svp`` exceed the threshold, the next request is
  ``svp + 1`` if ``svp < sv`` and ``svp + round(0.05 * min(m, n))`` otherwise.
  Unlike the reference MATLAB code it never truncates silently: when every
  computed value exceeds the threshold the same matrix is decomposed again with
  a larger request, so the result is the exact SVT (up to the partial SVD's
  accuracy).  A full LAPACK SVD is used only when the request is a large
  fraction of ``min(m, n)``, where it is cheaper.

References
----------
N. Halko, P.-G. Martinsson and J. A. Tropp, "Finding structure with
randomness: probabilistic algorithms for constructing approximate matrix
decompositions", SIAM Review 53(2), 2011.

Z. Lin, M. Chen and Y. Ma, "The augmented Lagrange multiplier method for exact
recovery of corrupted low-rank matrices", arXiv:1009.5055, 2010.

R. M. Larsen, "Lanczos bidiagonalization with partial reorthogonalization",
DAIMI Report Series 27(537), 1998 (PROPACK).
"""

import numpy as np

__all__ = [
    "ThresholdedSVD",
    "array_namespace",
    "full_svd",
    "lanczos_svd",
    "randomized_svd",
    "spectral_norm",
]

# ``min(m, n)`` fraction above which one full SVD beats the partial ones
# (measured on 1000 x 1000 float64 with OpenBLAS on 2 cores: a randomized SVD
# of rank k + 10 with 2 power iterations costs about as much as the full SVD at
# k ~ 0.3 min(m, n)).
FULL_SVD_FRACTION = 0.3
# below this size partial SVDs do not pay at all
FULL_SVD_MIN_DIM = 60


def array_namespace(*arrays):
    """NumPy, or CuPy when any argument is a CuPy array (never imports CuPy otherwise)."""
    for a in arrays:
        if a is not None and type(a).__module__.split(".")[0] in ("cupy", "cupyx"):
            import cupy

            return cupy
    return np


def _gaussian(xp, rng, shape, dtype):
    g = rng.standard_normal(shape, dtype=np.float64).astype(dtype, copy=False)
    return g if xp is np else xp.asarray(g)


def _orthonormal(xp, Y):
    q, _ = xp.linalg.qr(Y)
    return q


def randomized_svd(X, k, *, n_oversamples=10, n_power_iter=2, rng=None, init=None):
    """Approximate leading ``k`` singular triplets of a dense matrix.

    Builds an orthonormal basis ``Q`` of ``range(X @ Omega)`` after
    ``n_power_iter`` QR-stabilised subspace iterations, then takes the exact
    SVD of the small matrix ``Q.T @ X``.  The error of the rank-``k``
    approximation decays like ``(sigma_{l+1} / sigma_k) ** (2 q + 1)``
    (``l = k + n_oversamples``, ``q = n_power_iter``; Halko et al. 2011, §10).

    Parameters
    ----------
    X : (m, n) array
        NumPy or CuPy array, float32 or float64.
    k : int
        Number of triplets wanted, ``1 <= k <= min(m, n)``.
    n_oversamples : int
        Extra columns of the test matrix.
    n_power_iter : int
        Subspace iterations.
    rng : numpy.random.Generator, optional
        Source of the Gaussian test matrix.
    init : (n, r) array, optional
        Right singular vectors of a nearby matrix (e.g. the previous solver
        iterate): they replace the first ``r`` Gaussian columns of the test
        matrix, which is a warm-started subspace iteration.

    Returns
    -------
    U : (m, k) array
    s : (k,) array, descending
    Vt : (k, n) array
    """
    xp = array_namespace(X)
    m, n = X.shape
    p = min(m, n)
    ell = min(k + n_oversamples, p)
    if rng is None:
        rng = np.random.default_rng()
    if init is not None and init.shape[1] > 0:
        r = min(init.shape[1], ell)
        parts = [init[:, :r].astype(X.dtype, copy=False)]
        if ell > r:
            parts.append(_gaussian(xp, rng, (n, ell - r), X.dtype))
        omega = xp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    else:
        omega = _gaussian(xp, rng, (n, ell), X.dtype)
    Q = _orthonormal(xp, X @ omega)
    for _ in range(n_power_iter):
        Z = _orthonormal(xp, X.T @ Q)
        Q = _orthonormal(xp, X @ Z)
    B = Q.T @ X
    Ub, s, Vt = xp.linalg.svd(B, full_matrices=False)
    U = Q @ Ub[:, :k]
    return U, s[:k], Vt[:k]


def lanczos_svd(X, k):
    """Leading ``k`` singular triplets by PROPACK Lanczos bidiagonalisation (NumPy only).

    Falls back to :func:`full_svd` when ``k`` is too close to ``min(m, n)`` for
    the iterative solver (``svds`` needs ``k < min(m, n)``) or when PROPACK
    does not converge.
    """
    m, n = X.shape
    if k >= min(m, n) or min(m, n) < 3:
        U, s, Vt = full_svd(X)
        return U[:, :k], s[:k], Vt[:k]
    from scipy.sparse.linalg import svds

    try:
        U, s, Vt = svds(X, k=k, solver="propack", random_state=0)
    except np.linalg.LinAlgError:  # PROPACK did not converge (clustered values)
        U, s, Vt = full_svd(X)
        return U[:, :k], s[:k], Vt[:k]
    order = np.argsort(s)[::-1]
    return U[:, order], s[order], Vt[order]


def full_svd(X):
    """Thin SVD by LAPACK (``xp.linalg.svd``)."""
    xp = array_namespace(X)
    return xp.linalg.svd(X, full_matrices=False)


def spectral_norm(X, *, rng=None, n_power_iter=8):
    """``||X||_2`` estimated by a small randomized subspace iteration.

    Exact for tiny matrices (full SVD); otherwise a block of 6 vectors with
    ``n_power_iter`` iterations, whose largest Ritz value is within a fraction
    of a percent of ``sigma_1`` for any spectrum (the value only sets the ALM
    penalty's starting point).
    """
    xp = array_namespace(X)
    m, n = X.shape
    if min(m, n) <= FULL_SVD_MIN_DIM:
        return float(xp.linalg.svd(X, compute_uv=False)[0]) if X.size else 0.0
    _, s, _ = randomized_svd(X, 1, n_oversamples=5, n_power_iter=n_power_iter, rng=rng)
    return float(s[0])


class ThresholdedSVD:
    """Singular value thresholding with rank prediction (Lin, Chen & Ma 2010).

    ``svt(X, tau)`` returns the triplets of ``X`` whose singular values exceed
    ``tau``.  The number requested from the partial SVD is predicted from the
    previous call; the previous right singular vectors warm-start the
    randomized range finder.

    Parameters
    ----------
    shape : tuple of int
        Shape of the matrices that will be decomposed.
    method : {"randomized", "lanczos", "full"}
        Partial SVD used while the predicted rank is small.
    rng : numpy.random.Generator
        Source of randomness for the randomized range finder.
    n_oversamples, n_power_iter : int
        Randomized range-finder parameters (``n_power_iter`` from a Gaussian
        start).
    n_power_iter_warm : int
        Power iterations when warm-started by the previous call's vectors.
    initial_rank : int
        First request (the reference code's ``sv = 10``).
    max_refine : int
        Extra subspace iterations allowed before falling back to a full SVD
        when the residual check fails.
    """

    def __init__(self, shape, *, method="randomized", rng=None, n_oversamples=10,
                 n_power_iter=2, n_power_iter_warm=0, initial_rank=10,
                 max_refine=3):
        m, n = shape
        self.p = min(m, n)
        self.method = method
        self.rng = np.random.default_rng() if rng is None else rng
        self.n_oversamples = n_oversamples
        self.n_power_iter = n_power_iter
        self.n_power_iter_warm = n_power_iter_warm
        self.sv = max(1, min(initial_rank, self.p))
        self.step = max(1, round(0.05 * self.p))
        self._V = None
        self.max_refine = max_refine
        self.n_svd = 0
        self.n_full = 0
        self.n_check = 0

    def _use_full(self, k):
        return (self.method == "full" or self.p <= FULL_SVD_MIN_DIM
                or k >= FULL_SVD_FRACTION * self.p)

    def _randomized(self, X, k, tau, atol):
        """Warm-started randomized SVD, refined until the kept triplets are accurate.

        The Rayleigh-Ritz triplets from ``Q.T @ X`` satisfy ``X.T u = s v``
        exactly; the other residual ``r_i = X v_i - s_i u_i`` costs one
        product.  The answer is accepted when the kept triplets (``s_i > tau``)
        have ``||[r_1, ..., r_svp]||_F <= atol`` and the first value below the
        threshold is clearly below it, ``s_{svp+1} + ||r_{svp+1}|| <= tau``
        (a Ritz value is within its residual of a singular value).  Otherwise
        one more subspace iteration restarts from the current vectors; after
        ``max_refine`` of them the caller falls back to a full SVD.
        """
        xp = array_namespace(X)
        q = self.n_power_iter if self._V is None else self.n_power_iter_warm
        init = self._V
        for _ in range(self.max_refine + 1):
            U, s, Vt = randomized_svd(X, k, n_oversamples=self.n_oversamples,
                                      n_power_iter=q, rng=self.rng, init=init)
            if atol is None:
                return U, s, Vt
            svp = int(xp.count_nonzero(s > tau))
            if svp == k and k < self.p:
                # all requested values exceed tau: the caller asks for more,
                # refining this too-small subspace would be wasted work
                return U, s, Vt
            j = min(svp + 1, s.shape[0])
            R = X @ Vt[:j].T - U[:, :j] * s[:j]
            self.n_check += 1
            ok = float(xp.linalg.norm(R[:, :svp])) <= atol
            if ok and j > svp:
                ok = float(s[svp]) + float(xp.linalg.norm(R[:, svp])) <= tau
            if ok:
                return U, s, Vt
            init, q = Vt.T, 1
        return None

    def _decompose(self, X, k, tau, atol):
        self.n_svd += 1
        if not self._use_full(k):
            if self.method == "lanczos":
                return lanczos_svd(X, k), False
            out = self._randomized(X, k, tau, atol)
            if out is not None:
                return out, False
        self.n_full += 1
        return full_svd(X), True

    def __call__(self, X, tau, atol=None):
        """Return ``(U, s, Vt)`` restricted to the singular values ``> tau``.

        ``atol`` bounds the Frobenius residual of the randomized triplets (see
        :meth:`_randomized`); None accepts the range finder's first answer.
        """
        xp = array_namespace(X)
        k = self.sv
        while True:
            (U, s, Vt), complete = self._decompose(X, k, tau, atol)
            svp = int(xp.count_nonzero(s > tau))
            if svp < k or complete or k >= self.p:
                break
            # every computed value is above tau: some may be missing
            k = min(self.p, svp + self.step)
        # rank prediction for the next call (Lin, Chen & Ma, inexact_alm_rpca.m)
        if svp < k:
            self.sv = min(svp + 1, self.p)
        else:
            self.sv = min(svp + self.step, self.p)
        U, s, Vt = U[:, :svp], s[:svp], Vt[:svp]
        if svp:
            self._V = Vt.T
        return U, s, Vt
