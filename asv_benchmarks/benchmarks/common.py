"""Matrix structures shared by the kernel benchmarks, and a peak-memory probe."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def uniform(n, density, seed=0):
    """Uniform random n x n CSR."""
    return sp.random_array((n, n), density=density, format="csr", random_state=seed)


def uniform_rows(n, per_row, seed=0):
    """n x n CSR with ``per_row`` uniformly random columns per row (duplicates summed)."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, n, n * per_row)
    indptr = np.arange(0, n * per_row + 1, per_row)
    A = sp.csr_array((rng.standard_normal(n * per_row), cols, indptr), shape=(n, n))
    A.sum_duplicates()
    return A


def rmat(scale, edge_factor=8, abcd=(0.57, 0.19, 0.19, 0.05), seed=0):
    """R-MAT power-law graph with 2**scale vertices (Chakrabarti et al., 2004)."""
    rng = np.random.default_rng(seed)
    n = 2**scale
    m = edge_factor * n
    rows = np.zeros(m, dtype=np.int64)
    cols = np.zeros(m, dtype=np.int64)
    a, b, c, _ = abcd
    for level in range(scale):
        r = rng.random(m)
        right = (r > a) & (r <= a + b) | (r > a + b + c)
        down = r > a + b
        rows |= down.astype(np.int64) << level
        cols |= right.astype(np.int64) << level
    A = sp.coo_array((rng.standard_normal(m), (rows, cols)), shape=(n, n)).tocsr()
    A.sum_duplicates()
    return A


def poisson2d(n):
    """5-point Laplacian on an n x n grid."""
    T = sp.diags_array([-1.0, 4.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    S = sp.diags_array([-1.0, -1.0], offsets=[-1, 1], shape=(n, n))
    return (sp.kron(sp.eye_array(n), T) + sp.kron(S, sp.eye_array(n))).tocsr()


def block_structured(n, block, block_density, seed=0):
    """n x n matrix of dense ``block`` x ``block`` tiles, a fraction present."""
    nb = n // block
    pattern = sp.random_array((nb, nb), density=block_density, format="csr", random_state=seed)
    rng = np.random.default_rng(seed)
    blocks = rng.standard_normal((pattern.nnz, block, block))
    return sp.bsr_array((blocks, pattern.indices, pattern.indptr), shape=(n, n)).tocsr()


STRUCTURES = {
    "uniform": lambda: uniform(20_000, 1e-3),
    "rmat": lambda: rmat(14),
    "poisson2d": lambda: poisson2d(200),
    "block": lambda: block_structured(4096, 16, 0.1),
}


def _status_bytes(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def call_peak_bytes(fn):
    """Rise of the peak resident set while ``fn()`` runs over the resident set before it.

    Linux only: ``/proc/self/clear_refs`` resets the high-water mark.  Exact
    when glibc maps every large array on allocation and unmaps it when freed
    (``MALLOC_MMAP_THRESHOLD_`` set at process start, as :func:`peak_bytes`
    does); otherwise memory left in the heap by earlier calls is reused unseen.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_bytes("VmRSS")
    result = fn()
    peak = _status_bytes("VmHWM")
    del result
    return peak - before


_PEAK_SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from benchmarks.common import *
import sparseopt
{setup}
for _ in range(2):  # Numba's code and the libraries' lazy state loaded first
    _warm = {call}
    del _warm
print(call_peak_bytes(lambda: {call}))
"""


def peak_bytes(setup, call, n_threads=None):
    """Peak memory of the expression ``call`` in a fresh process, after ``setup``.

    Both are source code run after ``from benchmarks.common import *`` and
    ``import sparseopt``.  The process starts with glibc's mmap threshold
    fixed at 64 KiB, so every large array is mapped when allocated and
    unmapped when freed: :func:`call_peak_bytes` then counts all the memory
    the call needs, its result included.  NaN where ``/proc`` is missing.
    """
    if not Path("/proc/self/clear_refs").exists():
        return float("nan")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    if n_threads is not None:
        env["NUMBA_NUM_THREADS"] = str(n_threads)
    here = str(Path(__file__).resolve().parent.parent)
    code = _PEAK_SCRIPT.format(here=here, setup=setup, call=call)
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env,
                         capture_output=True, text=True)
    return float(out.stdout.split()[-1])
