"""Block partitions: fixed, variable and forest-structured.

* Fixed blocks (Nutini et al., Sec. 3): ``"order"`` (contiguous), ``"random"``
  (a random permutation cut into blocks), ``"sort"`` (coordinates with similar
  Lipschitz constants together) and ``"avg"`` (dealt round-robin in sorted
  order so every block mixes large and small constants), or any user list of
  index arrays that partitions the variables.
* Variable blocks (``"variable"``): any ``block_size`` coordinates, chosen by
  the selection rule at each iteration.
* Forest-structured blocks for sparse quadratics (Sec. 5): ``"red-black"``
  (greedy colouring: each block is an independent set of the Hessian graph, so
  its Hessian block is diagonal), ``"tree"`` (the variables split into a few
  forests by repeated greedy forest growth) and ``"greedy-tree"`` (a variable
  block grown each iteration in the order of the rule's scores, skipping any
  coordinate that would close a cycle).  Forest blocks are solved exactly by
  message passing in time linear in their size.
"""

import numpy as np

from sparseopt.kernels._bcd import forest_partition, greedy_coloring

__all__ = ["FixedPartition", "VariablePartition", "make_partition"]

FIXED = ("order", "random", "sort", "avg")
FOREST_FIXED = ("red-black", "tree")
VARIABLE = ("variable", "greedy-tree")
PARTITIONS = FIXED + FOREST_FIXED + VARIABLE


class FixedPartition:
    """Disjoint blocks covering ``0..p-1`` (``blocks``: list of int64 arrays)."""

    variable = False

    def __init__(self, blocks, p, kind="user", forest=False):
        self.blocks = [np.ascontiguousarray(b, dtype=np.int64) for b in blocks]
        self.p = p
        self.kind = kind
        self.forest = forest
        self.labels = np.empty(p, np.int64)
        for k, b in enumerate(self.blocks):
            self.labels[b] = k
        self.sizes = np.array([len(b) for b in self.blocks])
        self.n_blocks = len(self.blocks)
        tmax = int(self.sizes.max()) if self.n_blocks else 0
        # padded index matrix (dummy index p) for vectorised block scores
        self.padded = np.full((self.n_blocks, tmax), p, np.int64)
        for k, b in enumerate(self.blocks):
            self.padded[k, :len(b)] = b
        self.uniform_small = tmax <= 64

    def __repr__(self):
        return (f"FixedPartition(kind={self.kind!r}, n_blocks={self.n_blocks}, "
                f"max_size={int(self.sizes.max()) if self.n_blocks else 0})")


class VariablePartition:
    """Blocks of ``block_size`` coordinates picked anew each iteration."""

    variable = True

    def __init__(self, p, block_size, kind="variable"):
        self.p = p
        self.block_size = block_size
        self.kind = kind
        self.forest = kind == "greedy-tree"

    def __repr__(self):
        return f"VariablePartition(kind={self.kind!r}, block_size={self.block_size})"


def _chunks(order, tau):
    return [order[i:i + tau] for i in range(0, len(order), tau)]


def _validate_user_blocks(blocks, p):
    seen = np.zeros(p, np.int64)
    out = []
    for k, b in enumerate(blocks):
        arr = np.asarray(b)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"partition: block {k} must be a non-empty 1-D index array")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"partition: block {k} must hold integer indices, "
                             f"got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= p:
            raise ValueError(f"partition: block {k} has indices outside [0, {p})")
        np.add.at(seen, arr, 1)
        out.append(arr)
    if (seen > 1).any():
        raise ValueError("partition: the blocks overlap (variable "
                         f"{int(np.argmax(seen > 1))} is in more than one block)")
    if (seen == 0).any():
        raise ValueError("partition: the blocks do not cover all variables (variable "
                         f"{int(np.argmax(seen == 0))} is in no block)")
    return out


def _graph(problem, kind):
    if not callable(getattr(problem, "hessian_csr", None)):
        raise ValueError(f"partition={kind!r} needs a problem with a sparse Hessian "
                         f"(hessian_csr), which {type(problem).__name__} lacks")
    Q = problem.hessian_csr()
    return Q.indptr, Q.indices


def _bfs_order(Q):
    from scipy.sparse.csgraph import breadth_first_order

    seen = np.zeros(Q.shape[0], bool)
    parts = []
    for v in range(Q.shape[0]):
        if not seen[v]:
            order = breadth_first_order(Q, v, directed=False, return_predecessors=False)
            seen[order] = True
            parts.append(order)
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def make_partition(partition, problem, block_size, rng):
    """Build the partition object from the user's ``partition`` argument."""
    p = problem.n_vars
    if partition is None:
        partition = "order"
    if isinstance(partition, (FixedPartition, VariablePartition)):
        return partition
    if not isinstance(partition, str):
        try:
            blocks = list(partition)
        except TypeError as exc:
            raise TypeError("partition must be a name or a list of index arrays") from exc
        return FixedPartition(_validate_user_blocks(blocks, p), p)
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}; choose one of {PARTITIONS} "
                         "or pass a list of index arrays")
    if partition == "variable":
        return VariablePartition(p, block_size or 1)
    if partition == "greedy-tree":
        _graph(problem, partition)
        return VariablePartition(p, block_size or p, kind="greedy-tree")
    if partition in FOREST_FIXED:
        indptr, indices = _graph(problem, partition)
        order = np.arange(p, dtype=np.int64)
        if partition == "red-black":
            # greedy colouring in breadth-first order uses two colours on any
            # bipartite graph (a lattice: the red-black ordering)
            labels, nb = greedy_coloring(indptr, indices, _bfs_order(
                problem.hessian_csr()))
        else:
            labels, nb = forest_partition(indptr, indices, order)
        blocks = [np.flatnonzero(labels == k) for k in range(nb)]
        return FixedPartition(blocks, p, kind=partition, forest=True)
    tau = block_size or 1
    if partition == "order":
        order = np.arange(p)
    elif partition == "random":
        order = rng.permutation(p)
    else:
        L = problem.lipschitz()
        order = np.argsort(-L, kind="stable")
        if partition == "avg":
            nb = -(-p // tau)
            blocks = [order[k::nb] for k in range(nb)]
            return FixedPartition(blocks, p, kind=partition)
    return FixedPartition(_chunks(order, tau), p, kind=partition)
