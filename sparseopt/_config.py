"""Thread-local configuration: backend override, thread count and verbosity.

Modelled on :func:`sklearn.set_config`.  Every thread starts from the global
defaults; ``set_config`` changes the calling thread's view only, and
``config_context`` restores it on exit.
"""

import contextlib
import threading

import numba

_DEFAULTS = {"backend": "auto", "n_threads": None, "verbose": 0}
_BACKENDS = ("auto", "numpy", "cupy")
_local = threading.local()


def _thread_config():
    if not hasattr(_local, "config"):
        _local.config = dict(_DEFAULTS)
    return _local.config


def get_config():
    """Return a copy of the calling thread's configuration.

    Returns
    -------
    config : dict
        Keys ``backend``, ``n_threads`` and ``verbose``.
    """
    return dict(_thread_config())


def set_config(*, backend=None, n_threads=None, verbose=None):
    """Change the calling thread's configuration.

    Parameters
    ----------
    backend : {"auto", "numpy", "cupy"}, optional
        ``"auto"`` picks the backend from the arrays' types; the others force one
        (arrays of the other library are then rejected with a ``TypeError``).
    n_threads : int or None, optional
        Threads for parallel Numba kernels; ``None`` keeps Numba's default
        (``NUMBA_NUM_THREADS``).  Values above that default are clipped to it.
    verbose : int, optional
        Default verbosity of solvers whose own ``verbose`` is 0.
    """
    cfg = _thread_config()
    if backend is not None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        cfg["backend"] = backend
    if n_threads is not None:
        if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
            raise ValueError(f"n_threads must be a positive int or None, got {n_threads!r}")
        cfg["n_threads"] = n_threads
    if verbose is not None:
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if not isinstance(verbose, int) or verbose < 0:
            raise ValueError(f"verbose must be a non-negative int, got {verbose!r}")
        cfg["verbose"] = verbose


@contextlib.contextmanager
def config_context(*, backend=None, n_threads=None, verbose=None):
    """Temporarily change the configuration (see :func:`set_config`).

    Examples
    --------
    >>> import sparseopt
    >>> with sparseopt.config_context(n_threads=1):
    ...     sparseopt.get_config()["n_threads"]
    1
    """
    old = get_config()
    set_config(backend=backend, n_threads=n_threads, verbose=verbose)
    try:
        yield
    finally:
        _thread_config().update(old)


@contextlib.contextmanager
def numba_threads(n_threads=None):
    """Apply a thread count to Numba's pool for the duration of a call.

    ``n_threads`` overrides the configured value; ``None`` uses ``get_config()``.
    The previous count is restored on exit (Numba's setting is thread-local).
    """
    n = n_threads if n_threads is not None else _thread_config()["n_threads"]
    if n is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
