"""Block coordinate descent (Nutini, Laradji & Schmidt): the public API.

>>> from sparseopt import bcd
>>> problem = bcd.least_squares(A, b, l1=0.1)          # doctest: +SKIP
>>> res = bcd.minimize(problem, partition="variable", block_size=50,
...                    rule="gsq", update="matrix")      # doctest: +SKIP

See :func:`minimize` and ``docs/bcd.md``.
"""

from sparseopt.solvers.bcd import (
    PARTITIONS,
    RULES,
    UPDATES,
    BCDResult,
    FixedPartition,
    FunctionProblem,
    GLMProblem,
    Penalty,
    QuadraticProblem,
    VariablePartition,
    custom,
    label_propagation,
    least_squares,
    logistic,
    minimize,
    quadratic,
    softmax,
    softmax_regression,
)

__all__ = [
    "PARTITIONS",
    "RULES",
    "UPDATES",
    "BCDResult",
    "FixedPartition",
    "FunctionProblem",
    "GLMProblem",
    "Penalty",
    "QuadraticProblem",
    "VariablePartition",
    "custom",
    "label_propagation",
    "least_squares",
    "logistic",
    "minimize",
    "quadratic",
    "softmax",
    "softmax_regression",
]
