"""Result objects returned by the functional solvers."""

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(kw_only=True, repr=False)
class SolverResult:
    """Outcome of an iterative solver, with named fields.

    Solvers subclass it (``@dataclass(kw_only=True, repr=False)``) to add their own
    fields (a transport plan, a low-rank part, ...).

    Attributes
    ----------
    x : array or None
        The solution (coefficients, iterate).
    n_iter : int
        Iterations performed (the solver documents what one iteration is).
    converged : bool
        Whether the stopping criterion reached ``tol`` before ``max_iter``.
    stop_crit : float
        Final value of the stopping criterion (duality gap, KKT violation,
        marginal error, ...), as compared with ``tol``.
    tol : float
        The tolerance the run was asked to reach.
    message : str
        Why the run stopped.
    history : dict of str to ndarray
        Per-check histories, e.g. ``{"objective": ..., "stop_crit": ...}``.
    timings : dict of str to float
        Wall-clock seconds of the run's stages.
    """

    x: object = None
    n_iter: int = 0
    converged: bool = False
    stop_crit: float = np.inf
    tol: float = 0.0
    message: str = ""
    history: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def __repr__(self):
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) or hasattr(value, "shape"):
                shown = f"<{type(value).__name__} shape={tuple(value.shape)}>"
            elif isinstance(value, dict):
                shown = "{" + ", ".join(map(str, value)) + "}"
            else:
                shown = repr(value)
            parts.append(f"  {f.name}={shown}")
        return f"{type(self).__name__}(\n" + ",\n".join(parts) + "\n)"
