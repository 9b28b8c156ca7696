import threading

import numpy as np
import pytest

import sparseopt
from sparseopt import config_context, get_backend, get_config, set_config
from sparseopt._backend import array_library


class FakeCupyArray:  # looks like a cupy array to the registry, without cupy
    __module__ = "cupy._core.core"


def test_numpy_backend_for_host_inputs():
    import scipy.sparse as sp

    A = sparseopt.CSR.from_dense(np.eye(2))
    nx = get_backend(np.ones(2), A, sp.eye_array(2), None)
    assert nx.name == "numpy"
    assert nx.xp.asarray([1, 2]).shape == (2,)


def test_mixing_backends_is_a_type_error():
    fake = FakeCupyArray()
    assert array_library(fake) == "cupy"
    with pytest.raises(TypeError, match=r"argument 0: numpy, argument 1: cupy"):
        get_backend(np.ones(2), fake)


def test_forced_backend_mismatch():
    with config_context(backend="cupy"), pytest.raises(TypeError, match="configured backend"):
        get_backend(np.ones(2))


def test_config_validation_and_restore():
    before = get_config()
    with config_context(n_threads=1, verbose=2):
        assert get_config()["n_threads"] == 1 and get_config()["verbose"] == 2
    assert get_config() == before
    with pytest.raises(ValueError, match="backend"):
        set_config(backend="torch")
    with pytest.raises(ValueError, match="n_threads"):
        set_config(n_threads=0)
    with pytest.raises(ValueError, match="verbose"):
        set_config(verbose=-1)


def test_config_is_thread_local():
    seen = {}

    def worker():
        seen["n_threads"] = get_config()["n_threads"]

    with config_context(n_threads=1):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen["n_threads"] is None


def test_n_threads_gives_same_result():
    import scipy.sparse as sp

    A = sp.random_array((3000, 200), density=0.05, format="csr", random_state=0)
    X = np.random.default_rng(0).standard_normal((3000, 8))
    with config_context(n_threads=1):
        one = sparseopt.spmm_t(A, X)
    two = sparseopt.spmm_t(A, X)
    np.testing.assert_allclose(one, two, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(two, A.T @ X, rtol=1e-12, atol=1e-12)


def test_public_names_resolve():
    core = ["CSR", "BSR", "spmv", "spmm", "spmm_t", "spgemm", "get_backend", "set_config",
            "get_config", "config_context", "SolverResult"]
    for name in core:
        assert getattr(sparseopt, name) is not None
    with pytest.raises(AttributeError):
        sparseopt.does_not_exist  # noqa: B018
