r"""Block coordinate descent on device arrays (CuPy), backend-generic.

The GLM problems of :mod:`sparseopt.solvers.bcd._problems` (least squares,
binary and multinomial logistic regression, with L2, L1 and bounds) on the
array namespace ``nx.xp`` of a backend plus its sparse kernels, and the
driver :func:`minimize_xp` that :func:`sparseopt.bcd.minimize` calls for them.

What runs on the device, and how
--------------------------------
* **Fixed partitions** (``"order"``, ``"random"``, ``"sort"``, ``"avg"``, or a
  list of blocks).  The variables are stored in *slot order* (the blocks
  concatenated), so a block is a contiguous slice: its columns are a slice of
  a column-permuted copy of a dense design, or a row range of the design's
  transpose stored as CSR for a sparse one (products by ``nx.spmm`` /
  ``nx.spmm_t`` on the block's rows only), and its update is a slice
  assignment.  The block Hessian bounds are built once as a padded stack
  ``(n_blocks, t, t)`` (batched ``matmul``), with their largest eigenvalues
  (``L_b``) and pseudo-inverses (``xp.linalg.eigh``).
* **Rules**: ``"cyclic"``, ``"random"`` and ``"lipschitz"`` choose the block on
  the host from its own random generator (the same stream as the CPU solver,
  so both visit the same blocks): no synchronisation.  The greedy rules
  ``"gs"``, ``"gsl"``, ``"gsd"``, ``"gsq"`` need the full gradient (one
  ``Aᵀ S`` product) and an ``argmax`` over the block scores: one
  synchronisation per iteration, to learn the block.  ``"jacobi"`` updates
  **all** blocks at once from the same gradient (below).
* **Updates**: ``"lipschitz"`` (proximal step with ``L_b``; L1 and bounds
  allowed) and ``"matrix"`` (``d = -H_b^{+} \nabla_b f``, smooth problems).
* The objective of every iteration is written to a device buffer; the
  stopping criterion (the relative prox-gradient norm, as on the CPU) is
  evaluated every ``check_every`` iterations and fetched with the buffered
  objectives in **one** transfer.  ``check_every`` defaults to one sweep over
  the blocks (``n_blocks`` iterations) for the sequential rules and to 1 for
  ``"jacobi"``.

**Jacobi-parallel BCD** (``rule="jacobi"``, also on NumPy input): every block
takes its update from the same gradient, damped by the constant
``c = λ_max(D^{-1/2} H D^{-1/2})`` of the block-diagonal metric ``D``
(``L_b I`` per block for ``"lipschitz"``, ``H_b`` for ``"matrix"``) with
respect to the global Hessian bound ``H`` (``c ≤ n_blocks`` always; estimated
once by a power iteration and capped there).  Since ``H ⪯ c D``, the step
``x⁺ = prox_{g/(c D)}(x − (c D)^{-1}∇f)`` decreases ``F`` monotonically: a
block-preconditioned proximal gradient method, one full gradient per
iteration, all of it data-parallel.

CPU only (``ValueError`` on the device): variable and forest partitions, the
heap-based greedy single-coordinate path (``fast=True``), Newton and
message-passing updates, ``update="matrix"`` with an L1 term or bounds (a
small box/L1 QP per block solved by sequential coordinate descent), and the
active-set option.  The sequential greedy single-coordinate rules do run on
the device (fixed blocks of one coordinate) but pay a full gradient and a
synchronisation per coordinate step: on a GPU prefer ``"jacobi"`` or larger
blocks.

References
----------
J. Nutini, I. Laradji, M. Schmidt. Let's Make Block Coordinate Descent
Converge Faster. JMLR 23(131), 2022.
"""

import time

import numpy as np

from sparseopt._monitor import IterationMonitor, warn_not_converged
from sparseopt._validation import check_positive_int, check_scalar
from sparseopt.solvers._xp_linalg import (
    as_float_array,
    csr_matmul,
    csr_rmatmul,
    fetch,
    fetch_array,
    host_float_dtype,
    is_sparse_input,
    row_ids,
    sparse_parts,
)

__all__ = ["XpGLMProblem", "minimize_xp", "xp_glm_problem"]

_SCALES = {"squared": 1.0, "logistic": 0.25, "softmax": 0.5}


