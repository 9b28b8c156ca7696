"""Relevance vector classification (Laplace approximation, fast marginal likelihood)."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.datasets import load_breast_cancer, load_iris, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sparseopt.bayes import RelevanceVectorClassifier, rvm_classification


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Reference solvers (LogisticRegression, ...) run single-threaded like ours:
    on a shared 2-core machine BLAS threads make these small problems slower."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _log_post(w, X, t, alpha):
    f = X @ w
    return t @ log_expit(f) + (1 - t) @ log_expit(-f) - 0.5 * alpha @ (w * w)


def test_mode_and_laplace_evidence_are_exact(cancer):
    X, t = cancer
    res = rvm_classification(X, t, fit_intercept=False, tol=1e-6)
    assert res.converged
    act = res.active
    A, alpha = X[:, act], res.alpha[act]
    # the weights are the posterior mode at the returned hyperparameters
    opt = minimize(lambda w: -_log_post(w, A, t, alpha), np.zeros(act.size),
                   jac=lambda w: -(A.T @ (t - expit(A @ w)) - alpha * w),
                   method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15,
                                                "maxiter": 10000})
    np.testing.assert_allclose(res.x[act], opt.x, rtol=1e-5,
                               atol=1e-6 * np.abs(opt.x).max())
    # Laplace evidence and covariance at the mode, in the units of X
    y = expit(A @ res.x[act])
    H = (A * (y * (1 - y))[:, None]).T @ A + np.diag(alpha)
    ll = (_log_post(res.x[act], A, t, alpha) + 0.5 * np.log(alpha).sum()
          - 0.5 * np.linalg.slogdet(H)[1])
    np.testing.assert_allclose(res.log_marginal_likelihood, ll, rtol=1e-9)
    np.testing.assert_allclose(res.sigma, np.linalg.inv(H), rtol=1e-6,
                               atol=1e-9 * np.abs(res.sigma).max())
    # local optimality: in the linearised Gaussian model at the mode, no
    # column can enter with a gain in evidence, and no α moves by > tol
    b = y * (1 - y)
    C = np.diag(1 / b) + (A / alpha) @ A.T
    Ci = np.linalg.inv(C)
    S = np.einsum("ij,ij->j", X, Ci @ X)
    Q = X.T @ (t - y)
    out = np.setdiff1d(np.arange(X.shape[1]), act)
    assert np.all(Q[out] ** 2 - S[out] <= 1e-6 * S[out])
    s = alpha * S[act] / (alpha - S[act])
    q = alpha * Q[act] / (alpha - S[act])
    np.testing.assert_allclose(np.log(alpha), np.log(s**2 / (q**2 - s)), atol=1e-4)


def test_accuracy_and_sparsity_on_breast_cancer(cancer):
    X, y = cancer
    clf = RelevanceVectorClassifier().fit(X, y)
    logreg = LogisticRegression(max_iter=1000).fit(X, y)
    assert clf.score(X, y) >= logreg.score(X, y) - 0.02
    assert clf.score(X, y) > 0.95
    assert 0 < clf.active_[0].size <= 15
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    # moderation only pulls probabilities towards 1/2
    z = X @ clf.coef_[0] + clf.intercept_[0]
    assert np.all(np.abs(proba[:, 1] - 0.5) <= np.abs(expit(z) - 0.5) + 1e-12)
    h = clf.results_[0].history["log_marginal_likelihood"]
    assert h[-1] >= h[0]


def test_multiclass_one_vs_rest():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = RelevanceVectorClassifier().fit(X, names)
    assert clf.coef_.shape == (3, 4)
    assert clf.score(X, names) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.decision_function(X).shape == (150, 3)


def test_rbf_relevance_vectors_on_moons():
    X, y = make_moons(200, noise=0.15, random_state=0)
    clf = RelevanceVectorClassifier(kernel="rbf", gamma=2.0).fit(X, y)
    Xt, yt = make_moons(500, noise=0.15, random_state=1)
    assert clf.score(Xt, yt) > 0.93
    assert clf.relevance_vectors_.shape[0] == clf.support_.size < 30
    K = np.exp(-2.0 * ((X[:, None] - X[None]) ** 2).sum(-1))
    pre = RelevanceVectorClassifier(kernel="precomputed").fit(K, y)
    np.testing.assert_array_equal(pre.support_, clf.support_)
    Kt = np.exp(-2.0 * ((Xt[:, None] - X[None]) ** 2).sum(-1))
    np.testing.assert_allclose(pre.decision_function(Kt), clf.decision_function(Xt),
                               rtol=1e-7, atol=1e-9)


def test_sparse_and_float32_inputs(cancer):
    X, y = cancer
    X = X[:200, :10]
    y = y[:200]
    Xs = X * (np.abs(X) > 0.5)
    dense = rvm_classification(Xs, y)
    # sparse and dense products round differently; each posterior mode is
    # found to a gradient of 1e-9, which bounds the difference of the weights
    for S in (sp.csr_matrix(Xs), sp.csc_array(Xs)):
        res = rvm_classification(S, y)
        np.testing.assert_array_equal(res.active, dense.active)
        np.testing.assert_allclose(res.x, dense.x, rtol=1e-6, atol=1e-9)
    S = sp.csr_matrix(Xs)
    S.indices, S.indptr = S.indices.astype(np.int64), S.indptr.astype(np.int64)
    np.testing.assert_allclose(rvm_classification(S, y).x, dense.x, rtol=1e-6,
                               atol=1e-9)
    c64 = RelevanceVectorClassifier().fit(X, y)
    c32 = RelevanceVectorClassifier().fit(X.astype(np.float32), y)
    assert c32.coef_.dtype == np.float32
    assert c32.decision_function(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(c32.coef_, c64.coef_, rtol=1e-4, atol=1e-5)


def test_edge_cases():
    # one informative feature, perfectly separable: weights stay finite
    x = np.linspace(-1, 1, 20)[:, None]
    y = (x[:, 0] > 0).astype(int)
    clf = RelevanceVectorClassifier().fit(x, y)
    assert np.isfinite(clf.coef_).all() and clf.score(x, y) == 1.0
    # two samples
    clf = RelevanceVectorClassifier().fit([[0.0], [1.0]], [0, 1])
    assert clf.predict([[1.0]])[0] == 1


def test_bad_input(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="binary"):
        rvm_classification(X, y + 1)
    Xn = X.copy()
    Xn[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rvm_classification(Xn, y)
    with pytest.raises(ValueError, match="NaN"):
        RelevanceVectorClassifier().fit(Xn, y)
    with pytest.raises(ValueError, match="inconsistent"):
        rvm_classification(X, y[:-1])
    with pytest.raises(ValueError, match="one class"):
        RelevanceVectorClassifier().fit(X, np.zeros(X.shape[0]))
    with pytest.raises(ValueError, match="square"):
        RelevanceVectorClassifier(kernel="precomputed").fit(X, y)
    with pytest.raises(ValueError, match="newton_tol"):
        rvm_classification(X, y, newton_tol=0.0)


def test_inputs_not_modified_warning_and_callback(cancer):
    X, y = cancer
    X0, y0 = X.copy(), y.copy()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = rvm_classification(X, y, max_iter=2)
    assert not res.converged and res.n_iter == 2
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    calls = []
    res = rvm_classification(X, y, callback=lambda r: calls.append(r.n_iter) or
                             len(calls) == 3)
    assert len(calls) == 3 and res.message == "stopped by callback"
    assert np.isfinite(res.log_marginal_likelihood)


def test_integer_weights_equal_repeated_samples(cancer):
    X, y = cancer
    X, y = X[:120, :8], y[:120]
    sw = np.random.default_rng(0).integers(0, 3, y.size)
    a = rvm_classification(X, y, sample_weight=sw)
    b = rvm_classification(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_array_equal(a.active, b.active)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-7, atol=1e-10)
    # the modes agree to Newton's stopping rule (gradient max-norm 1e-9)
    np.testing.assert_allclose(a.log_marginal_likelihood, b.log_marginal_likelihood,
                               rtol=1e-9)
    with pytest.raises(ValueError, match="sample_weight"):
        rvm_classification(X, y, sample_weight=-np.ones(y.size))
