r"""Composite problems ``F(x) = f(x) + g(x)`` for block coordinate descent.

``f`` is smooth and exposes a small protocol; ``g`` is a separable
:class:`~sparseopt.solvers.bcd._penalty.Penalty`.  The protocol (what
:func:`~sparseopt.solvers.bcd.minimize` calls) is:

==============================  =====================================================
``n_vars``, ``dtype``           number of variables, dtype of the returned iterate
``penalty``                     the separable part ``g``
``init_state(x)``               per-run state (iterate plus cached products)
``update_state(state, b, d)``   ``x_b += d`` and refresh the cached products
``value(state)``                ``f(x)``
``gradient(state)``             ``\nabla f(x)`` (read-only array)
``lipschitz()``                 coordinate constants ``L_i >= \nabla^2_{ii} f``
``hessian_bound(b)``            dense ``H_b`` with ``\nabla^2_{bb} f(x) \preceq H_b`` for all ``x``
``hessian(state, b)``           (optional) exact block Hessian, for Newton updates
``hessian_bound_matvec(v)``     (optional) ``H v`` for a global bound (GSQ on variable blocks)
``diag_bound()``                (optional) ``d_i`` with ``\nabla^2 f \preceq diag(d)`` (GSD)
``value_after(state, b, d)``    (optional) ``f(x + d_b)`` without changing the state
``hessian_csr()``               (optional) sparse Hessian of a quadratic (forest blocks)
==============================  =====================================================

Built in: least squares, binary logistic and multi-class (softmax) logistic
regression on a dense or sparse design, sparse quadratics and graph label
propagation, each optionally with an L1 term and bounds.  Their states keep the
margins ``Ax`` and the gradient up to date *incrementally*: updating block ``b``
touches only the rows of ``A[:, b]`` and the gradient entries of the columns of
those rows (the sparse dependency structure the greedy rules exploit).
"""

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_expit, logsumexp, softmax

from sparseopt._validation import check_array, check_scalar, float_dtype
from sparseopt.solvers._xp_linalg import device_backend
from sparseopt.solvers.bcd._design import as_design, canonical_csr
from sparseopt.solvers.bcd._penalty import Penalty

__all__ = [
    "FunctionProblem",
    "GLMProblem",
    "QuadraticProblem",
    "custom",
    "label_propagation",
    "least_squares",
    "logistic",
    "quadratic",
    "softmax_regression",
]


def _penalty(n, l1, bounds):
    if bounds is None:
        return Penalty(n, l1)
    try:
        lo, hi = bounds
    except (TypeError, ValueError) as exc:
        raise ValueError("bounds must be a pair (lower, upper)") from exc
    return Penalty(n, l1, lo, hi)


class _GLMState:
    __slots__ = ("G", "M", "S", "X", "fval", "grad", "x")


