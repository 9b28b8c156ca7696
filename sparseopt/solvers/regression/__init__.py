"""Sparse generalized linear models: datafits, penalties and the working-set solver.

The pieces are plain parameters and arrays so the Numba kernels in
:mod:`sparseopt.kernels._cd` can be cached on disk:

* :func:`prepare_design` -- validated, rescaled design and target
  (:class:`Design`), dense Fortran or CSC;
* penalty factories :func:`l1_penalty`, :func:`group_penalty`,
  :func:`mcp_penalty`, :func:`scad_penalty`, :func:`l0_penalty`;
* :func:`solve` / :func:`solve_path` -- working-set coordinate descent with
  Anderson extrapolation and gap-safe screening.

The scikit-learn estimators live in :mod:`sparseopt.linear_model`.
"""

from sparseopt.solvers.regression._design import (
    Design,
    group_lipschitz,
    prepare_design,
)
from sparseopt.solvers.regression._penalties import (
    Penalty,
    group_penalty,
    l0_penalty,
    l1_penalty,
    mcp_penalty,
    scad_penalty,
)
from sparseopt.solvers.regression._solver import (
    PathResult,
    RegressionResult,
    solve,
    solve_path,
)

__all__ = [
    "Design",
    "PathResult",
    "Penalty",
    "RegressionResult",
    "group_lipschitz",
    "group_penalty",
    "l0_penalty",
    "l1_penalty",
    "mcp_penalty",
    "prepare_design",
    "scad_penalty",
    "solve",
    "solve_path",
]
