"""sparseopt: sparse optimization and sparse linear algebra for Python.

Sparse formats (:class:`CSR`, :class:`BSR`) and kernels (:func:`spmv`,
:func:`spmm`, :func:`spgemm`) shared by a Numba CPU backend and a CuPy GPU
backend, and the solvers built on them: sparse regression, block coordinate
descent, entropic optimal transport, sparse Bayesian learning, robust PCA and
Monarch matrices.

Public names are imported lazily (PEP 562), so ``import sparseopt`` stays fast
and never imports cupy.
"""

import importlib

__version__ = "0.1.0.dev0"

# public name -> module that defines it.  Each capability owns its own block.
_LAZY = {
    # core
    "CSR": "sparseopt.formats",
    "BSR": "sparseopt.formats",
    "spmv": "sparseopt.linalg",
    "spmm": "sparseopt.linalg",
    "spmm_t": "sparseopt.linalg",
    "spgemm": "sparseopt.linalg",
    "get_backend": "sparseopt._backend",
    "get_config": "sparseopt._config",
    "set_config": "sparseopt._config",
    "config_context": "sparseopt._config",
    "SolverResult": "sparseopt._result",
    # sparse regression
    "Lasso": "sparseopt.linear_model",
    "ElasticNet": "sparseopt.linear_model",
    "GroupLasso": "sparseopt.linear_model",
    "MCPRegression": "sparseopt.linear_model",
    "SCADRegression": "sparseopt.linear_model",
    "L0Regression": "sparseopt.linear_model",
    "SparseLogisticRegression": "sparseopt.linear_model",
    "LassoCV": "sparseopt.linear_model",
    "lasso_path": "sparseopt.linear_model",
    "enet_path": "sparseopt.linear_model",
    # optimal transport
    "sinkhorn": "sparseopt.ot",
    "sinkhorn_newton_sparse": "sparseopt.ot",
    # sparse Bayesian learning
    "SparseBayesianRegression": "sparseopt.bayes",
    "RelevanceVectorClassifier": "sparseopt.bayes",
    "KroneckerSBL": "sparseopt.bayes",
    "kronecker_sbl": "sparseopt.bayes",
    "block_sbl": "sparseopt.bayes",
    "sbl_regression": "sparseopt.bayes",
    "rvm_classification": "sparseopt.bayes",
    # robust PCA
    "RobustPCA": "sparseopt.decomposition",
    "robust_pca": "sparseopt.decomposition",
    # Monarch
    "MonarchMatrix": "sparseopt.structured",
    "monarch_project": "sparseopt.structured",
    "MonarchApproximation": "sparseopt.structured",
}
_SUBMODULES = {
    "formats", "kernels", "linalg", "solvers", "bcd", "ot", "linear_model",
    "bayes", "decomposition", "structured", "distributed", "gpu",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"sparseopt.{name}")
    raise AttributeError(f"module 'sparseopt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