# ---------------------------------------------------------------------------
# problem
# ---------------------------------------------------------------------------
class XpGLMProblem:
    r"""``f(W) = \sum_i \ell(a_i^T W, y_i) + \frac{l_2}{2}\|W\|^2`` on device arrays.

    The device twin of :class:`~sparseopt.solvers.bcd.GLMProblem` (same
    variables ``x = W.ravel()``, same losses and bounds); build it with
    :func:`sparseopt.bcd.least_squares`, :func:`~sparseopt.bcd.logistic` or
    :func:`~sparseopt.bcd.softmax` on CuPy arrays.  Only
    :func:`sparseopt.bcd.minimize` consumes it.
    """

    on_device = True

    def __init__(self, nx, A, Y, loss, l2, penalty, dtype, classes=None):
        xp = nx.xp
        self.nx = nx
        self.sparse = isinstance(A, tuple)
        self.A = A
        self.Y = Y
        self.loss = loss
        self.l2 = float(l2)
        self.penalty = penalty
        self.dtype = dtype
        self.classes = classes
        self.n_samples, self.n_features = A[3] if self.sparse else A.shape
        self.n_outputs = Y.shape[1]
        self.n_vars = self.n_features * self.n_outputs
        self.scale = _SCALES[loss]
        self.is_quadratic = loss == "squared"
        if self.sparse:
            indptr, indices, data, shape = A
            col_sq = csr_rmatmul(nx, (indptr, indices, data * data, shape),
                                 xp.ones(self.n_samples, dtype=xp.float64))
        else:
            col_sq = xp.sum(A * A, axis=0)
        L = np.asarray(fetch_array(nx, self.scale * col_sq + self.l2), dtype=np.float64)
        self._L = np.repeat(L, self.n_outputs)

    def __repr__(self):
        kind = "sparse" if self.sparse else "dense"
        return (f"<XpGLMProblem loss={self.loss!r} {kind} {self.n_samples}x"
                f"{self.n_features} outputs={self.n_outputs} on {self.nx.name}>")

    def lipschitz(self):
        """Coordinate Lipschitz constants (a host array: control data)."""
        return self._L

    # -- device pieces -------------------------------------------------------
    def matmat(self, W):
        """``A W`` (``W`` of shape (p, k))."""
        return csr_matmul(self.nx, self.A, W) if self.sparse else self.A @ W

    def rmatmat(self, S):
        """``Aᵀ S`` (``S`` of shape (n, k))."""
        return csr_rmatmul(self.nx, self.A, S) if self.sparse else self.A.T @ S

    def loss_value(self, M):
        xp = self.nx.xp
        Y = self.Y
        if self.loss == "squared":
            R = M - Y
            return 0.5 * xp.sum(R * R)
        if self.loss == "logistic":
            Z = Y * M
            return xp.sum(xp.logaddexp(xp.zeros_like(Z), -Z))
        top = xp.max(M, axis=1)
        lse = top + xp.log(xp.sum(xp.exp(M - top[:, None]), axis=1))
        return xp.sum(lse) - xp.sum(M * Y)

    def deriv(self, M):
        xp = self.nx.xp
        Y = self.Y
        if self.loss == "squared":
            return M - Y
        if self.loss == "logistic":
            Z = Y * M   # expit(-Z) = exp(-logaddexp(0, Z)), overflow-free
            return -Y * xp.exp(-xp.logaddexp(xp.zeros_like(Z), Z))
        E = xp.exp(M - xp.max(M, axis=1)[:, None])
        return E / xp.sum(E, axis=1)[:, None] - Y

    def coef(self, x):
        """The coefficients ``W`` (shape (p,) for one output, else (p, k))."""
        W = self.nx.xp.reshape(x, (self.n_features, self.n_outputs))
        return W[:, 0] if self.n_outputs == 1 else W


def _device_bounds(nx, bounds):
    """Host copies of device bounds (Penalty validates on the host: control data)."""
    if bounds is None:
        return None
    try:
        lo, hi = bounds
    except (TypeError, ValueError) as exc:
        raise ValueError("bounds must be a pair (lower, upper)") from exc
    conv = [fetch_array(nx, b) if hasattr(b, "shape") and not isinstance(b, np.ndarray)
            else b for b in (lo, hi)]
    return tuple(conv)