class GLMProblem:
    r"""``f(W) = \sum_i \ell(a_i^T W, y_i) + \frac{l_2}{2}\|W\|^2`` with ``W`` of shape (p, k).

    The variables are ``x = W.ravel()`` (variable ``j * k + c`` is feature
    ``j`` of class ``c``).  Build it with :func:`least_squares`,
    :func:`logistic` or :func:`softmax_regression`.
    """

    _scales: ClassVar[dict] = {"squared": 1.0, "logistic": 0.25, "softmax": 0.5}

    def __init__(self, design, Y, loss, l2, penalty, dtype, classes=None):
        self.design = design
        self.Y = Y
        self.loss = loss
        self.l2 = l2
        self.penalty = penalty
        self.dtype = dtype
        self.classes = classes
        self.n_samples, self.n_features = design.shape
        self.n_outputs = Y.shape[1]
        self.n_vars = self.n_features * self.n_outputs
        self._scale = self._scales[loss]
        self._L = None
        self.is_quadratic = loss == "squared"

    # -- loss on a set of rows
    def _loss_rows(self, M, Y):
        if self.loss == "squared":
            return 0.5 * float(np.sum((M - Y) ** 2))
        if self.loss == "logistic":
            return -float(np.sum(log_expit(Y * M)))
        return float(np.sum(logsumexp(M, axis=1)) - np.sum(M * Y))

    def _deriv_rows(self, M, Y):
        if self.loss == "squared":
            return M - Y
        if self.loss == "logistic":
            return -Y * expit(-Y * M)
        return softmax(M, axis=1) - Y

    def _split(self, block):
        k = self.n_outputs
        if k == 1:
            return block, np.arange(len(block)), np.zeros(len(block), np.int64)
        feat = block // k
        cls = block % k
        ufeat, inv = np.unique(feat, return_inverse=True)
        return ufeat, inv, cls

    # -- protocol
    def init_state(self, x):
        st = _GLMState()
        st.x = np.array(x, dtype=np.float64)
        st.X = st.x.reshape(self.n_features, self.n_outputs)
        st.M = self.design.matvec(st.X)
        st.S = self._deriv_rows(st.M, self.Y)
        st.G = self.design.rmatvec(st.S) + self.l2 * st.X
        st.grad = st.G.reshape(-1)
        st.fval = self._loss_rows(st.M, self.Y) + 0.5 * self.l2 * float(st.x @ st.x)
        return st

    def _delta_rows(self, block, delta):
        if self.n_outputs == 1:
            return self.design.block_product(block, np.asarray(delta)[:, None])
        ufeat, inv, cls = self._split(block)
        D = np.zeros((len(ufeat), self.n_outputs))
        np.add.at(D, (inv, cls), delta)
        return self.design.block_product(ufeat, D)

    def update_state(self, st, block, delta):
        rows, dM = self._delta_rows(block, delta)
        Mr = st.M[rows] + dM
        Yr = self.Y[rows]
        st.fval += self._loss_rows(Mr, Yr) - self._loss_rows(st.M[rows], Yr)
        xb = st.x[block]
        xn = xb + delta
        st.fval += 0.5 * self.l2 * float(xn @ xn - xb @ xb)
        st.M[rows] = Mr
        Sn = self._deriv_rows(Mr, Yr)
        dS = Sn - st.S[rows]
        st.S[rows] = Sn
        self.design.rows_accumulate(rows, dS, st.G)
        st.x[block] = xn
        if self.l2:
            st.grad[block] += self.l2 * delta

    def value_after(self, st, block, delta):
        rows, dM = self._delta_rows(block, delta)
        Yr = self.Y[rows]
        xb = st.x[block]
        xn = xb + delta
        return (st.fval + self._loss_rows(st.M[rows] + dM, Yr)
                - self._loss_rows(st.M[rows], Yr)
                + 0.5 * self.l2 * float(xn @ xn - xb @ xb))

    def value(self, st):
        return st.fval

    def gradient(self, st):
        return st.grad

    def lipschitz(self):
        if self._L is None:
            L = self._scale * self.design.col_sq_norms() + self.l2
            self._L = np.repeat(L, self.n_outputs)
        return self._L

    def diag_bound(self):
        d = self._scale * self.design.abs_gram_rowsum() + self.l2
        return np.repeat(d, self.n_outputs)

    def _block_columns(self, block):
        ufeat, inv, cls = self._split(block)
        rows, Ad = self.design.dense_columns(ufeat)
        return rows, Ad[:, inv], cls

    def _gram(self, block, w=None):
        ufeat, inv, cls = self._split(block)
        G = self.design.block_gram(ufeat, w)
        if self.n_outputs == 1:
            return G
        return G[np.ix_(inv, inv)] * (cls[:, None] == cls[None, :])

    def hessian_bound(self, block):
        H = self._gram(block)
        H *= self._scale
        H[np.diag_indices_from(H)] += self.l2
        return H

    def hessian(self, st, block):
        if self.loss == "squared":
            H = self._gram(block)
        elif self.loss == "logistic":
            p = expit(st.M[:, 0])
            H = self._gram(block, p * (1.0 - p))
        else:
            rows, Ab, cls = self._block_columns(block)
            P = softmax(st.M[rows], axis=1)
            U = Ab * P[:, cls]
            H = (U.T @ Ab) * (cls[:, None] == cls[None, :]) - U.T @ U
        H[np.diag_indices_from(H)] += self.l2
        return H

    def hessian_bound_matvec(self, v):
        V = v.reshape(self.n_features, self.n_outputs)
        nz = np.flatnonzero(np.any(V != 0, axis=1))
        out = self.l2 * V
        if len(nz):
            rows, dM = self.design.block_product(nz, V[nz])
            G = np.zeros_like(V)
            self.design.rows_accumulate(rows, dM, G)
            out = out + self._scale * G
        return out.reshape(-1)

    def coef(self, x):
        """The coefficients ``W`` (shape (p,) for one output, else (p, k))."""
        W = np.asarray(x).reshape(self.n_features, self.n_outputs)
        return W[:, 0] if self.n_outputs == 1 else W


