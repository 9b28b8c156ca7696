"""Input checking and support restriction shared by the entropic-OT solvers."""

from dataclasses import dataclass

import numpy as np

from sparseopt._validation import check_array, check_scalar, float_dtype

__all__ = ["OTProblem", "check_ot_input", "embed_potential"]


@dataclass
class OTProblem:
    """A checked problem: histograms (float64), cost (working dtype), support."""

    a: np.ndarray          # (n,) float64
    b: np.ndarray          # (m,) or (m, k) float64
    M: np.ndarray          # (n, m) working dtype, C-contiguous
    reg: float
    dtype: np.dtype
    batch: bool


def _histogram(h, name, size, dtype_hint):
    if h is None or np.size(h) == 0:
        return np.full(size, 1.0 / size), dtype_hint
    arr = check_array(h, name, ndim=(1, 2) if name == "b" else 1, finite=True)
    dt = arr.dtype
    arr = arr.astype(np.float64)
    if arr.shape[0] != size:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but M has {size} "
            f"{'rows' if name == 'a' else 'columns'}"
        )
    if (arr < 0).any():
        raise ValueError(f"{name} must have non-negative entries")
    return arr, dt


def check_ot_input(a, b, M, reg, *, normalize=False, mass_rtol=1e-6):
    """Validate ``(a, b, M, reg)`` in POT conventions and return an :class:`OTProblem`.

    ``a`` or ``b`` given as ``None`` or an empty list means uniform weights.
    ``b`` may be ``(m, k)``: k target histograms sharing the cost.
    """
    M = check_array(M, "M", ndim=2, finite=True)
    n, m = M.shape
    if n == 0 or m == 0:
        raise ValueError(f"M must have at least one row and one column, got shape {M.shape}")
    reg = check_scalar(reg, "reg", low=0.0, include_low=False)
    a, da = _histogram(a, "a", n, M.dtype)
    b, db = _histogram(b, "b", m, M.dtype)
    dtype = float_dtype(M.dtype, da, db)
    M = np.ascontiguousarray(M, dtype=dtype)
    sa = a.sum()
    sb = b.sum(axis=0)
    if sa <= 0:
        raise ValueError("a must have positive total mass")
    if np.any(sb <= 0):
        raise ValueError("b must have positive total mass (every column)")
    if normalize:
        a = a / sa
        b = b / sb
    elif np.any(np.abs(sb - sa) > mass_rtol * max(sa, np.max(sb))):
        raise ValueError(
            f"a and b must have the same total mass, got sum(a) = {sa:.10g} and "
            f"sum(b) = {np.atleast_1d(sb)}; pass normalize=True to rescale both "
            "to unit mass"
        )
    # masses equal to within mass_rtol: make them equal exactly (the problem is
    # infeasible otherwise and no solver could meet a tighter marginal tolerance)
    b = b * (a.sum() / b.sum(axis=0))
    return OTProblem(a=a, b=b, M=M, reg=reg, dtype=np.dtype(dtype), batch=b.ndim == 2)


def support(a, b):
    """Indices of the positive entries of ``a`` and ``b`` (None when all are positive)."""
    ia = None if (a > 0).all() else np.flatnonzero(a > 0)
    ib = None if (b > 0).all() else np.flatnonzero(b > 0)
    return ia, ib


def restrict(M, ia, ib):
    """Rows ``ia`` and columns ``ib`` of M (a copy only when one of them is not None)."""
    if ia is None and ib is None:
        return M
    rows = slice(None) if ia is None else ia
    cols = slice(None) if ib is None else ib
    if ia is not None and ib is not None:
        return np.ascontiguousarray(M[np.ix_(ia, ib)])
    return np.ascontiguousarray(M[rows][:, cols])


def embed_potential(x, idx, size, fill=-np.inf):
    """Put ``x`` (defined on the support ``idx``) into a full-size vector."""
    if idx is None:
        return x
    out = np.full(size, fill, dtype=x.dtype)
    out[idx] = x
    return out


def check_init(init, n, m):
    """Validate a warm start ``(f, g)`` of potentials; return float64 copies."""
    if init is None:
        return None
    try:
        f, g = init
    except (TypeError, ValueError) as exc:
        raise TypeError("init must be a pair (f, g) of potentials") from exc
    f = check_array(f, "init[0]", ndim=1, finite=False).astype(np.float64)
    g = check_array(g, "init[1]", ndim=1, finite=False).astype(np.float64)
    if f.shape[0] != n or g.shape[0] != m:
        raise ValueError(
            f"init potentials must have shapes ({n},) and ({m},), got {f.shape} and {g.shape}"
        )
    if np.isnan(f).any() or np.isnan(g).any() or np.isposinf(f).any() or np.isposinf(g).any():
        raise ValueError("init potentials must not contain NaN or +inf")
    return f, g
