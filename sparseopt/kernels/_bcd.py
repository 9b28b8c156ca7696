"""Numba kernels of block coordinate descent (:mod:`sparseopt.bcd`).

All kernels work in float64 with int64 indices (one compiled signature each;
callers cast before the call).  They fall in four groups:

* one-dimensional proximal helpers for ``g(x) = l1 |x| + indicator[lo <= x <= hi]``;
* greedy coordinate descent with an indexed max-heap over the coordinate scores
  (Nutini et al., 2015/2022): after a coordinate step only the gradients that
  depend on that coordinate change, and only their heap keys are re-keyed, so an
  iteration costs ``O(deg * log p)`` instead of ``O(p)``;
* sparse products restricted to a few columns / rows (the incremental gradient
  updates of the general BCD loop);
* forest blocks: Gaussian elimination on a tree ("message passing"), greedy
  growth of acyclic blocks, forest partitions and greedy colouring;
* a dense box/L1-constrained quadratic program solved by coordinate descent
  (exact proximal matrix/Newton block updates).
"""

import numpy as np
from numba import njit

# --------------------------------------------------------------------------
# scalar helpers


@njit(cache=True, nogil=True)
def prox1(v, t, l1, lo, hi):
    """Prox of ``t * l1 * |.| + indicator[lo, hi]`` at ``v`` (soft-threshold, clip)."""
    if l1 > 0.0:
        a = t * l1
        if v > a:
            v = v - a
        elif v < -a:
            v = v + a
        else:
            v = 0.0
    if v < lo:
        v = lo
    elif v > hi:
        v = hi
    return v


@njit(cache=True, nogil=True)
def minnorm_subgrad1(x, g, l1, lo, hi):
    """Minimum-norm element of ``g + l1 d|x| + N_[lo,hi](x)``."""
    if lo == hi:
        return 0.0
    if x > 0.0:
        a = g + l1
        b = a
    elif x < 0.0:
        a = g - l1
        b = a
    else:
        a = g - l1
        b = g + l1
    if x <= lo:
        # normal cone (-inf, 0]: set (-inf, b]
        return b if b < 0.0 else 0.0
    if x >= hi:
        # normal cone [0, inf): set [a, inf)
        return a if a > 0.0 else 0.0
    if a > 0.0:
        return a
    if b < 0.0:
        return b
    return 0.0


@njit(cache=True, nogil=True)
def gsq_progress1(x, g, L, l1, lo, hi):
    """Decrease guaranteed by a proximal coordinate step with curvature ``L`` (GS-q)."""
    xn = prox1(x - g / L, 1.0 / L, l1, lo, hi)
    d = xn - x
    val = -(g * d + 0.5 * L * d * d + l1 * (abs(xn) - abs(x)))
    if val < 0.0:
        val = 0.0
    return val


@njit(cache=True, nogil=True)
def coord_score(rule, x, g, L, l1, lo, hi):
    """Greedy score of one coordinate: 0 GS, 1 GSL, 2 GSQ (GS-q)."""
    if rule == 2:
        return gsq_progress1(x, g, L, l1, lo, hi)
    s = abs(minnorm_subgrad1(x, g, l1, lo, hi))
    if rule == 1:
        return s / np.sqrt(L)
    return s


@njit(cache=True, nogil=True)
def coord_scores(rule, x, g, L, l1, lo, hi, out):
    """Vector of coordinate scores (see :func:`coord_score`)."""
    for i in range(x.shape[0]):
        out[i] = coord_score(rule, x[i], g[i], L[i], l1, lo[i], hi[i])
    return out


@njit(cache=True, nogil=True)
def prox_grad_map(x, g, L, l1, lo, hi, out):
    """Coordinate-wise proximal-gradient mapping ``L_i (x_i - prox(x_i - g_i / L_i))``."""
    for i in range(x.shape[0]):
        xn = prox1(x[i] - g[i] / L[i], 1.0 / L[i], l1, lo[i], hi[i])
        out[i] = L[i] * (x[i] - xn)
    return out


# --------------------------------------------------------------------------
# indexed max-heap (heap[k] = coordinate, pos[coordinate] = k, key[coordinate])


@njit(cache=True, nogil=True)
def _sift_up(heap, pos, key, k):
    j = heap[k]
    kj = key[j]
    while k > 0:
        parent = (k - 1) >> 1
        q = heap[parent]
        if key[q] >= kj:
            break
        heap[k] = q
        pos[q] = k
        k = parent
    heap[k] = j
    pos[j] = k


@njit(cache=True, nogil=True)
def _sift_down(heap, pos, key, k, n):
    j = heap[k]
    kj = key[j]
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        if c + 1 < n and key[heap[c + 1]] > key[heap[c]]:
            c += 1
        q = heap[c]
        if key[q] <= kj:
            break
        heap[k] = q
        pos[q] = k
        k = c
    heap[k] = j
    pos[j] = k