class _QuadState:
    __slots__ = ("fval", "grad", "x")


class QuadraticProblem:
    r"""``f(x) = \frac12 x^T Q x - c^T x + \text{const}`` with a sparse symmetric ``Q``.

    Build it with :func:`quadratic` or :func:`label_propagation`.  Its Hessian
    is available as a CSR graph, which enables forest-structured blocks and
    exact updates by message passing.
    """

    def __init__(self, Q, c, const, penalty, dtype):
        self.Q = Q
        self.c = c
        self.const = const
        self.penalty = penalty
        self.dtype = dtype
        self.n_vars = Q.shape[0]
        self.is_quadratic = True
        self._diag = Q.diagonal().copy()
        n = self.n_vars
        self._acc = np.zeros((n, 1))
        self._mark = np.zeros(n, np.int64)
        self._rows = np.empty(n, np.int64)
        self._stamp = 0

    def init_state(self, x):
        st = _QuadState()
        st.x = np.array(x, dtype=np.float64)
        Qx = self.Q @ st.x
        st.grad = Qx - self.c
        st.fval = 0.5 * float(st.x @ Qx) - float(self.c @ st.x) + self.const
        return st

    def _dgrad(self, block, delta):
        from sparseopt.kernels._bcd import csc_block_product

        self._stamp += 1
        # Q is symmetric, so its CSR arrays are also the CSC arrays.
        nr = csc_block_product(self.Q.indptr, self.Q.indices, self.Q.data,
                               np.ascontiguousarray(block, dtype=np.int64),
                               np.ascontiguousarray(delta, dtype=np.float64)[:, None],
                               self._acc, self._mark, self._stamp, self._rows)
        rows = self._rows[:nr].copy()
        dg = self._acc[rows, 0].copy()
        dgb = self._acc[block, 0].copy()
        self._acc[rows, 0] = 0.0
        return rows, dg, dgb

    def update_state(self, st, block, delta):
        rows, dg, dgb = self._dgrad(block, delta)
        st.fval += float(st.grad[block] @ delta) + 0.5 * float(delta @ dgb)
        st.grad[rows] += dg
        st.x[block] += delta

    def value_after(self, st, block, delta):
        _, _, dgb = self._dgrad(block, delta)
        return st.fval + float(st.grad[block] @ delta) + 0.5 * float(delta @ dgb)

    def value(self, st):
        return st.fval

    def gradient(self, st):
        return st.grad

    def lipschitz(self):
        return self._diag

    def diag_bound(self):
        return np.asarray(abs(self.Q).sum(axis=1)).ravel()

    def hessian_bound(self, block):
        return self.Q[block][:, block].toarray()

    def hessian(self, st, block):
        return self.hessian_bound(block)

    def hessian_bound_matvec(self, v):
        return self.Q @ v

    def hessian_csr(self):
        return self.Q


class _FunState:
    __slots__ = ("fval", "grad", "x")