def xp_glm_problem(nx, A, y, loss, l1, l2, bounds):
    """Build an :class:`XpGLMProblem` from device ``A`` and targets ``y``."""
    from sparseopt.solvers.bcd._problems import _penalty

    xp = nx.xp
    if is_sparse_input(A):
        indptr, indices, data, shape = sparse_parts(nx, A, "A")
        adt = data.dtype
        A = (indptr, indices, xp.astype(data, xp.float64), shape)
        n, p = shape
    else:
        A = as_float_array(nx, A, "A", 2)
        adt = A.dtype
        A = xp.astype(A, xp.float64)
        n, p = A.shape
    l2 = check_scalar(l2, "l2", low=0.0)
    classes = None
    if loss == "squared":
        b = as_float_array(nx, y, "b", 1)
        if b.shape[0] != n:
            raise ValueError(f"b has {b.shape[0]} entries but A has {n} rows")
        Y = xp.astype(b, xp.float64)[:, None]
        dtype = host_float_dtype(xp, adt, b.dtype)
        k = 1
    else:
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
        if xp.isdtype(y.dtype, "real floating"):
            bad = fetch(nx, xp.any(~xp.isfinite(y)))[0]
            if bad:
                raise ValueError("y contains NaN or infinity")
        cls_dev = xp.sort(xp.unique_values(y))
        classes = fetch_array(nx, cls_dev)
        dtype = host_float_dtype(xp, adt)
        if loss == "logistic":
            if len(classes) != 2:
                more = "; use softmax for more" if len(classes) > 2 else ""
                raise ValueError(f"logistic needs two classes in y, got {len(classes)}"
                                 + more)
            Y = (2.0 * xp.astype(y == cls_dev[1], xp.float64) - 1.0)[:, None]
            k = 1
        else:
            if len(classes) < 2:
                raise ValueError("softmax needs at least two classes in y")
            Y = xp.astype(y[:, None] == cls_dev[None, :], xp.float64)
            k = len(classes)
    pen = _penalty(p * k, l1, _device_bounds(nx, bounds))
    return XpGLMProblem(nx, A, Y, loss, l2, pen, dtype, classes=classes)


def from_cpu_problem(problem):
    """An :class:`XpGLMProblem` on the NumPy namespace sharing a CPU GLM problem's data."""
    from sparseopt._numpy_backend import NumpyBackend
    from sparseopt.solvers.bcd._problems import GLMProblem

    if not isinstance(problem, GLMProblem):
        raise ValueError("rule='jacobi' supports the least_squares, logistic and softmax "
                         f"problems, got {type(problem).__name__}")
    nx = NumpyBackend()
    d = problem.design
    if d.sparse:
        csr = d.csr
        A = (csr.indptr, csr.indices, csr.data, csr.shape)
    else:
        A = d.A
    return XpGLMProblem(nx, A, problem.Y, problem.loss, problem.l2, problem.penalty,
                        problem.dtype, classes=problem.classes)


# ---------------------------------------------------------------------------
# penalty, elementwise on the device
# ---------------------------------------------------------------------------
class _XpPenalty:
    """``g = l1 |x|_1 + indicator[lo, hi]`` in slot order, elementwise ``xp`` code."""

    def __init__(self, xp, pen, perm):
        self.xp = xp
        self.l1 = float(pen.l1)
        self.smooth = pen.smooth
        self.has_bounds = pen.has_bounds
        self.lo = xp.asarray(pen.lower[perm])
        self.hi = xp.asarray(pen.upper[perm])

    def clip(self, v, lo, hi):
        xp = self.xp
        return xp.minimum(xp.maximum(v, lo), hi) if self.has_bounds else v

    def prox(self, v, t, lo, hi):
        xp = self.xp
        if self.l1:
            v = xp.sign(v) * xp.maximum(xp.abs(v) - t * self.l1, 0.0 * v)
        return self.clip(v, lo, hi)

    def value(self, x):
        xp = self.xp
        return self.l1 * xp.sum(xp.abs(x)) if self.l1 else xp.zeros((), dtype=x.dtype)

    def grad_map(self, x, g, L):
        return L * (x - self.prox(x - g / L, 1.0 / L, self.lo, self.hi))

    def minnorm(self, x, g):
        """Minimum-norm subgradient (``minnorm_subgrad1``, vectorised)."""
        xp = self.xp
        l1 = self.l1
        zero = 0.0 * g
        a = xp.where(x > 0, g + l1, g - l1)
        b = xp.where(x < 0, g - l1, g + l1)
        res = xp.where(a > 0, a, xp.where(b < 0, b, zero))
        res = xp.where(x >= self.hi, xp.where(a > 0, a, zero), res)
        res = xp.where(x <= self.lo, xp.where(b < 0, b, zero), res)
        return xp.where(self.lo == self.hi, zero, res)

    def gsq(self, x, g, L):
        """Guaranteed decrease of a proximal coordinate step (``gsq_progress1``)."""
        xp = self.xp
        xn = self.prox(x - g / L, 1.0 / L, self.lo, self.hi)
        d = xn - x
        val = -(g * d + 0.5 * L * d * d + self.l1 * (xp.abs(xn) - xp.abs(x)))
        return xp.maximum(val, 0.0 * val)

    def free(self, x):
        xp = self.xp
        out = xp.ones(x.shape, dtype=xp.bool)
        if self.has_bounds:
            out = out & (x > self.lo) & (x < self.hi)
        if self.l1:
            out = out & (x != 0.0)
        return out


