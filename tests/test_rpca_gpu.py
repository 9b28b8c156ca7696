"""Robust PCA on device arrays: the backend-generic IALM / AccAltProj against the CPU path.

No GPU here: the generic path runs on ``array_api_strict`` arrays through a
stand-in backend (``tests/xp_strict_backend.py``; :func:`robust_pca` and
:class:`RobustPCA` dispatch to it as they do for CuPy arrays).  Its Gaussian
test matrices come from the same host generator as the NumPy path, so on the
strict namespace the generic iterations must retrace the CPU ones: same
iteration counts and ranks, results equal to rounding.  On a GPU the test
matrices are drawn on the device (other numbers): the ``gpu`` tests compare
with the ground truth and the CPU result within the stopping tolerance::

    pip install -e ".[test,gpu]"
    python -m pytest -m gpu tests/test_rpca_gpu.py
"""

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sparseopt import CSR
from sparseopt.decomposition import RobustPCA, robust_pca
from tests.xp_strict_backend import registered

xs = pytest.importorskip("array_api_strict")
_STRICT = type(xs.asarray(0.0))


@pytest.fixture
def strict():
    with registered() as backend:
        yield backend


def _problem(m=90, n=70, r=3, frac=0.05, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.where(rng.random((m, n)) < frac, rng.choice([-8.0, 8.0], (m, n)), 0.0)
    return (L0 + S0).astype(dtype), L0, S0


def _dense(S):
    return S.to_scipy().toarray() if isinstance(S, CSR) else np.asarray(S)


def _same_run(res, ref, rtol):
    assert res.n_iter == ref.n_iter and res.rank == ref.rank
    assert res.converged == ref.converged
    np.testing.assert_array_equal(res.history["rank"], ref.history["rank"])
    np.testing.assert_allclose(res.history["residual"], ref.history["residual"],
                               rtol=1e-6, atol=1e-14)
    L, Lr = np.asarray(res.low_rank), ref.low_rank
    np.testing.assert_allclose(L, Lr, rtol=0, atol=rtol * np.abs(Lr).max())
    np.testing.assert_allclose(_dense(res.sparse), _dense(ref.sparse), rtol=0,
                               atol=rtol * np.abs(Lr).max())
    np.testing.assert_allclose(np.asarray(res.s), ref.s, rtol=rtol)


@pytest.mark.parametrize("method", ["ialm", "accaltproj"])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_cpu_iteration_for_iteration(strict, method, masked):
    M, L0, _ = _problem(seed=1)
    kw = {"rank": 3} if method == "accaltproj" else {}
    mask = None
    if masked:
        mask = np.random.default_rng(2).random(M.shape) < 0.9
    ref = robust_pca(M, method=method, mask=mask, random_state=0, **kw)
    res = robust_pca(xs.asarray(M), method=method, random_state=0,
                     mask=None if mask is None else xs.asarray(mask), **kw)
    assert isinstance(res.low_rank, _STRICT) and isinstance(res.U, _STRICT)
    assert isinstance(res.sparse, CSR)      # S is sparse enough: "auto" returns CSR
    assert ref.converged
    _same_run(res, ref, rtol=1e-8)
    if method == "ialm" and not masked:   # exact recovery, to the tolerance's order
        err = np.linalg.norm(np.asarray(res.low_rank) - L0) / np.linalg.norm(L0)
        assert err <= 1e-5
    if masked:
        assert not np.any(_dense(res.sparse)[~mask])


def test_larger_rank_full_svd_fallback_and_float32(strict):
    # rank ~ 30 % of min(m, n): the SVT switches to full SVDs, as on the CPU
    M, _, _ = _problem(m=70, n=66, r=22, frac=0.02, seed=3)
    ref = robust_pca(M, random_state=1, max_iter=60)
    res = robust_pca(xs.asarray(M), random_state=1, max_iter=60)
    _same_run(res, ref, rtol=1e-7)
    M32, L0, _ = _problem(seed=4, dtype=np.float32)
    ref = robust_pca(M32, random_state=0, sparse_output=False)
    res = robust_pca(xs.asarray(M32), random_state=0, sparse_output=False)
    assert res.low_rank.dtype == xs.float32 and res.sparse.dtype == xs.float32
    assert res.converged and res.tol == ref.tol   # floored at 10 eps(float32)
    err = np.linalg.norm(np.asarray(res.low_rank, dtype=np.float64) - L0)
    assert err / np.linalg.norm(L0) <= 1e-4


def test_edge_cases_and_full_rank(strict):
    Z = robust_pca(xs.zeros((5, 4)))
    assert Z.converged and Z.rank == 0 and not np.any(np.asarray(Z.low_rank))
    M, _, _ = _problem(m=12, n=5, r=2, seed=5)
    full = robust_pca(xs.asarray(M), method="accaltproj", rank=5)
    np.testing.assert_allclose(np.asarray(full.low_rank), M)
    one = robust_pca(xs.asarray(M[:1]), random_state=0)
    ref = robust_pca(M[:1], random_state=0)
    np.testing.assert_allclose(np.asarray(one.low_rank), ref.low_rank, atol=1e-12)
    ints = robust_pca(xs.asarray(np.arange(20, dtype=np.int64).reshape(4, 5)))
    assert ints.low_rank.dtype == xs.float64


def test_inputs_unchanged_warning_callback(strict):
    M, _, _ = _problem(seed=6)
    Md = xs.asarray(M)
    mask = xs.asarray(np.random.default_rng(0).random(M.shape) < 0.95)
    robust_pca(Md, mask=mask, random_state=0)
    np.testing.assert_array_equal(np.asarray(Md), M)
    with pytest.warns(ConvergenceWarning, match="relative residual"):
        robust_pca(Md, max_iter=2, random_state=0)
    seen = []
    res = robust_pca(Md, method="accaltproj", rank=3, tol=1e-14,
                     callback=lambda r: seen.append(r.n_iter) or len(seen) == 2)
    assert seen == [1, 2] and res.message == "stopped by callback"


def test_bad_input(strict):
    M, _, _ = _problem(m=10, n=8, seed=7)
    bad = M.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="M contains NaN"):
        robust_pca(xs.asarray(bad))
    mask = np.ones(M.shape, bool)
    mask[2, 3] = False
    res = robust_pca(xs.asarray(bad), mask=xs.asarray(mask), random_state=0)
    assert np.all(np.isfinite(np.asarray(res.low_rank)))
    with pytest.raises(TypeError, match=r"M: numpy \(host\), mask: array_api_strict"):
        robust_pca(M, mask=xs.asarray(mask))
    with pytest.raises(ValueError, match="lanczos"):
        robust_pca(xs.asarray(M), svd_method="lanczos")
    with pytest.raises(ValueError, match="mask observes no entry"):
        robust_pca(xs.asarray(M), mask=xs.zeros(M.shape, dtype=xs.bool))
    with pytest.raises(ValueError, match="rank must be"):
        robust_pca(xs.asarray(M), method="accaltproj", rank=9)
    with pytest.raises(ValueError, match="2-D"):
        robust_pca(xs.asarray(M[0]))