class FunctionProblem:
    """A smooth ``f`` given by plain functions of the full iterate (see :func:`custom`)."""

    def __init__(self, fun, grad, lipschitz, hessian, penalty, n_vars):
        self._fun = fun
        self._grad = grad
        self._Lvec = lipschitz
        self._hess = hessian
        self.penalty = penalty
        self.n_vars = n_vars
        self.dtype = np.dtype(np.float64)
        if hessian is None:
            # no Newton updates without a Hessian: hide the optional method
            self.hessian = None

    def init_state(self, x):
        st = _FunState()
        st.x = np.array(x, dtype=np.float64)
        self._refresh(st)
        return st

    def _refresh(self, st):
        st.fval = float(self._fun(st.x.copy()))
        g = np.asarray(self._grad(st.x.copy()), dtype=np.float64)
        if g.shape != (self.n_vars,):
            raise ValueError(f"grad returned shape {g.shape}, expected ({self.n_vars},)")
        if not np.isfinite(g).all():
            raise ValueError("grad returned non-finite values")
        st.grad = g

    def update_state(self, st, block, delta):
        st.x[block] += delta
        self._refresh(st)

    def value_after(self, st, block, delta):
        z = st.x.copy()
        z[block] += delta
        return float(self._fun(z))

    def value(self, st):
        return st.fval

    def gradient(self, st):
        return st.grad

    def lipschitz(self):
        return self._Lvec

    def hessian_bound(self, block):
        # for a convex f, lambda_max(H_bb) <= trace(H_bb) <= sum_{i in b} L_i
        return np.eye(len(block)) * float(self._Lvec[block].sum())

    def hessian(self, st, block):
        H = np.asarray(self._hess(st.x.copy()), dtype=np.float64)
        return H[np.ix_(block, block)]


# --------------------------------------------------------------------------
# constructors


def _targets_1d(b, name, n):
    b = check_array(b, name, ndim=1)
    if b.shape[0] != n:
        raise ValueError(f"{name} has {b.shape[0]} entries but A has {n} rows")
    return b


def least_squares(A, b, l1=0.0, *, l2=0.0, bounds=None):
    r"""Least squares ``\frac12\|Ax - b\|^2 + \frac{l_2}{2}\|x\|^2 + l_1\|x\|_1``.

    Parameters
    ----------
    A : array_like or sparse matrix, shape (n, p)
        Design (dense, scipy.sparse or :class:`sparseopt.CSR`).
    b : array_like, shape (n,)
        Targets.
    l1, l2 : float
        L1 and squared-L2 weights (``>= 0``).
    bounds : (lower, upper), optional
        Box constraints (scalars or arrays of shape (p,)); ``(0, None)`` gives
        non-negative least squares.

    Returns
    -------
    GLMProblem
    """
    nx = device_backend(A=A, b=b)
    if nx is not None:  # CuPy (or another non-NumPy namespace): a device problem
        from sparseopt.solvers.bcd._bcd_xp import xp_glm_problem

        return xp_glm_problem(nx, A, b, "squared", l1, l2, bounds)
    design, adt = as_design(A)
    b = _targets_1d(b, "b", design.shape[0])
    l2 = check_scalar(l2, "l2", low=0.0)
    pen = _penalty(design.shape[1], l1, bounds)
    Y = np.array(b, dtype=np.float64)[:, None]
    return GLMProblem(design, Y, "squared", l2, pen, float_dtype(adt, b.dtype))


def _labels_pm1(y, n):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    classes = np.unique(y)
    if len(classes) > 2:
        raise ValueError(f"logistic needs two classes in y, got {len(classes)}; "
                         "use softmax for more")
    if len(classes) < 2:
        raise ValueError("logistic needs two classes in y, got "
                         f"{len(classes)}")
    return np.where(y == classes[1], 1.0, -1.0), classes


def logistic(A, y, l1=0.0, *, l2=0.0, bounds=None):
    r"""Binary logistic regression.

    ``f(x) = \sum_i \log(1 + e^{-y_i a_i^T x}) + \frac{l_2}{2}\|x\|^2``, plus
    ``g(x) = l_1\|x\|_1`` (and bounds).

    ``y`` holds two class labels; the larger one is mapped to ``+1``
    (scikit-learn's convention).  No intercept (add a column of ones to ``A``).
    """
    nx = device_backend(A=A, y=y)
    if nx is not None:
        from sparseopt.solvers.bcd._bcd_xp import xp_glm_problem

        return xp_glm_problem(nx, A, y, "logistic", l1, l2, bounds)
    design, adt = as_design(A)
    ypm, classes = _labels_pm1(y, design.shape[0])
    l2 = check_scalar(l2, "l2", low=0.0)
    pen = _penalty(design.shape[1], l1, bounds)
    return GLMProblem(design, ypm[:, None], "logistic", l2, pen, float_dtype(adt),
                      classes=classes)


