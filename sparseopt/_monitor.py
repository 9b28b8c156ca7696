"""Verbosity, progress bars, callbacks and convergence warnings for solver loops.

Every iterative solver drives one :class:`IterationMonitor`::

    monitor = IterationMonitor("lasso", verbose=verbose, callback=callback,
                               max_iter=max_iter, progress=progress)
    for it in range(max_iter):
        ...
        if monitor.step(it + 1, result, stop_crit=gap, objective=obj):
            break          # the callback asked to stop
    monitor.close()

Logging goes to ``logging.getLogger("sparseopt.<name>")``: ``verbose=1`` logs
every ``log_every`` checks at INFO, ``verbose>=2`` every check.  A handler is
attached to the ``sparseopt`` logger on first use only when the application
configured none, so messages appear in a plain script.
"""

import logging
import sys
import warnings

from sklearn.exceptions import ConvergenceWarning

from sparseopt._config import get_config

__all__ = ["ConvergenceWarning", "IterationMonitor", "warn_not_converged"]

_root = logging.getLogger("sparseopt")


def _ensure_handler():
    if not _root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        _root.addHandler(handler)
        _root.propagate = False


def warn_not_converged(name, stop_crit, tol, n_iter, what="stopping criterion"):
    """Emit a :class:`~sklearn.exceptions.ConvergenceWarning` saying how far a run got."""
    warnings.warn(
        f"{name} did not converge in {n_iter} iterations: {what} = {stop_crit:.3e} "
        f"> tol = {tol:.3e}. Increase max_iter, loosen tol or rescale the data.",
        ConvergenceWarning,
        stacklevel=3,
    )


class IterationMonitor:
    """Log progress, drive an optional progress bar and call the user's callback.

    Parameters
    ----------
    name : str
        Solver name, used for the logger ``sparseopt.<name>``.
    verbose : int
        0 silent, 1 periodic INFO lines, 2 every check.  ``0`` falls back to
        the configured default (:func:`sparseopt.set_config`).
    callback : callable or None
        ``callback(result)`` with the solver's current :class:`SolverResult`;
        returning ``True`` or raising ``StopIteration`` stops the run.
    max_iter : int
        Total used by the progress bar.
    progress : bool
        Show a ``tqdm`` progress bar (needs the optional ``tqdm`` package).
    log_every : int
        Period (in checks) of the INFO lines when ``verbose == 1``.
    """

    def __init__(self, name, *, verbose=0, callback=None, max_iter=None,
                 progress=False, log_every=10):
        self.name = name
        self.verbose = int(verbose) or get_config()["verbose"]
        self.callback = callback
        self.log_every = max(1, int(log_every))
        self.logger = logging.getLogger(f"sparseopt.{name}")
        self.n_checks = 0
        self.stopped_by_callback = False
        self._bar = None
        self._last = 0
        if self.verbose:
            _ensure_handler()
            self.logger.setLevel(logging.DEBUG if self.verbose >= 2 else logging.INFO)
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:  # pragma: no cover - optional dependency
                raise ImportError(
                    "progress=True needs the optional 'tqdm' package "
                    "(pip install sparseopt[progress])"
                ) from exc
            self._bar = tqdm(total=max_iter, desc=name, leave=False)

    def step(self, it, result=None, **metrics):
        """Record one check at iteration ``it``; return True if the run must stop."""
        self.n_checks += 1
        if self.verbose and (self.verbose >= 2 or self.n_checks % self.log_every == 1):
            shown = " ".join(f"{k}={v:.6g}" for k, v in metrics.items())
            self.logger.info("iter %d %s", it, shown)
        if self._bar is not None:
            self._bar.update(it - self._last)
            if metrics:
                self._bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()})
            self._last = it
        if self.callback is not None:
            try:
                stop = self.callback(result)
            except StopIteration:
                stop = True
            if stop:
                self.stopped_by_callback = True
                self.logger.info("callback stopped the run at iteration %d", it)
                return True
        return False

    def close(self):
        """Close the progress bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