def test_estimator_on_device_arrays(strict):
    M, _, _ = _problem(seed=8)
    X = M.copy()
    X[3, 4] = np.nan
    ref = RobustPCA(random_state=0).fit(X)
    est = RobustPCA(random_state=0).fit(xs.asarray(X))
    assert isinstance(est.components_, _STRICT) and est.rank_ == ref.rank_
    assert est.n_features_in_ == ref.n_features_in_
    np.testing.assert_allclose(np.abs(np.asarray(est.components_)),
                               np.abs(ref.components_), atol=1e-7)
    Xt = xs.asarray(X)
    T, Tr = np.asarray(est.transform(Xt)), ref.transform(X)
    signs = np.sign(np.sum(np.asarray(est.components_) * ref.components_, axis=1))
    np.testing.assert_allclose(T * signs, Tr, atol=1e-6 * np.abs(Tr).max())
    back = est.inverse_transform(xs.asarray(T))
    np.testing.assert_allclose(np.asarray(back), ref.inverse_transform(Tr), atol=1e-6)
    with pytest.raises(ValueError, match="expecting 70 features"):
        est.transform(xs.asarray(X[:, :5]))


# ------------------------------------------------------------------ on a GPU
@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["ialm", "accaltproj"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cupy_matches_numpy(cp, method, dtype):
    M, L0, _ = _problem(m=400, n=300, r=5, seed=9, dtype=dtype)
    kw = {"rank": 5} if method == "accaltproj" else {}
    ref = robust_pca(M, method=method, random_state=0, **kw)
    res = robust_pca(cp.asarray(M), method=method, random_state=0, **kw)
    assert isinstance(res.low_rank, cp.ndarray) and res.low_rank.dtype == dtype
    assert isinstance(res.sparse, CSR) and isinstance(res.sparse.data, cp.ndarray)
    assert res.converged and res.rank == ref.rank
    # both are within the stopping tolerance of the exact recovery
    tol = 1e-5 if dtype == np.float64 else 1e-3
    for L in (cp.asnumpy(res.low_rank), ref.low_rank):
        assert np.linalg.norm(L - L0) / np.linalg.norm(L0) <= tol
    est = RobustPCA(random_state=0).fit(cp.asarray(M))
    assert isinstance(est.components_, cp.ndarray) and est.rank_ == 5
    with pytest.raises(TypeError, match="host"):
        robust_pca(M, mask=cp.ones(M.shape, dtype=bool))