# ---------------------------------------------------------------------------
# fixed blocks in slot order
# ---------------------------------------------------------------------------
class _Blocks:
    """Slot-order layout of a fixed partition and the block constants."""

    def __init__(self, nx, problem, part):
        xp = self.xp = nx.xp
        self.nx = nx
        self.problem = problem
        k = problem.n_outputs
        self.k = k
        P = problem.n_vars
        self.P = P
        perm = np.concatenate(part.blocks).astype(np.int64)
        self.perm = perm
        sizes = np.asarray(part.sizes, dtype=np.int64)
        self.offs = np.concatenate([[0], np.cumsum(sizes)])
        self.nb = part.n_blocks
        inv = np.empty(P, np.int64)
        inv[perm] = np.arange(P)
        self.perm_d = xp.asarray(perm)
        self.inv_d = xp.asarray(inv)
        feat = perm // k
        cls = perm % k
        self.C = (xp.asarray((cls[:, None] == np.arange(k)[None, :]).astype(np.float64))
                  if k > 1 else None)
        t = int(sizes.max())
        self.t = t
        pad = np.full((self.nb, t), P, np.int64)
        for b in range(self.nb):
            pad[b, :sizes[b]] = np.arange(self.offs[b], self.offs[b + 1])
        self.pad_d = xp.asarray(pad)
        self.real_pos = xp.asarray(np.flatnonzero(pad.reshape(-1) < P))
        self.uniform_small = t <= 64
        n = problem.n_samples
        if problem.sparse:
            self._build_sparse(feat, n)
            Zs = []
            for b in range(self.nb):
                m = int(sizes[b])
                Zb = csr_rmatmul(nx, self.sub(b), xp.eye(m, dtype=xp.float64))
                if m < t:
                    Zb = xp.concat([Zb, xp.zeros((n, t - m), dtype=xp.float64)], axis=1)
                Zs.append(Zb)
            Z = xp.stack(Zs)                                    # (nb, n, t)
        else:
            self.Ap = xp.take(problem.A, xp.asarray(feat), axis=1)  # (n, P)
            ext = xp.concat([self.Ap, xp.zeros((n, 1), dtype=xp.float64)], axis=1)
            Z = xp.take(ext, xp.reshape(self.pad_d, (-1,)), axis=1)
            Z = xp.permute_dims(xp.reshape(Z, (n, self.nb, t)), (1, 0, 2))
        H = xp.matmul(xp.matrix_transpose(Z), Z)
        real = xp.astype(self.pad_d < P, xp.float64)           # (nb, t)
        if k > 1:
            Cx = xp.concat([self.C, xp.zeros((1, k), dtype=xp.float64)], axis=0)
            Cp = xp.reshape(xp.take(Cx, xp.reshape(self.pad_d, (-1,)), axis=0),
                            (self.nb, t, k))
            H = H * xp.matmul(Cp, xp.matrix_transpose(Cp))
        eye = xp.eye(t, dtype=xp.float64)[None, :, :] * real[:, :, None]
        self.H = problem.scale * H + problem.l2 * eye
        evals, evecs = xp.linalg.eigh(self.H)
        self.evals, self.evecs = evals, evecs
        self.Lb = np.asarray(fetch_array(nx, evals[:, -1]), dtype=np.float64)
        top = xp.max(xp.abs(evals), axis=1)[:, None]
        keep = evals > 1e-15 * top
        inv_ev = xp.where(keep, 1.0 / xp.where(keep, evals, 1.0 + 0.0 * evals), 0.0 * evals)
        self.Hinv = xp.matmul(evecs * inv_ev[:, None, :], xp.matrix_transpose(evecs))
        self._gsd = None
        self.Lslot = None

    # -- layout helpers -----------------------------------------------------------
    def _build_sparse(self, feat, n):
        """``Aᵀ`` as a CSR whose rows are the slots (row ``s`` = column ``feat[s]`` of A)."""
        xp = self.xp
        indptr, indices, data, (n_rows, p) = self.problem.A
        nnz = indices.shape[0]
        rows = row_ids(xp, indptr, n_rows)
        cols = xp.astype(indices, xp.int64)
        order = xp.argsort(cols * n_rows + rows, stable=True)   # entries by (col, row)
        t_rows = xp.take(rows, order)
        t_data = xp.take(data, order)
        t_indptr = xp.searchsorted(xp.take(cols, order),
                                   xp.arange(p + 1, dtype=xp.int64), side="left")
        t_indptr = xp.astype(t_indptr, xp.int64)
        feat_d = xp.asarray(feat)
        starts = xp.take(t_indptr, feat_d)
        lens = xp.take(t_indptr, feat_d + 1) - starts
        s_indptr = xp.concat([xp.zeros(1, dtype=xp.int64), xp.cumulative_sum(lens)])
        total = int(fetch(self.nx, s_indptr[-1])[0]) if nnz else 0
        q = xp.arange(total, dtype=xp.int64)
        slot = xp.repeat(xp.arange(self.P, dtype=xp.int64), lens)
        src = xp.take(starts, slot) + (q - xp.take(s_indptr, slot))
        self.s_indptr = s_indptr
        self.s_indptr_h = np.asarray(fetch_array(self.nx, s_indptr), dtype=np.int64)
        self.s_indices = xp.take(t_rows, src)
        self.s_data = xp.take(t_data, src)

    def sub(self, b):
        """The slots of block ``b`` as a CSR ``(t_b, n)`` (zero-copy slices)."""
        o0, o1 = int(self.offs[b]), int(self.offs[b + 1])
        e0, e1 = int(self.s_indptr_h[o0]), int(self.s_indptr_h[o1])
        return (self.s_indptr[o0:o1 + 1] - e0, self.s_indices[e0:e1], self.s_data[e0:e1],
                (o1 - o0, self.problem.n_samples))

    def to_pad(self, v):
        xp = self.xp
        ext = xp.concat([v, xp.zeros(1, dtype=v.dtype)])
        return xp.reshape(xp.take(ext, xp.reshape(self.pad_d, (-1,))), (self.nb, self.t))

    def from_pad(self, V):
        return self.xp.take(self.xp.reshape(V, (-1,)), self.real_pos)

    def block_sum(self, v):
        return self.xp.sum(self.to_pad(v), axis=1)

    def slots_of(self, W):
        """Natural ``(p, k)`` array -> slot-order vector."""
        return self.xp.take(self.xp.reshape(W, (-1,)), self.perm_d)

    def natural(self, v):
        """Slot-order vector -> natural ``(p, k)`` array."""
        pr = self.problem
        return self.xp.reshape(self.xp.take(v, self.inv_d), (pr.n_features, pr.n_outputs))

    def lipschitz_slots(self):
        if self.Lslot is None:
            sizes = np.diff(self.offs)
            self.Lslot = self.xp.asarray(np.repeat(self.Lb, sizes))
        return self.Lslot

    def gsd_diag(self):
        if self._gsd is None:
            self._gsd = self.from_pad(self.xp.sum(self.xp.abs(self.H), axis=2))
        return self._gsd

    # -- block products -------------------------------------------------------------
    def block_grad(self, b, S, xb):
        xp = self.xp
        o0, o1 = int(self.offs[b]), int(self.offs[b + 1])
        if self.problem.sparse:
            Gb = csr_matmul(self.nx, self.sub(b), S)
        else:
            Gb = self.Ap[:, o0:o1].T @ S
        g = Gb[:, 0] if self.k == 1 else xp.sum(Gb * self.C[o0:o1, :], axis=1)
        return g + self.problem.l2 * xb

    def block_dM(self, b, d):
        o0, o1 = int(self.offs[b]), int(self.offs[b + 1])
        D = d[:, None] if self.k == 1 else d[:, None] * self.C[o0:o1, :]
        if self.problem.sparse:
            return csr_rmatmul(self.nx, self.sub(b), D)
        return self.Ap[:, o0:o1] @ D


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------
class _State:
    """Iterate (slot order) and the cached margins, derivatives and values."""

    def __init__(self, problem, blocks, pen, x):
        self.problem, self.blocks, self.pen = problem, blocks, pen
        self.x = x
        self.M = problem.matmat(blocks.natural(x))
        self.refresh()
        self.gval = pen.value(x)

    def refresh(self):
        pr = self.problem
        self.S = pr.deriv(self.M)
        self.fval = pr.loss_value(self.M) + 0.5 * pr.l2 * (self.x @ self.x)

    def full_grad(self):
        pr = self.problem
        G = pr.rmatmat(self.S)
        return self.blocks.slots_of(G) + pr.l2 * self.x


