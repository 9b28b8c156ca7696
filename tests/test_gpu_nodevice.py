"""The GPU package on a machine without a GPU: lazy imports, clear errors, host helpers."""

import ast
import os
import subprocess
import sys

import numpy as np
import pytest

from sparseopt.gpu._launch import Launcher, group_log2, pow2_at_least

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _has_device():
    from sparseopt.gpu import is_available

    return is_available()


def _modules_after(statement):
    code = f"import sys; {statement}; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return set(ast.literal_eval(out))


@pytest.mark.parametrize("statement", ["import sparseopt",
                                       "import sparseopt.gpu",
                                       "import sparseopt, sparseopt.linalg, sparseopt.formats"])
def test_imports_never_touch_cupy_or_numba_cuda(statement):
    loaded = _modules_after(statement)
    assert "cupy" not in loaded
    assert "numba.cuda" not in loaded
    assert "numba_cuda" not in loaded


@pytest.mark.skipif(_has_device(), reason="a CUDA device is present")
def test_first_gpu_use_without_device_is_a_clear_error():
    from sparseopt.gpu import CupyBackend, to_device

    with pytest.raises((ImportError, RuntimeError), match=r"CUDA device|pip install"):
        to_device(np.ones(3))
    with pytest.raises((ImportError, RuntimeError), match=r"CUDA device|pip install"):
        CupyBackend()


@pytest.mark.skipif(SIMULATOR, reason="the simulator is on in this process")
def test_numpy_backend_outside_the_simulator_is_refused():
    pytest.importorskip("numba_cuda")
    from sparseopt.gpu import CupyBackend

    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM=1"):
        CupyBackend(xp=np)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"spmm_t": "scatter"}, "spmm_t"),
    ({"spgemm_threads": 48}, "spgemm_threads"),
    ({"spgemm_shared_slots": 4096}, "spgemm_shared_slots"),
    ({"long_row": 0}, "long_row"),
])
def test_backend_parameters_are_validated(kwargs, match):
    pytest.importorskip("numba_cuda")
    from sparseopt.gpu import CupyBackend

    with pytest.raises(ValueError, match=match):
        CupyBackend(xp=np, **kwargs)


def test_host_array_on_the_device_path_is_a_type_error():
    # the check runs before anything touches CUDA
    with pytest.raises(TypeError, match="X is a host \\(numpy\\) array"):
        Launcher(on_device=True).device_array(np.zeros(3), "X")


def test_conversion_helpers_reject_wrong_input():
    from sparseopt import CSR
    from sparseopt.gpu import from_cupyx, to_cupyx, to_host

    A = CSR(np.eye(3))
    with pytest.raises(TypeError, match="device arrays"):
        to_cupyx(A)
    with pytest.raises(TypeError, match=r"cupyx\.scipy\.sparse"):
        from_cupyx(A)
    # host input to to_host is returned unchanged (same arrays)
    B = to_host(A)
    assert B.data is A.data and B.indptr is A.indptr


def test_launch_shape_helpers():
    assert [pow2_at_least(n) for n in (0, 1, 2, 3, 17, 32, 33)] == [1, 1, 2, 4, 32, 32, 64]
    assert [group_log2(m) for m in (0, 0.5, 1, 3, 31, 500)] == [0, 0, 0, 2, 5, 5]


def test_global_table_sizes_match_the_kernels_rule():
    pytest.importorskip("numba_cuda")
    from sparseopt.gpu._spgemm import table_sizes

    bounds = np.array([1, 2, 3, 4, 5, 511, 512, 513, 10**6])
    expected = [pow2_at_least(2 * b) for b in bounds]
    np.testing.assert_array_equal(table_sizes(bounds), expected)
