"""Dask arrays whose chunks are sparse blocks: construction and validation.

A distributed sparse matrix is a plain :class:`dask.array.Array` whose chunks
are ``scipy.sparse.csr_array`` blocks (zero-copy views of our
:class:`~sparseopt.CSR` arrays on the workers).  Using scipy's type as the chunk
type keeps every dask.array facility working (``persist``, ``blocks``,
``rechunk``, ``compute`` concatenating with ``scipy.sparse.vstack/hstack``),
while the products in :mod:`sparseopt.distributed._products` run our own Numba
kernels on each chunk.

Three ways in:

* :func:`from_scipy` splits an in-memory matrix into row (and optionally
  column) blocks, one graph key per block, so a worker receives only its
  blocks;
* :func:`from_blocks` assembles a list (or a 2-D grid) of blocks, concrete or
  :func:`dask.delayed` with a declared shape;
* :func:`from_files` builds the array lazily from one Matrix Market or ``.npz``
  file per block: the shapes come from the file headers, the data is read by
  the worker that computes the block.
"""

import numbers
import os
import zipfile

import numpy as np
import scipy.sparse as sp

__all__ = ["from_blocks", "from_files", "from_scipy"]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError(
            "sparseopt.distributed needs dask: pip install 'sparseopt[dist]'"
        ) from exc
    return dask, da


