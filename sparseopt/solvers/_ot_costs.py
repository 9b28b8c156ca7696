"""Ground costs for optimal transport: point clouds and regular grids."""

import numpy as np
from scipy.spatial.distance import cdist

from sparseopt._validation import check_array, check_scalar, float_dtype
from sparseopt.solvers._xp_checks import check_array_xp, device_backend, fetch, float_dtype_xp

__all__ = ["cost_matrix", "grid_coordinates", "grid_cost"]

_METRICS = ("sqeuclidean", "euclidean", "cityblock", "minkowski")


def cost_matrix(X, Y=None, *, metric="sqeuclidean", p=2.0, power=1.0, scale=None):
    r"""Cost matrix between two point clouds.

    .. math:: M_{ij} = d(x_i, y_j)^{\text{power}},

    with ``d`` the squared Euclidean distance (``"sqeuclidean"``, computed as
    :math:`\|x\|^2 + \|y\|^2 - 2 x^\top y` clipped at 0, as POT's ``ot.dist``),
    the Euclidean distance, the L1 (``"cityblock"``) or the Lp (``"minkowski"``
    with exponent ``p``) distance.  ``metric="minkowski", p=1, power=1`` is
    the W1 ground cost of the L1 norm; ``metric="euclidean", power=p`` gives
    the ground cost of :math:`W_p`.

    Parameters
    ----------
    X : array_like of shape (n, d)
    Y : array_like of shape (m, d), optional
        Defaults to ``X``.
    metric : {"sqeuclidean", "euclidean", "cityblock", "minkowski"}
    p : float, default 2
        Exponent of the Lp norm for ``metric="minkowski"`` (``p >= 1``).
    power : float, default 1
        The distance is raised to this power.
    scale : {None, "max", "mean"}
        Divide the costs by their maximum or mean (a common normalisation that
        makes ``reg`` relative to the cost scale).

    Returns
    -------
    M : ndarray of shape (n, m)
        float32 when both clouds are float32, float64 otherwise.  On the
        device of ``X`` and ``Y`` when they are device (e.g. CuPy) arrays.
    """
    nx = device_backend(X=X, Y=Y)
    if nx is not None:
        return _cost_matrix_xp(nx, X, Y, metric=metric, p=p, power=power, scale=scale)
    X = check_array(X, "X", ndim=2)
    Y = X if Y is None else check_array(Y, "Y", ndim=2)
    p, power = _check_options(X.shape, Y.shape, metric, p, power, scale)
    dtype = float_dtype(X.dtype, Y.dtype)
    Xd = X.astype(np.float64)
    Yd = Y.astype(np.float64)
    if metric == "sqeuclidean":
        M = (Xd * Xd).sum(1)[:, None] + (Yd * Yd).sum(1)[None, :] - 2.0 * (Xd @ Yd.T)
        np.maximum(M, 0.0, out=M)
    elif metric == "euclidean":
        M = cdist(Xd, Yd, "euclidean")
    elif metric == "cityblock":
        M = cdist(Xd, Yd, "cityblock")
    else:
        M = cdist(Xd, Yd, "minkowski", p=p)
    if power != 1.0:
        M **= power
    if scale == "max":
        mx = M.max()
        if mx > 0:
            M /= mx
    elif scale == "mean":
        mean = M.mean()
        if mean > 0:
            M /= mean
    return M.astype(dtype, copy=False)


def _check_options(x_shape, y_shape, metric, p, power, scale):
    if x_shape[1] != y_shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features, got {x_shape[1]} and {y_shape[1]}"
        )
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    p = check_scalar(p, "p", low=1.0)
    power = check_scalar(power, "power", low=0.0, include_low=False)
    if scale not in (None, "max", "mean"):
        raise ValueError(f"scale must be None, 'max' or 'mean', got {scale!r}")
    return p, power


