"""scikit-learn compatibility of the SBL estimators."""

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseopt.bayes import KroneckerSBL, RelevanceVectorClassifier, SparseBayesianRegression

_rng = np.random.default_rng(0)
# The common checks mostly use 3 features: a 3-row Kronecker dictionary
_KRON = KroneckerSBL([_rng.standard_normal((3, 4)), _rng.standard_normal((1, 2))],
                     noise_variance=0.1, max_iter=5)

_DICT_FIXES_N_FEATURES = (
    "the dictionary (a parameter, as in SparseCoder) fixes the number of features; "
    "data with another number of features is rejected with a clear ValueError"
)
_KRON_XFAIL = {
    name: _DICT_FIXES_N_FEATURES
    for name in (
        "check_estimators_overwrite_params", "check_estimators_fit_returns_self",
        "check_readonly_memmap_input", "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit", "check_estimators_dtypes",
        "check_dtype_object", "check_fit2d_1sample", "check_fit2d_1feature",
        "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
    )
}
_KERNEL_XFAIL = {
    name: "with a kernel the basis functions sit at the training points, so a "
          "repeated point adds a duplicate basis function: weights cannot be "
          "equivalent to repetitions"
    for name in ("check_sample_weight_equivalence_on_dense_data",
                 "check_sample_weight_equivalence_on_sparse_data")
}


def _expected_failed(estimator):
    if isinstance(estimator, KroneckerSBL):
        return _KRON_XFAIL
    if getattr(estimator, "kernel", None) is not None:
        return _KERNEL_XFAIL
    return {}


@parametrize_with_checks(
    [
        SparseBayesianRegression(),
        SparseBayesianRegression(solver="em", max_iter=200),
        SparseBayesianRegression(kernel="rbf"),
        RelevanceVectorClassifier(),
        RelevanceVectorClassifier(kernel="rbf"),
        _KRON,
    ],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