def _float_dtype(dtype):
    """Working value dtype of a block: float32 stays, everything else is float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"complex values are not supported, got dtype {dtype}")
    if dtype.kind not in "biuf":
        raise TypeError(f"sparse blocks must hold real numbers, got dtype {dtype}")
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _meta(dtype):
    return sp.csr_array((0, 0), dtype=dtype)


def _is_pydata(a):
    return type(a).__module__.split(".")[0] == "sparse"


def as_scipy_block(block, name, dtype=None):
    """A block as a ``scipy.sparse.csr_array`` (zero-copy where possible).

    Accepts scipy.sparse matrices/arrays, our CSR/BSR and pydata-sparse
    arrays; dense arrays are rejected with a ``TypeError`` naming ``name``.
    """
    from sparseopt.formats import BSR, CSR

    if isinstance(block, CSR | BSR):
        block = block.to_scipy()
    elif _is_pydata(block):
        block = block.to_scipy_sparse()
    if not sp.issparse(block):
        raise TypeError(
            f"{name} must be sparse (scipy.sparse, sparseopt.CSR/BSR or pydata-sparse), "
            f"got a dense {type(block).__module__}.{type(block).__name__}; use "
            "dask.array.from_array for dense data"
        )
    if block.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {block.shape}")
    if block.format != "csr" or not isinstance(block, sp.sparray):
        block = sp.csr_array(block)
    target = _float_dtype(block.dtype) if dtype is None else np.dtype(dtype)
    if block.dtype != target:
        block = block.astype(target)
    return block


def _normalize_chunks(chunks, n, name):
    """``int`` (block size) or a sequence of sizes -> tuple of block sizes."""
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        if chunks <= 0:
            raise ValueError(f"{name} must be > 0, got {chunks}")
        if n == 0:
            return (0,)
        return tuple(min(chunks, n - s) for s in range(0, n, chunks))
    try:
        sizes = tuple(int(c) for c in chunks)
    except TypeError as exc:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {chunks!r}") from exc
    if any(c < 0 for c in sizes) or sum(sizes) != n or not sizes:
        raise ValueError(
            f"{name} must be non-negative block sizes summing to {n}, got {sizes}"
        )
    return sizes


def _assemble(grid, shapes, dtype, name):
    """A dask array from a 2-D grid of blocks (values or dask keys/delayed)."""
    dask, da = _dask()
    from dask.highlevelgraph import HighLevelGraph

    row_sizes = tuple(row[0][0] for row in shapes)
    col_sizes = tuple(s[1] for s in shapes[0])
    for i, row in enumerate(shapes):
        if len(row) != len(col_sizes):
            raise ValueError(
                f"block row {i} has {len(row)} blocks, block row 0 has {len(col_sizes)}"
            )
        for j, (r, c) in enumerate(row):
            if r != row_sizes[i]:
                raise ValueError(
                    f"mismatched block shapes: block ({i}, {j}) has {r} rows, "
                    f"block ({i}, 0) has {row_sizes[i]}"
                )
            if c != col_sizes[j]:
                raise ValueError(
                    f"mismatched block shapes: block ({i}, {j}) has {c} columns, "
                    f"block (0, {j}) has {col_sizes[j]}"
                )
    token = dask.base.tokenize(name, *[id(b) for row in grid for b in row])
    out_name = f"{name}-{token}"
    layer = {}
    deps = []
    for i, row in enumerate(grid):
        for j, item in enumerate(row):
            if dask.is_dask_collection(item):
                deps.append(item)
                layer[(out_name, i, j)] = item.key
            else:
                layer[(out_name, i, j)] = item
    graph = HighLevelGraph.from_collections(out_name, layer, dependencies=deps)
    return da.Array(graph, out_name, chunks=(row_sizes, col_sizes), meta=_meta(dtype))


def from_scipy(A, row_chunks, col_chunks=None, *, dtype=None):
    """Split a sparse matrix into a dask array of CSR row (and column) blocks.

    Parameters
    ----------
    A : scipy.sparse matrix/array, sparseopt.CSR/BSR or pydata-sparse array
        Shape ``(m, n)``.  Not modified; CSR input is sliced, not copied
        wholesale, and each block becomes its own graph key, so a worker only
        receives the blocks it computes on.
    row_chunks : int or sequence of int
        Rows per block (the last block takes the remainder), or the block
        sizes.
    col_chunks : int or sequence of int, optional
        Columns per block; default one column block (the layout of the
        row-parallel products and solvers).  Several column blocks give the
        2-D layout used by the block-by-block :func:`spgemm`.
    dtype : numpy dtype, optional
        Value dtype of the blocks; default float32 for float32 input, float64
        otherwise.

    Returns
    -------
    dA : dask.array.Array
        Chunks are ``scipy.sparse.csr_array``; ``dA.compute()`` gathers the
        matrix back as a ``csr_array``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from sparseopt.distributed import from_scipy
    >>> A = sp.random_array((10, 4), density=0.5, format="csr", random_state=0)
    >>> dA = from_scipy(A, row_chunks=4)
    >>> dA.chunks
    ((4, 4, 2), (4,))
    >>> (dA.compute() != A).nnz
    0
    """
    A = as_scipy_block(A, "A", dtype)
    m, n = A.shape
    rows = _normalize_chunks(row_chunks, m, "row_chunks")
    cols = _normalize_chunks(n if col_chunks is None else col_chunks, n, "col_chunks")
    r_off = np.concatenate([[0], np.cumsum(rows)])
    c_off = np.concatenate([[0], np.cumsum(cols)])
    grid, shapes = [], []
    for i in range(len(rows)):
        panel = A[r_off[i]:r_off[i + 1]]
        row, row_shapes = [], []
        for j in range(len(cols)):
            block = panel if len(cols) == 1 else panel[:, c_off[j]:c_off[j + 1]]
            row.append(sp.csr_array(block))
            row_shapes.append(block.shape)
        grid.append(row)
        shapes.append(row_shapes)
    return _assemble(grid, shapes, A.dtype, "from_scipy")


def _grid(blocks):
    if isinstance(blocks, list | tuple) and blocks and all(
            isinstance(b, list | tuple) for b in blocks):
        return [list(row) for row in blocks], True
    if isinstance(blocks, list | tuple):
        return [[b] for b in blocks], False
    raise TypeError(f"blocks must be a list of blocks or a list of lists, got "
                    f"{type(blocks).__name__}")


def from_blocks(blocks, *, shapes=None, dtype=None):
    """Assemble a dask array from sparse blocks.

    Parameters
    ----------
    blocks : list of blocks, or list of lists of blocks
        A list stacks row blocks vertically (they must have the same number of
        columns); a list of lists is a 2-D grid (blocks in a block row share
        their row count, blocks in a block column their column count).  A
        block is a scipy.sparse matrix, a :class:`sparseopt.CSR`/``BSR``, a
        pydata-sparse array, or a :func:`dask.delayed` object producing one,
        in which case its shape is given in ``shapes``.
    shapes : same nesting as ``blocks``, optional
        Shapes of the blocks; required for delayed blocks, checked against
        concrete ones.
    dtype : numpy dtype, optional
        Value dtype; default float32 if every concrete block is float32,
        float64 otherwise (delayed blocks are cast to it when computed).

    Returns
    -------
    dA : dask.array.Array with ``scipy.sparse.csr_array`` chunks

    Raises
    ------
    TypeError
        If a block is dense.
    ValueError
        If block shapes do not line up, naming the offending block.
    """
    dask, _ = _dask()
    grid, is_2d = _grid(blocks)
    if not grid:
        raise ValueError("blocks is empty")
    shape_grid = None
    if shapes is not None:
        shape_grid, _ = _grid(shapes) if is_2d else ([[s] for s in shapes], False)
        if [len(r) for r in shape_grid] != [len(r) for r in grid]:
            raise ValueError("shapes must have the same nesting as blocks")
    concrete_dtypes = []
    out_grid, out_shapes = [], []
    for i, row in enumerate(grid):
        new_row, new_shapes = [], []
        for j, b in enumerate(row):
            label = f"blocks[{i}][{j}]" if is_2d else f"blocks[{i}]"
            declared = None if shape_grid is None else tuple(int(s) for s in shape_grid[i][j])
            if dask.is_dask_collection(b):
                if declared is None:
                    raise ValueError(f"{label} is delayed: give its shape in shapes")
                new_row.append(b)
                new_shapes.append(declared)
                continue
            blk = as_scipy_block(b, label, dtype)
            if declared is not None and declared != blk.shape:
                raise ValueError(f"{label} has shape {blk.shape}, shapes says {declared}")
            concrete_dtypes.append(blk.dtype)
            new_row.append(blk)
            new_shapes.append(blk.shape)
        out_grid.append(new_row)
        out_shapes.append(new_shapes)
    if dtype is None:
        dtype = (np.float32 if concrete_dtypes and all(d == np.float32 for d in concrete_dtypes)
                 else np.float64)
    dtype = np.dtype(dtype)
    # delayed blocks: validate and cast when they are computed
    for i, row in enumerate(out_grid):
        for j, b in enumerate(row):
            if dask.is_dask_collection(b):
                label = f"blocks[{i}][{j}]" if is_2d else f"blocks[{i}]"
                row[j] = dask.delayed(_checked_block, pure=True)(
                    b, out_shapes[i][j], dtype, label)
    return _assemble(out_grid, out_shapes, dtype, "from_blocks")


def _checked_block(block, shape, dtype, label):
    block = as_scipy_block(block, label, dtype)
    if block.shape != tuple(shape):
        raise ValueError(f"{label} has shape {block.shape}, declared {tuple(shape)}")
    return block


# ---------------------------------------------------------------------------
# files


def _file_kind(path, fmt):
    if fmt is not None:
        if fmt not in ("mtx", "npz"):
            raise ValueError(f"format must be 'mtx' or 'npz', got {fmt!r}")
        return fmt
    p = str(path).lower()
    if p.endswith((".mtx", ".mtx.gz", ".mm")):
        return "mtx"
    if p.endswith(".npz"):
        return "npz"
    raise ValueError(f"cannot tell the format of {path!r}: give format='mtx' or 'npz'")


def _npz_header(path):
    """Shape and value dtype of a ``scipy.sparse.save_npz`` file without loading its data."""
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "shape.npy" not in names or "data.npy" not in names:
            raise ValueError(f"{path!r} is not a scipy.sparse .npz file")
        with zf.open("shape.npy") as f:
            shape = tuple(int(s) for s in np.lib.format.read_array(f))
        with zf.open("data.npy") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            _, _, dtype = read(f)
    return shape, dtype


def _header(path, kind):
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such block file: {path!r}")
    if kind == "npz":
        return _npz_header(path)
    import scipy.io

    rows, cols, _, _, field, _ = scipy.io.mminfo(path)
    if field == "complex":
        raise TypeError(f"{path!r} holds complex values, which are not supported")
    return (int(rows), int(cols)), np.dtype(np.float64)


def _read_block(path, kind, shape, dtype):
    if kind == "npz":
        block = sp.load_npz(path)
    else:
        import scipy.io

        block = scipy.io.mmread(path)
    return _checked_block(block, shape, dtype, repr(path))


def from_files(paths, *, format=None, dtype=None):
    """Build a dask array lazily from one sparse file per block.

    Only the headers are read here (the Matrix Market banner line, the
    ``shape`` and ``data`` headers of a ``.npz``); each block's data is read by
    the worker that first needs it, and re-read if that worker is lost.

    Parameters
    ----------
    paths : list of path, or list of lists of path
        One file per block: a list of row blocks, or a 2-D grid as in
        :func:`from_blocks`.  The files must be readable by the workers (a
        shared file system, or a local cluster).
    format : {"mtx", "npz"}, optional
        File format; default from the extension (``.mtx``, ``.mtx.gz``,
        ``.mm`` for Matrix Market via :func:`scipy.io.mmread`, ``.npz`` for
        :func:`scipy.sparse.save_npz` files).
    dtype : numpy dtype, optional
        Value dtype; default float32 when every ``.npz`` holds float32,
        float64 otherwise.

    Returns
    -------
    dA : dask.array.Array with ``scipy.sparse.csr_array`` chunks
    """
    dask, _ = _dask()
    grid, is_2d = _grid(paths)
    headers = [[_header(os.fspath(p), _file_kind(p, format)) for p in row] for row in grid]
    if dtype is None:
        kinds = [d for row in headers for _, d in row]
        dtype = np.float32 if kinds and all(np.dtype(d) == np.float32 for d in kinds) \
            else np.float64
    dtype = np.dtype(dtype)
    blocks = [[dask.delayed(_read_block, pure=True)(
        os.fspath(p), _file_kind(p, format), h[0], dtype) for p, h in zip(row, hrow,
                                                                          strict=True)]
        for row, hrow in zip(grid, headers, strict=True)]
    shapes = [[h[0] for h in hrow] for hrow in headers]
    if not is_2d:
        blocks = [row[0] for row in blocks]
        shapes = [row[0] for row in shapes]
    return from_blocks(blocks, shapes=shapes, dtype=dtype)


# ---------------------------------------------------------------------------
# validation of dask inputs


def is_dask_array(x):
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, da.Array)


def chunks_are_sparse(x):
    return sp.issparse(x._meta) or _is_pydata(x._meta)


def check_sparse_dask(A, name):
    """``A`` must be a 2-D dask array whose chunks are sparse."""
    if not is_dask_array(A):
        raise TypeError(
            f"{name} must be a dask array of sparse blocks (see "
            f"sparseopt.distributed.from_scipy), got {type(A).__name__}"
        )
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {A.shape}")
    if not chunks_are_sparse(A):
        raise TypeError(
            f"{name} must have sparse chunks (scipy.sparse, as built by from_scipy, "
            f"from_blocks or from_files), but its chunks are "
            f"{type(A._meta).__module__}.{type(A._meta).__name__}"
        )
    if any(np.isnan(c) for dim in A.chunks for c in dim):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes()")
    return A
