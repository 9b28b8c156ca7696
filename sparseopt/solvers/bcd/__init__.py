"""Block coordinate descent with greedy rules, message passing and active sets.

Implements the framework of Nutini, Laradji & Schmidt, "Let's Make Block
Coordinate Descent Converge Faster" (JMLR 2022): block partitions (fixed,
variable, forest-structured), selection rules (cyclic, random, Lipschitz
sampling, GS, GSL, GSD, GSQ and proximal GS-q), update rules (Lipschitz
gradient, matrix, Newton, message passing) and active-set identification.
The public module is :mod:`sparseopt.bcd`.
"""

from sparseopt.solvers.bcd._partitions import PARTITIONS, FixedPartition, VariablePartition
from sparseopt.solvers.bcd._penalty import Penalty
from sparseopt.solvers.bcd._problems import (
    FunctionProblem,
    GLMProblem,
    QuadraticProblem,
    custom,
    label_propagation,
    least_squares,
    logistic,
    quadratic,
    softmax_regression,
)
from sparseopt.solvers.bcd._rules import RULES
from sparseopt.solvers.bcd._solver import BCDResult, minimize
from sparseopt.solvers.bcd._updates import UPDATES

softmax = softmax_regression

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