def _jacobi_constant(nx, problem, blocks, apply_dm12, rng, n_power=50):
    """``min(1.05 λ, n_blocks)``, ``λ`` a power-iteration estimate of ``λ_max(D^{-½}HD^{-½})``."""
    xp = nx.xp
    v = xp.asarray(rng.standard_normal(blocks.P))
    v = v / xp.sqrt(v @ v)
    lam = xp.zeros((), dtype=xp.float64)
    for _ in range(n_power):
        u = apply_dm12(v)
        W = blocks.natural(u)
        HW = problem.scale * problem.rmatmat(problem.matmat(W)) + problem.l2 * W
        w = apply_dm12(blocks.slots_of(HW))
        lam = v @ w
        nrm = xp.sqrt(w @ w)
        v = w / xp.where(nrm > 0, nrm, 1.0 + 0.0 * nrm)
    lam = fetch(nx, lam)[0]
    return min(1.05 * lam, float(blocks.nb)) if lam > 0 else float(blocks.nb)


def minimize_xp(problem, *, partition=None, rule="gsl", update="lipschitz",
                block_size=None, x0=None, max_iter=10000, tol=1e-6, active_set=False,
                fast="auto", check_every=None, random_state=None, verbose=0,
                callback=None):
    """:func:`sparseopt.bcd.minimize` for :class:`XpGLMProblem` (see the module docstring)."""
    from sparseopt.solvers.bcd._partitions import make_partition
    from sparseopt.solvers.bcd._rules import RULES
    from sparseopt.solvers.bcd._solver import BCDResult

    t_start = time.perf_counter()
    nx = problem.nx
    xp = nx.xp
    rules = (*RULES, "jacobi")
    if not isinstance(rule, str) or rule not in rules:
        raise ValueError(f"unknown rule {rule!r}; choose one of {rules}")
    if update not in ("lipschitz", "matrix"):
        raise ValueError(f"update={update!r} is not available on the device path (it runs "
                         "on the CPU only); use 'lipschitz' or 'matrix'")
    max_iter = check_positive_int(max_iter, "max_iter", allow_zero=True)
    tol = check_scalar(tol, "tol", low=0.0)
    if block_size is not None:
        block_size = check_positive_int(block_size, "block_size")
    if check_every is not None:
        check_every = check_positive_int(check_every, "check_every")
    if fast is True:
        raise ValueError("fast=True: the heap-based greedy coordinate path runs on the CPU "
                         "only")
    if fast not in ("auto", False):
        raise ValueError(f"fast must be 'auto', True or False, got {fast!r}")
    if active_set:
        raise ValueError("active_set=True needs variable blocks, which run on the CPU only")
    rng = random_state if isinstance(random_state, np.random.Generator) else \
        np.random.default_rng(random_state)
    hpen = problem.penalty
    if update == "matrix" and not hpen.smooth:
        raise ValueError("update='matrix' with an L1 term or bounds solves a box/L1 QP per "
                         "block, which runs on the CPU only; use update='lipschitz' on the "
                         "device")
    part = make_partition(partition, problem, block_size, rng)
    if part.variable:
        raise ValueError(f"partition={part.kind!r} (variable blocks) runs on the CPU only; "
                         "use a fixed partition ('order', 'random', 'sort', 'avg' or a list "
                         "of blocks) on the device")
    P = problem.n_vars
    blocks = _Blocks(nx, problem, part)
    pen = _XpPenalty(xp, hpen, blocks.perm)
    if x0 is None:
        x = pen.clip(xp.zeros(P, dtype=xp.float64), pen.lo, pen.hi)
    else:
        x0 = as_float_array(nx, x0, "x0", 1)
        if x0.shape[0] != P:
            raise ValueError(f"x0 must have shape ({P},), got {tuple(x0.shape)}")
        x = pen.clip(xp.take(xp.astype(x0, xp.float64), blocks.perm_d), pen.lo, pen.hi)
    Lh = problem.lipschitz()
    if Lh.shape != (P,) or not np.isfinite(Lh).all() or (Lh <= 0).any():
        raise ValueError("problem.lipschitz() must return finite positive constants "
                         "(a column of zeros in the design gives L_i = 0: drop it or "
                         "add l2 > 0)")
    L = xp.asarray(Lh[blocks.perm])
    state = _State(problem, blocks, pen, x)
    g = state.full_grad()
    crit0_d = xp.max(xp.abs(pen.grad_map(state.x, g, L))) if P else xp.zeros(())
    if x0 is None:
        scale_d = crit0_d
    else:
        zero = pen.clip(xp.zeros(P, dtype=xp.float64), pen.lo, pen.hi)
        z_state = _State(problem, blocks, pen, zero)
        scale_d = xp.max(xp.abs(pen.grad_map(zero, z_state.full_grad(), L)))
    F0, crit0, scale = fetch(nx, state.fval + state.gval, crit0_d, scale_d)
    if not np.isfinite(F0):
        raise ValueError("the objective is not finite at the starting point")
    scale = scale if scale > 0 else 1.0
    crit = crit0 / scale
    jacobi = rule == "jacobi"
    if check_every is None:
        check_every = 1 if jacobi else max(1, blocks.nb)
    objective = [F0]
    times = [0.0]
    n_updated = [0]
    crit_hist = [crit]
    free_prev = pen.free(state.x) if not pen.smooth else None
    free_since = 0
    converged = crit <= tol
    monitor = IterationMonitor("bcd", verbose=verbose, callback=callback,
                               max_iter=max_iter)
    result = BCDResult(tol=tol, rule=rule, update=update,
                       partition=getattr(part, "kind", "user"))

    def snapshot(it):
        result.x = xp.astype(xp.take(state.x, blocks.inv_d),
                             xp.float32 if problem.dtype == np.float32 else xp.float64)
        result.n_iter = it
        result.stop_crit = crit
        result.converged = converged
        result.objective = np.asarray(objective)
        result.time = np.asarray(times)
        result.n_updated = np.asarray(n_updated)
        return result

    # per-rule constants
    if rule == "lipschitz":
        probs = blocks.Lb / blocks.Lb.sum()
    if jacobi:
        if update == "lipschitz":
            Ls = blocks.lipschitz_slots()

            def apply_dm12(v):
                return v / xp.sqrt(Ls)
        else:
            ev = blocks.evals
            keep = ev > 1e-15 * xp.max(xp.abs(ev), axis=1)[:, None]
            r = xp.where(keep, 1.0 / xp.sqrt(xp.where(keep, ev, 1.0 + 0.0 * ev)), 0.0 * ev)
            Dm12 = xp.matmul(blocks.evecs * r[:, None, :],
                             xp.matrix_transpose(blocks.evecs))

            def apply_dm12(v):
                return blocks.from_pad(xp.matmul(Dm12, blocks.to_pad(v)[:, :, None])[:, :, 0])
        c_jac = _jacobi_constant(nx, problem, blocks, apply_dm12, rng)
    gsd_d = blocks.gsd_diag() if rule == "gsd" else None
    Lb_slot = blocks.lipschitz_slots() if rule in ("gsl", "gsq") else None
    Lb_dev = xp.asarray(blocks.Lb) if rule == "gsl" else None

    def greedy_block(g):
        x_ = state.x
        if rule == "gsq":
            if pen.smooth and blocks.uniform_small:
                gp = blocks.to_pad(g)
                score = xp.sum(gp * xp.matmul(blocks.Hinv, gp[:, :, None])[:, :, 0], axis=1)
            else:
                score = blocks.block_sum(pen.gsq(x_, g, Lb_slot))
        else:
            s = pen.minnorm(x_, g)
            s2 = s * s
            if rule == "gs":
                score = blocks.block_sum(s2)
            elif rule == "gsl":
                score = blocks.block_sum(s2) / Lb_dev
            else:
                score = blocks.block_sum(s2 / gsd_d)
        return xp.argmax(score)

    def block_step(b, gb, xb):
        o0, o1 = int(blocks.offs[b]), int(blocks.offs[b + 1])
        if update == "lipschitz":
            Lb = float(blocks.Lb[b])
            if pen.smooth:
                return -gb / Lb
            return pen.prox(xb - gb / Lb, 1.0 / Lb, pen.lo[o0:o1], pen.hi[o0:o1]) - xb
        m = o1 - o0
        return -(blocks.Hinv[b, :m, :m] @ gb)

    stopped = False
    it = 0
    obj_buf = []
    cnt_buf = []
    t_loop = time.perf_counter()
    if not converged:
        for it in range(1, max_iter + 1):
            if jacobi:
                g = state.full_grad()
                if update == "lipschitz":
                    cL = c_jac * blocks.lipschitz_slots()
                    xn = pen.prox(state.x - g / cL, 1.0 / cL, pen.lo, pen.hi)
                    d = xn - state.x
                else:
                    gp = blocks.to_pad(g)
                    d = -blocks.from_pad(xp.matmul(blocks.Hinv, gp[:, :, None])[:, :, 0])
                    d = d / c_jac
                state.x = state.x + d
                state.M = state.M + problem.matmat(blocks.natural(d))
                state.refresh()
                state.gval = pen.value(state.x)
            else:
                if rule == "cyclic":
                    b = (it - 1) % blocks.nb
                elif rule == "random":
                    b = int(rng.integers(blocks.nb))
                elif rule == "lipschitz":
                    b = int(rng.choice(blocks.nb, p=probs))
                else:
                    b = int(fetch(nx, greedy_block(state.full_grad()))[0])
                o0, o1 = int(blocks.offs[b]), int(blocks.offs[b + 1])
                xb = state.x[o0:o1]
                gb = blocks.block_grad(b, state.S, xb)
                d = block_step(b, gb, xb)
                old_g = pen.value(xb) if not pen.smooth else None
                state.x[o0:o1] = xb + d
                state.M = state.M + blocks.block_dM(b, d)
                state.refresh()
                if old_g is not None:
                    state.gval = state.gval + (pen.value(state.x[o0:o1]) - old_g)
            obj_buf.append(state.fval + state.gval)
            cnt_buf.append(xp.sum(xp.astype(d != 0, xp.float64)))
            times.append(time.perf_counter() - t_loop)
            if it % check_every == 0 or it == max_iter:
                g = state.full_grad()
                crit_d = xp.max(xp.abs(pen.grad_map(state.x, g, L))) if P else xp.zeros(())
                changed = xp.zeros((), dtype=xp.float64)
                if free_prev is not None:
                    free = pen.free(state.x)
                    changed = xp.astype(xp.any(free != free_prev), xp.float64)
                    free_prev = free
                vals = fetch_array(nx, xp.concat([xp.stack([crit_d, changed]),
                                                  xp.stack(obj_buf), xp.stack(cnt_buf)]))
                crit = float(vals[0]) / scale
                nbuf = len(obj_buf)
                objective.extend(vals[2:2 + nbuf].tolist())
                n_updated.extend((n_updated[-1] + np.cumsum(vals[2 + nbuf:])).astype(
                    np.int64).tolist())
                obj_buf, cnt_buf = [], []
                if vals[1]:
                    free_since = it
                crit_hist.append(crit)
                converged = crit <= tol
                F = objective[-1]
                if monitor.step(it, snapshot(it) if callback else None, objective=F,
                                stop_crit=crit):
                    stopped = True
                    break
                if not np.isfinite(F):
                    raise FloatingPointError(f"the objective became {F} at iteration {it}")
                if converged:
                    break
    monitor.close()
    n_iter = len(objective) - 1
    times = times[:n_iter + 1]
    snapshot(n_iter)
    result.history = {"objective": result.objective, "stop_crit": np.asarray(crit_hist)}
    result.timings = {"total": time.perf_counter() - t_start,
                      "loop": time.perf_counter() - t_loop}
    if free_prev is not None:
        result.active_set_iter = int(free_since)
        result.support_size = int(fetch(nx, xp.sum(xp.astype(free_prev, xp.float64)))[0])
    result.extra = {"fast_path": False, "n_blocks": blocks.nb, "device": nx.name,
                    "check_every": check_every}
    if jacobi:
        result.extra["jacobi_constant"] = c_jac
    if converged:
        result.message = "converged: stopping criterion below tol"
    elif stopped:
        result.message = "stopped by callback"
    else:
        result.message = "max_iter reached"
        warn_not_converged("bcd.minimize", crit, tol, n_iter,
                           what="relative prox-gradient norm")
    return result