def _cost_matrix_xp(nx, X, Y, *, metric, p, power, scale):
    """:func:`cost_matrix` on device arrays (array-API expressions, float64 inside).

    The squared Euclidean cost uses the same expansion as the CPU; the other
    metrics sum ``|x_k - y_k|`` powers over the (few) coordinates, as ``cdist``.
    """
    xp = nx.xp
    X = check_array_xp(nx, X, "X", ndim=2)
    Y = X if Y is None else check_array_xp(nx, Y, "Y", ndim=2)
    p, power = _check_options(X.shape, Y.shape, metric, p, power, scale)
    dtype = float_dtype_xp(xp, X.dtype, Y.dtype)
    Xd = xp.astype(X, xp.float64)
    Yd = xp.astype(Y, xp.float64)
    if metric == "sqeuclidean":
        M = (xp.sum(Xd * Xd, axis=1)[:, None] + xp.sum(Yd * Yd, axis=1)[None, :]
             - 2.0 * (Xd @ Yd.T))
        M = xp.maximum(M, 0.0)
    else:
        M = xp.zeros((X.shape[0], Y.shape[0]), dtype=xp.float64)
        for k in range(X.shape[1]):
            D = xp.abs(Xd[:, k][:, None] - Yd[:, k][None, :])
            if metric == "euclidean":
                M = M + D * D
            elif metric == "cityblock":
                M = M + D
            else:
                M = M + D**p
        if metric == "euclidean":
            M = xp.sqrt(M)
        elif metric == "minkowski":
            M = M ** (1.0 / p)
    if power != 1.0:
        M = M**power
    if scale is not None:
        (s,) = fetch(nx, xp.max(M) if scale == "max" else xp.mean(M))
        if s > 0:
            M = M / s
    return xp.astype(M, dtype)


def grid_cost_xp(nx, shape, *, p=2, metric="euclidean", spacing=1.0, dtype=None):
    """:func:`grid_cost` computed on the device of backend ``nx`` (coordinates copied once)."""
    if metric not in ("euclidean", "cityblock"):
        raise ValueError(f"metric must be 'euclidean' or 'cityblock', got {metric!r}")
    p = check_scalar(p, "p", low=0.0, include_low=False)
    X = nx.asarray(grid_coordinates(shape, spacing))
    if dtype is not None:
        X = nx.xp.astype(X, dtype)
    if metric == "euclidean" and p == 2:
        return _cost_matrix_xp(nx, X, None, metric="sqeuclidean", p=2.0, power=1.0,
                               scale=None)
    return _cost_matrix_xp(nx, X, None, metric=metric, p=2.0, power=p, scale=None)


def grid_coordinates(shape, spacing=1.0):
    """Centres of the cells of a regular grid of the given shape, in C order.

    Returns an array of shape ``(prod(shape), len(shape))``: row ``k`` is the
    position of the cell of flat index ``k`` (as in ``image.ravel()``).
    """
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of positive ints, got {shape}")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (len(shape),))
    axes = [np.arange(s) * h for s, h in zip(shape, spacing, strict=True)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in mesh], axis=1)


def grid_cost(shape, *, p=2, metric="euclidean", spacing=1.0, scale=None):
    r"""Ground cost of :math:`W_p` between densities discretised on a grid.

    ``M_kl = d(x_k, x_l)^p`` between the cell centres of a grid of the given
    ``shape`` (e.g. ``(28, 28)`` for an image), in the flat C order of
    ``image.ravel()``.  ``p=1`` gives the W1 cost, ``p=2`` the W2 cost
    (squared Euclidean distance for the default metric).

    Parameters
    ----------
    shape : tuple of int
    p : float, default 2
        Power of the distance (the ``p`` of :math:`W_p`).
    metric : {"euclidean", "cityblock"}
        Distance between cell centres.
    spacing : float or sequence of float
        Cell size along each axis.
    scale : {None, "max", "mean"}
        Optional normalisation (see :func:`cost_matrix`).
    """
    if metric not in ("euclidean", "cityblock"):
        raise ValueError(f"metric must be 'euclidean' or 'cityblock', got {metric!r}")
    p = check_scalar(p, "p", low=0.0, include_low=False)
    X = grid_coordinates(shape, spacing)
    if metric == "euclidean" and p == 2:
        return cost_matrix(X, metric="sqeuclidean", scale=scale)
    return cost_matrix(X, metric=metric, power=p, scale=scale)