def softmax_regression(A, y, l1=0.0, *, l2=0.0, bounds=None):
    r"""Multi-class logistic regression with ``W`` of shape (p, k).

    ``f(W) = \sum_i [\log\sum_c e^{a_i^T w_c} - a_i^T w_{y_i}] + \frac{l_2}{2}\|W\|^2``
    plus ``l_1\|W\|_1``; the variables are ``W.ravel()``.  The bound
    ``\nabla^2 f \preceq \frac12 (I_k \otimes A^T A)`` (Böhning) gives the
    Lipschitz constants and matrix updates.
    """
    nx = device_backend(A=A, y=y)
    if nx is not None:
        from sparseopt.solvers.bcd._bcd_xp import xp_glm_problem

        return xp_glm_problem(nx, A, y, "softmax", l1, l2, bounds)
    design, adt = as_design(A)
    y = np.asarray(y)
    n = design.shape[0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    classes, yi = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("softmax needs at least two classes in y")
    Y = np.zeros((n, len(classes)))
    Y[np.arange(n), yi] = 1.0
    l2 = check_scalar(l2, "l2", low=0.0)
    pen = _penalty(design.shape[1] * len(classes), l1, bounds)
    return GLMProblem(design, Y, "softmax", l2, pen, float_dtype(adt),
                      classes=classes)


def quadratic(Q, c, l1=0.0, *, bounds=None, const=0.0):
    r"""Sparse quadratic ``\frac12 x^T Q x - c^T x + l_1\|x\|_1`` (``Q`` symmetric PSD).

    Parameters
    ----------
    Q : sparse matrix, shape (p, p)
        Symmetric with a positive diagonal.
    c : array_like, shape (p,)
    """
    Qc = canonical_csr(Q, "Q")
    p = Qc.shape[0]
    if Qc.shape[1] != p:
        raise ValueError(f"Q must be square, got shape {Qc.shape}")
    diff = Qc - Qc.T
    if diff.nnz and np.abs(diff.data).max() > 1e-12 * max(1.0, np.abs(Qc.data).max()):
        raise ValueError("Q must be symmetric")
    if p and Qc.diagonal().min() <= 0:
        raise ValueError("Q must have a positive diagonal")
    c = check_array(c, "c", ndim=1)
    if c.shape[0] != p:
        raise ValueError(f"c has {c.shape[0]} entries, Q has {p} rows")
    dt = Q.to_scipy().dtype if hasattr(Q, "to_scipy") else Q.dtype
    return QuadraticProblem(Qc, np.array(c, dtype=np.float64), float(const),
                            _penalty(p, l1, bounds), float_dtype(dt, c.dtype))


def label_propagation(W, labels, *, reg=1e-3, l1=0.0, bounds=None):
    r"""Graph label propagation as a sparse quadratic (Bengio, Delalleau & Le Roux, 2006).

    With targets ``t_i`` on the labelled nodes (``+1/-1`` for two classes,
    one-hot columns for more), the scores ``y`` of the unlabelled nodes
    minimise

    .. math::

        \frac14 \sum_{i,j} w_{ij} (y_i - y_j)^2
        + \frac{\text{reg}}{2} \sum_{i\ \text{unlabelled}} y_i^2,

    a quadratic with Hessian ``Q = D_{uu} - W_{uu} + \text{reg}\, I`` (``D`` the
    degrees) and linear term ``c = W_{ul} t_l``.  With ``k > 2`` classes the
    variables are the ``k`` score columns stacked (``Q`` block diagonal).

    Parameters
    ----------
    W : sparse matrix, shape (n, n)
        Symmetric non-negative edge weights (the diagonal is ignored).
    labels : array_like of int, shape (n,)
        Class of each node, ``-1`` for unlabelled ones.
    reg : float
        Ridge weight (``> 0`` keeps the problem strictly convex when a component
        has no labelled node).

    Returns
    -------
    QuadraticProblem
        With extra attributes ``unlabeled`` (node indices of the variables),
        ``classes`` and the method ``predict(x)`` (labels of all nodes).
    """
    Wc = canonical_csr(W, "W")
    n = Wc.shape[0]
    if Wc.shape[1] != n:
        raise ValueError(f"W must be square, got shape {Wc.shape}")
    if Wc.nnz and Wc.data.min() < 0:
        raise ValueError("W must have non-negative weights")
    diff = Wc - Wc.T
    if diff.nnz and np.abs(diff.data).max() > 1e-12 * max(1.0, np.abs(Wc.data).max()):
        raise ValueError("W must be symmetric")
    reg = check_scalar(reg, "reg", low=0.0)
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an int array of shape ({n},) with -1 for "
                         "unlabelled nodes")
    Wc = Wc - sp.diags_array(Wc.diagonal())
    Wc = sp.csr_array(Wc)
    Wc.eliminate_zeros()
    lab = labels >= 0
    classes = np.unique(labels[lab])
    if len(classes) < 2:
        raise ValueError("labels must contain at least two classes")
    unl = np.flatnonzero(~lab)
    lidx = np.flatnonzero(lab)
    if len(classes) == 2:
        T = np.where(labels[lidx] == classes[1], 1.0, -1.0)[:, None]
    else:
        T = (labels[lidx][:, None] == classes[None, :]).astype(np.float64)
    k = T.shape[1]
    deg = np.asarray(Wc.sum(axis=1)).ravel()
    Wuu = Wc[unl][:, unl]
    Wul = Wc[unl][:, lidx]
    Wll = Wc[lidx][:, lidx]
    Quu = sp.diags_array(deg[unl] + reg) - Wuu
    if reg == 0 and len(unl) and (deg[unl] <= 0).any():
        raise ValueError("an unlabelled node has no edges: use reg > 0")
    C = Wul @ T
    # constant: edges among labelled nodes, and labelled-to-unlabelled t_l^2 terms
    const = 0.0
    for c_ in range(k):
        t = T[:, c_]
        const += 0.25 * float(t @ (np.asarray(Wll.sum(axis=1)).ravel() * t)
                              - t @ (Wll @ t)) * 2
        const += 0.5 * float((np.asarray(Wul.sum(axis=0)).ravel() * t) @ t)
    Q = sp.kron(sp.eye(k), Quu, format="csr") if k > 1 else sp.csr_array(Quu)
    prob = quadratic(Q, C.T.reshape(-1), l1, bounds=bounds, const=const)
    prob.unlabeled = unl
    prob.classes = classes
    prob.n_classes_cols = k
    prob._labels = labels.copy()

    def predict(x):
        Y = np.asarray(x, dtype=np.float64).reshape(k, len(unl)).T
        out = prob._labels.copy()
        if k == 1:
            out[unl] = np.where(Y[:, 0] > 0, classes[1], classes[0])
        else:
            out[unl] = classes[np.argmax(Y, axis=1)]
        return out

    prob.predict = predict
    return prob


def custom(fun, grad, n_vars, lipschitz, *, hessian=None, l1=0.0, bounds=None):
    """A problem from plain functions ``fun(x)`` and ``grad(x)`` of the full iterate.

    Each block update recomputes the full gradient, so this is meant for
    prototyping; the built-in problems update their gradients incrementally.

    Parameters
    ----------
    fun, grad : callable
        ``f(x)`` and ``\\nabla f(x)`` for ``x`` of shape (n_vars,).
    n_vars : int
    lipschitz : float or array of shape (n_vars,)
        Coordinate-wise Lipschitz constants of the gradient.
    hessian : callable, optional
        ``hessian(x)`` returning the dense Hessian (enables Newton updates).
    """
    n_vars = int(n_vars)
    L = np.broadcast_to(np.asarray(lipschitz, dtype=np.float64), (n_vars,)).copy()
    if not np.isfinite(L).all() or (L <= 0).any():
        raise ValueError("lipschitz must be finite and > 0")
    if not callable(fun) or not callable(grad):
        raise TypeError("fun and grad must be callables")
    return FunctionProblem(fun, grad, L, hessian, _penalty(n_vars, l1, bounds), n_vars)
