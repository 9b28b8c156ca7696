"""RobustPCA transformer: scikit-learn conformance, subspace, pipelines, missing values."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseopt.decomposition import RobustPCA, robust_pca


def corrupted(m=200, n=40, r=3, frac=0.05, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    S0 = np.where(rng.random((m, n)) < frac, rng.uniform(-30, 30, (m, n)), 0.0)
    return L0, S0


@parametrize_with_checks([
    RobustPCA(random_state=0),
    RobustPCA(n_components=1, method="accaltproj", random_state=0),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _subspace_gap(A, B):
    """Sine of the largest principal angle between the row spaces of A and B."""
    Qa = np.linalg.qr(A.T)[0]
    Qb = np.linalg.qr(B.T)[0]
    return np.linalg.norm(Qa - Qb @ (Qb.T @ Qa), 2)


@pytest.mark.parametrize("method", ["ialm", "accaltproj"])
def test_fit_matches_function_and_recovers_subspace(method):
    L0, S0 = corrupted()
    X = L0 + S0
    est = RobustPCA(n_components=3, method=method, random_state=0).fit(X)
    res = robust_pca(X, method=method, rank=3 if method != "ialm" else None,
                     random_state=0)
    np.testing.assert_array_equal(est.low_rank_, res.low_rank)
    assert est.n_components_ == 3 and est.rank_ == 3 and est.n_iter_ == res.n_iter
    assert est.components_.shape == (3, 40)
    np.testing.assert_allclose(est.components_ @ est.components_.T, np.eye(3),
                               atol=1e-10)
    # the robust subspace is the planted one; classical PCA is thrown off
    V0 = np.linalg.svd(L0, full_matrices=False)[2][:3]
    assert _subspace_gap(est.components_, V0) < 1e-5
    pca = PCA(3, svd_solver="full").fit(X)
    assert _subspace_gap(pca.components_, V0) > 1e-2
    np.testing.assert_allclose(est.singular_values_, res.s[:3])


def test_transform_is_projection_and_inverse():
    L0, S0 = corrupted(seed=1)
    est = RobustPCA(random_state=0).fit(L0 + S0)
    Z = est.transform(L0)
    np.testing.assert_allclose(Z, L0 @ est.components_.T)
    # L0 lies in the learned subspace: transform/inverse_transform is exact
    np.testing.assert_allclose(est.inverse_transform(Z), L0, atol=1e-5)
    np.testing.assert_allclose(est.fit_transform(L0 + S0), (L0 + S0) @ est.components_.T)
    with pytest.raises(ValueError, match="n_samples, 3"):
        est.inverse_transform(np.ones((2, 4)))


def test_n_components_truncates_ialm():
    L0, S0 = corrupted(r=4, seed=2)
    full = RobustPCA(random_state=0).fit(L0 + S0)
    two = RobustPCA(n_components=2, random_state=0).fit(L0 + S0)
    big = RobustPCA(n_components=10, random_state=0).fit(L0 + S0)
    assert full.n_components_ == 4 and two.n_components_ == 2
    assert big.n_components_ == 4            # capped by the rank found
    np.testing.assert_allclose(two.components_, full.components_[:2])
    assert list(two.get_feature_names_out()) == ["robustpca0", "robustpca1"]


def test_missing_values_as_nan():
    L0, S0 = corrupted(m=200, n=120, seed=3)
    X = L0 + S0
    rng = np.random.default_rng(4)
    missing = rng.random(X.shape) < 0.1
    Xn = X.copy()
    Xn[missing] = np.nan
    est = RobustPCA(random_state=0).fit(Xn)
    assert np.isfinite(est.low_rank_).all()
    rel = np.linalg.norm(est.low_rank_ - L0) / np.linalg.norm(L0)
    assert rel < 1e-5
    assert not np.asarray(est.sparse_.toarray() if hasattr(est.sparse_, "toarray")
                          else est.sparse_)[missing].any()
    # transform with NaN: least squares on the observed features of each row
    Ln = L0.copy()
    Ln[missing] = np.nan
    # equal up to the subspace's accuracy (L recovered to 1e-5 relative)
    Z = est.transform(L0)
    np.testing.assert_allclose(est.transform(Ln), Z, atol=1e-5 * np.abs(Z).max())
    # a row with everything missing maps to 0
    Ln[0] = np.nan
    np.testing.assert_array_equal(est.transform(Ln)[0], 0)


def test_pipeline():
    L0, S0 = corrupted(seed=5)
    X = L0 + S0
    y = L0[:, :3] @ np.random.default_rng(6).standard_normal(3)
    pipe = make_pipeline(RobustPCA(n_components=3, random_state=0), LinearRegression())
    pipe.fit(X, y)
    alone = RobustPCA(n_components=3, random_state=0).fit(X)
    np.testing.assert_array_equal(pipe[0].components_, alone.components_)
    reg = LinearRegression().fit(alone.transform(X), y)
    np.testing.assert_allclose(pipe.predict(X), reg.predict(alone.transform(X)))
    # a target linear in the clean data is linear in the robust coordinates
    # of the clean data
    clean = LinearRegression().fit(alone.transform(L0), y)
    np.testing.assert_allclose(clean.predict(alone.transform(L0)), y, atol=1e-5)


def test_float32_and_sparse_output():
    L0, S0 = corrupted(seed=7)
    X = (L0 + S0).astype(np.float32)
    est = RobustPCA(random_state=0).fit(X)
    assert est.low_rank_.dtype == np.float32
    assert est.transform(X).dtype == np.float32
    assert est.components_.dtype == np.float32
    assert hasattr(est.sparse_, "indptr")          # 5 % outliers: CSR under "auto"
    dense = RobustPCA(random_state=0, sparse_output=False).fit(X)
    assert isinstance(dense.sparse_, np.ndarray)


def test_accaltproj_needs_n_components():
    with pytest.raises(ValueError, match="needs n_components"):
        RobustPCA(method="accaltproj").fit(np.ones((5, 4)))


def test_input_not_modified():
    L0, S0 = corrupted(seed=8)
    X = L0 + S0
    X[0, 0] = np.nan
    X0 = X.copy()
    est = RobustPCA(random_state=0).fit(X)
    est.transform(X)
    np.testing.assert_array_equal(X, X0)
