"""scikit-learn's estimator checks for the sparse linear models."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseopt.linear_model import (
    ElasticNet,
    GroupLasso,
    L0Regression,
    Lasso,
    LassoCV,
    MCPRegression,
    SCADRegression,
    SparseLogisticRegression,
)

# tol is tightened so that the checks comparing two fits (sample-weight
# equivalence, float32 vs float64, sparse vs dense) compare solutions rather
# than two early stops at the default relative gap of 1e-4.
ESTIMATORS = [
    Lasso(alpha=0.1, tol=1e-8),
    ElasticNet(alpha=0.1, tol=1e-8),
    GroupLasso(groups=1, alpha=0.1, tol=1e-8),
    MCPRegression(alpha=0.1, tol=1e-8),
    SCADRegression(alpha=0.1, tol=1e-8),
    L0Regression(alpha=0.01, tol=1e-8),
    SparseLogisticRegression(alpha=0.01, tol=1e-12),
    LassoCV(n_alphas=5, cv=3, tol=1e-8),
]


def _expected_failed_checks(estimator):
    if isinstance(estimator, LassoCV):
        reason = ("repeating rows changes the cross-validation folds, so the "
                  "selected alpha differs (as for scikit-learn's LassoCV)")
        return {"check_sample_weight_equivalence_on_dense_data": reason,
                "check_sample_weight_equivalence_on_sparse_data": reason}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