@njit(cache=True, nogil=True)
def heap_build(heap, pos, key):
    """Arrange ``heap`` (a permutation of the coordinates) into a max-heap on ``key``."""
    n = heap.shape[0]
    for k in range(n):
        heap[k] = k
        pos[k] = k
    for k in range(n // 2 - 1, -1, -1):
        _sift_down(heap, pos, key, k, n)


@njit(cache=True, nogil=True)
def heap_rekey(heap, pos, key, j, value):
    """Change ``key[j]`` to ``value`` and restore the heap property (O(log p))."""
    old = key[j]
    key[j] = value
    if value > old:
        _sift_up(heap, pos, key, pos[j])
    elif value < old:
        _sift_down(heap, pos, key, pos[j], heap.shape[0])


# --------------------------------------------------------------------------
# greedy coordinate descent on a GLM  f(x) = sum_i loss(a_i^T x, y_i) + l2/2 |x|^2


@njit(cache=True, nogil=True)
def _loss_val(loss, m, y):
    if loss == 0:
        r = m - y
        return 0.5 * r * r
    z = -y * m
    if z > 0.0:
        return z + np.log1p(np.exp(-z))
    return np.log1p(np.exp(z))


@njit(cache=True, nogil=True)
def _loss_deriv(loss, m, y):
    if loss == 0:
        return m - y
    z = y * m
    if z > 0.0:
        e = np.exp(-z)
        return -y * e / (1.0 + e)
    return -y / (1.0 + np.exp(z))


@njit(cache=True, nogil=True)
def glm_greedy_cd(csc_indptr, csc_indices, csc_data, csr_indptr, csr_indices,
                  csr_data, y, loss, l2, m, s, g, x, L, l1, lo, hi, rule,
                  n_steps, heap, pos, key, mark, touched, stamp0, f0,
                  obj_out, sel_out):
    """Greedy (GS/GSL/GSQ) proximal coordinate descent on a sparse GLM.

    Maintains the margins ``m = A x``, loss derivatives ``s`` and the gradient
    ``g = A^T s + l2 x`` incrementally: a step on coordinate ``j`` changes
    ``m`` on the rows of column ``j`` and ``g`` on the columns of those rows;
    only those heap keys are re-keyed.  Returns ``(steps done, f + g value,
    next stamp)``; ``obj_out[t]`` is the objective after step ``t`` and
    ``sel_out[t]`` the coordinate updated.
    """
    f = f0
    stamp = stamp0
    done = 0
    for it in range(n_steps):
        j = heap[0]
        if key[j] <= 0.0:
            break
        xj = x[j]
        Lj = L[j]
        xn = prox1(xj - g[j] / Lj, 1.0 / Lj, l1, lo[j], hi[j])
        d = xn - xj
        stamp += 1
        nt = 0
        if d != 0.0:
            x[j] = xn
            f += l1 * (abs(xn) - abs(xj)) + 0.5 * l2 * (xn * xn - xj * xj)
            g[j] += l2 * d
            for k in range(csc_indptr[j], csc_indptr[j + 1]):
                i = csc_indices[k]
                m_old = m[i]
                m_new = m_old + d * csc_data[k]
                m[i] = m_new
                yi = y[i]
                f += _loss_val(loss, m_new, yi) - _loss_val(loss, m_old, yi)
                s_new = _loss_deriv(loss, m_new, yi)
                ds = s_new - s[i]
                s[i] = s_new
                for kk in range(csr_indptr[i], csr_indptr[i + 1]):
                    c = csr_indices[kk]
                    g[c] += ds * csr_data[kk]
                    if mark[c] != stamp:
                        mark[c] = stamp
                        touched[nt] = c
                        nt += 1
        if mark[j] != stamp:
            mark[j] = stamp
            touched[nt] = j
            nt += 1
        for t in range(nt):
            c = touched[t]
            heap_rekey(heap, pos, key, c,
                       coord_score(rule, x[c], g[c], L[c], l1, lo[c], hi[c]))
        obj_out[it] = f
        sel_out[it] = j
        done = it + 1
    return done, f, stamp


@njit(cache=True, nogil=True)
def quad_greedy_cd(indptr, indices, data, diag, g, x, l1, lo, hi, rule, n_steps,
                   heap, pos, key, f0, obj_out, sel_out):
    """Greedy proximal coordinate descent on ``f(x) = x^T Q x / 2 - c^T x``.

    ``Q`` is a symmetric CSR matrix (row ``j`` = column ``j``), ``diag`` its
    diagonal (the coordinate Lipschitz constants) and ``g = Q x - c`` is kept up
    to date.  Same outputs as :func:`glm_greedy_cd`.
    """
    f = f0
    done = 0
    for it in range(n_steps):
        j = heap[0]
        if key[j] <= 0.0:
            break
        xj = x[j]
        Lj = diag[j]
        gj = g[j]
        xn = prox1(xj - gj / Lj, 1.0 / Lj, l1, lo[j], hi[j])
        d = xn - xj
        if d != 0.0:
            x[j] = xn
            f += gj * d + 0.5 * Lj * d * d + l1 * (abs(xn) - abs(xj))
            for k in range(indptr[j], indptr[j + 1]):
                c = indices[k]
                g[c] += d * data[k]
                if c != j:
                    heap_rekey(heap, pos, key, c, coord_score(
                        rule, x[c], g[c], diag[c], l1, lo[c], hi[c]))
        heap_rekey(heap, pos, key, j,
                   coord_score(rule, x[j], g[j], Lj, l1, lo[j], hi[j]))
        obj_out[it] = f
        sel_out[it] = j
        done = it + 1
    return done, f


# --------------------------------------------------------------------------
# sparse products restricted to a block


@njit(cache=True, nogil=True)
def csc_block_product(indptr, indices, data, feats, D, acc, mark, stamp, rows):
    """Accumulate ``A[:, feats] @ D`` into the zeroed dense ``acc`` (n x k).

    The rows touched are written to ``rows`` (marked with ``stamp`` in
    ``mark``); returns their number.  The caller reads ``acc[rows[:nr]]`` and
    zeroes those rows again.
    """
    nr = 0
    k = D.shape[1]
    for t in range(feats.shape[0]):
        j = feats[t]
        for q in range(indptr[j], indptr[j + 1]):
            i = indices[q]
            v = data[q]
            for c in range(k):
                acc[i, c] += v * D[t, c]
            if mark[i] != stamp:
                mark[i] = stamp
                rows[nr] = i
                nr += 1
    return nr


@njit(cache=True, nogil=True)
def csr_rows_accumulate(indptr, indices, data, rows, V, G):
    """``G += A[rows].T @ V`` for a CSR ``A`` (``V`` has one row per entry of ``rows``)."""
    k = V.shape[1]
    for t in range(rows.shape[0]):
        i = rows[t]
        for q in range(indptr[i], indptr[i + 1]):
            j = indices[q]
            v = data[q]
            for c in range(k):
                G[j, c] += v * V[t, c]


@njit(cache=True, nogil=True)
def csc_gather_dense(indptr, indices, data, feats, rowpos, out):
    """Scatter columns ``feats`` of a CSC matrix into ``out[rowpos[i], t]``."""
    for t in range(feats.shape[0]):
        j = feats[t]
        for q in range(indptr[j], indptr[j + 1]):
            out[rowpos[indices[q]], t] += data[q]


# --------------------------------------------------------------------------
# forest blocks


@njit(cache=True, nogil=True)
def forest_solve(indptr, indices, data, block, posb, rhs, z, parent, order,
                 pweight, dwork, rwork):
    """Solve ``Q[b, b] z = rhs`` exactly when the block induces a forest.

    Gaussian elimination on each tree, leaves first, then back-substitution
    from the roots: linear in the block size (Gaussian belief propagation on a
    tree).  ``posb[i]`` is the position of variable ``i`` in ``block`` or -1.
    Returns 0 on success, 1 if the block's graph has a cycle, 2 if a pivot
    is not positive (``Q[b, b]`` not positive definite).
    """
    nb = block.shape[0]
    for u in range(nb):
        parent[u] = -2  # unvisited
        dwork[u] = 0.0
        rwork[u] = rhs[u]
    no = 0
    for r in range(nb):
        if parent[r] != -2:
            continue
        parent[r] = -1
        pweight[r] = 0.0
        order[no] = r
        no += 1
        head = no - 1
        while head < no:
            u = order[head]
            head += 1
            i = block[u]
            for q in range(indptr[i], indptr[i + 1]):
                jv = indices[q]
                if jv == i:
                    dwork[u] += data[q]
                    continue
                v = posb[jv]
                if v < 0 or data[q] == 0.0:
                    continue
                if parent[v] == -2:
                    parent[v] = u
                    pweight[v] = data[q]
                    order[no] = v
                    no += 1
                elif v != parent[u]:
                    return 1
    # eliminate leaves into parents
    for t in range(nb - 1, -1, -1):
        u = order[t]
        if dwork[u] <= 0.0:
            return 2
        p = parent[u]
        if p >= 0:
            w = pweight[u]
            fac = w / dwork[u]
            dwork[p] -= fac * w
            rwork[p] -= fac * rwork[u]
    for t in range(nb):
        u = order[t]
        p = parent[u]
        val = rwork[u]
        if p >= 0:
            val -= pweight[u] * z[p]
        z[u] = val / dwork[u]
    return 0


@njit(cache=True, nogil=True)
def _uf_find(uf, a):
    root = a
    while uf[root] != root:
        root = uf[root]
    while uf[a] != root:
        nxt = uf[a]
        uf[a] = root
        a = nxt
    return root


@njit(cache=True, nogil=True)
def greedy_forest(indptr, indices, order, allowed, max_size, uf, inset, rootmark,
                  out):
    """Grow an acyclic block: scan ``order``, add a variable unless it closes a cycle.

    A variable joins when its neighbours already in the block all lie in
    different trees (checked with union-find), so the block's induced graph
    stays a forest.  ``allowed[i]`` False skips ``i``.  Returns the block size;
    the block is ``out[:size]``.  ``uf``, ``inset`` and ``rootmark`` are
    work arrays of length p (reset here).
    """
    p = uf.shape[0]
    for i in range(p):
        uf[i] = i
        inset[i] = False
        rootmark[i] = -1
    size = 0
    for t in range(order.shape[0]):
        if size >= max_size:
            break
        v = order[t]
        if not allowed[v]:
            continue
        ok = True
        for q in range(indptr[v], indptr[v + 1]):
            w = indices[q]
            if w == v or not inset[w]:
                continue
            r = _uf_find(uf, w)
            if rootmark[r] == v:
                ok = False
                break
            rootmark[r] = v
        if not ok:
            continue
        inset[v] = True
        out[size] = v
        size += 1
        for q in range(indptr[v], indptr[v + 1]):
            w = indices[q]
            if w != v and inset[w]:
                r = _uf_find(uf, w)
                if r != v:
                    uf[r] = v
    return size


@njit(cache=True, nogil=True)
def forest_partition(indptr, indices, order):
    """Partition the variables into forests by repeated greedy forest growth.

    Returns ``labels`` (forest index of each variable) and the number of forests.
    """
    p = order.shape[0]
    labels = np.full(p, -1, np.int64)
    allowed = np.ones(p, np.bool_)
    uf = np.empty(p, np.int64)
    inset = np.empty(p, np.bool_)
    rootmark = np.empty(p, np.int64)
    out = np.empty(p, np.int64)
    left = p
    nf = 0
    while left > 0:
        size = greedy_forest(indptr, indices, order, allowed, p, uf, inset,
                             rootmark, out)
        for t in range(size):
            labels[out[t]] = nf
            allowed[out[t]] = False
        left -= size
        nf += 1
    return labels, nf


@njit(cache=True, nogil=True)
def greedy_coloring(indptr, indices, order):
    """Greedy graph colouring in ``order``: each colour class is an independent set."""
    p = order.shape[0]
    color = np.full(p, -1, np.int64)
    used = np.full(p + 1, -1, np.int64)
    ncol = 0
    for t in range(p):
        v = order[t]
        for q in range(indptr[v], indptr[v + 1]):
            w = indices[q]
            if w != v and color[w] >= 0:
                used[color[w]] = v
        c = 0
        while used[c] == v:
            c += 1
        color[v] = c
        if c + 1 > ncol:
            ncol = c + 1
    return color, ncol


# --------------------------------------------------------------------------
# dense box / L1 quadratic program (exact proximal block updates)


@njit(cache=True, nogil=True)
def box_l1_qp(H, q, z, l1, lo, hi, tol, max_sweeps):
    """Minimise ``q^T z + z^T H z / 2 + l1 |z|_1`` on ``lo <= z <= hi`` by CD.

    ``z`` holds the start and is overwritten.  Sweeps until the largest
    coordinate change falls below ``tol`` times the largest ``|z_i|`` (or 1).
    Returns the number of sweeps.
    """
    n = z.shape[0]
    grad = q.copy()
    for i in range(n):
        for j in range(n):
            grad[i] += H[i, j] * z[j]
    for sweep in range(max_sweeps):
        dmax = 0.0
        zmax = 1.0
        for i in range(n):
            hii = H[i, i]
            if hii <= 0.0:
                continue
            zi = z[i]
            zn = prox1(zi - grad[i] / hii, 1.0 / hii, l1, lo[i], hi[i])
            d = zn - zi
            if d != 0.0:
                z[i] = zn
                for j in range(n):
                    grad[j] += H[j, i] * d
                if abs(d) > dmax:
                    dmax = abs(d)
            if abs(zn) > zmax:
                zmax = abs(zn)
        if dmax <= tol * zmax:
            return sweep + 1
    return max_sweeps
