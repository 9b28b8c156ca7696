"""Every CUDA kernel compiles to PTX for real devices, without a GPU.

``numba.cuda.compile_ptx`` runs the real NVVM compiler (numba-cuda[cu12]
ships it), so this catches device code the simulator would happily run, and
the PTX shows what the hardware will do: shared-memory hash tables really use
``atom.shared.cas``, float atomics are native ``atom.*.add.f64/f32``, and the
BSR accumulators live in registers (no ``.local`` memory).
"""

import os
import re

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="compile_ptx needs the real numba.cuda, not the simulator",
)

#: (compute capability, value dtype, index dtype): the oldest target we support
#: with both dtype pairs, and a current one
TARGETS = [((7, 0), np.float64, np.int32), ((7, 0), np.float32, np.int64),
           ((9, 0), np.float64, np.int64)]

# instructions each kernel must contain, per value dtype
EXPECTED = {
    "csr_spmm_t": ["atom.global.add.f{bits}"],
    "bsr_spmm_t": ["atom.global.add.f{bits}"],
    "symbolic_shared": ["atom.shared.cas.b{ibits}"],
    "symbolic_global": ["atom.global.cas.b{ibits}"],
    "numeric_shared": ["atom.shared.cas.b{ibits}", "atom.shared.add.f{bits}"],
    "numeric_global": ["atom.global.cas.b{ibits}", "atom.global.add.f{bits}"],
}


def _cases():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")
    from sparseopt.gpu import _bsr, _canonical, _spgemm, _spmm

    out = []
    for cc, dtype, index in TARGETS:
        for mod in (_spmm, _bsr, _spgemm, _canonical):
            for name, fn, sig in mod.ptx_cases(dtype, index):
                out.append((cc, dtype, index, name, fn, sig))
    return out


@pytest.mark.parametrize(("cc", "dtype", "index"), TARGETS,
                         ids=[f"sm{c[0]}{c[1]}-{np.dtype(d).name}-{np.dtype(i).name}"
                              for c, d, i in TARGETS])
def test_every_kernel_compiles_to_ptx(cc, dtype, index):
    from numba import cuda

    cases = [c for c in _cases() if c[:3] == (cc, dtype, index)]
    assert len(cases) == 14
    bits = np.dtype(dtype).itemsize * 8
    ibits = np.dtype(index).itemsize * 8
    for _, _, _, name, fn, sig in cases:
        ptx, restype = cuda.compile_ptx(fn, sig, cc=cc)
        assert f".target sm_{cc[0]}{cc[1]}" in ptx, name
        assert ".visible .entry" in ptx, name
        assert str(restype) == "none", name
        for instr in EXPECTED.get(name, []):
            assert instr.format(bits=bits, ibits=ibits) in ptx, (name, instr)
        if name.startswith("bsr"):
            assert not re.search(r"\.local\b", ptx), f"{name} spills to local memory"
