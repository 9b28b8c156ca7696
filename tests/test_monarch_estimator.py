"""MonarchApproximation: scikit-learn conventions and what it reports."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from sparseopt import MonarchApproximation, monarch_project


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # tiny BLAS calls on an oversubscribed machine are 100x slower with threads
    with threadpool_limits(1):
        yield



@parametrize_with_checks([MonarchApproximation(), MonarchApproximation(nblocks=1, rank=2)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_fit_reports_error_and_size(rng):
    W = rng.standard_normal((64, 48))
    est = MonarchApproximation(nblocks=4, rank=2).fit(W)
    M = monarch_project(W, 4, rank=2)
    np.testing.assert_array_equal(est.monarch_.todense(), M.todense())
    np.testing.assert_allclose(
        est.relative_error_, np.linalg.norm(M.todense() - W) / np.linalg.norm(W), rtol=1e-12)
    assert est.n_params_ == M.n_params
    assert est.compression_ == pytest.approx(M.n_params / W.size)
    X = rng.standard_normal((5, 48))
    np.testing.assert_allclose(est.transform(X), X @ M.todense().T, atol=1e-12)
    assert est.get_feature_names_out().shape == (64,)


def test_exact_on_monarch_input(rng):
    W = np.kron(rng.standard_normal((8, 8)), rng.standard_normal((8, 8)))
    est = MonarchApproximation(nblocks=8).fit(W)
    assert est.relative_error_ < 1e-12
    assert MonarchApproximation(nblocks=8).fit(np.zeros((16, 16))).relative_error_ == 0.0


def test_float32_preserved(rng):
    W = rng.standard_normal((16, 16)).astype(np.float32)
    est = MonarchApproximation(nblocks=4).fit(W)
    assert est.monarch_.dtype == np.float32
    assert est.transform(W).dtype == np.float32


def test_bad_params(rng):
    W = rng.standard_normal((10, 10))
    with pytest.raises(ValueError, match="pass pad=True"):
        MonarchApproximation(nblocks=4).fit(W)
    assert MonarchApproximation(nblocks=4, pad=True).fit(W).monarch_.padded_shape == (12, 12)
    with pytest.raises(ValueError, match="rank"):
        MonarchApproximation(rank=0).fit(W)
    with pytest.raises(ValueError):
        MonarchApproximation(nblocks=0).fit(W)
    W[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MonarchApproximation().fit(W)
