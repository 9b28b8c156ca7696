"""Block coordinate descent on device arrays: the backend-generic path without a GPU.

``bcd.least_squares`` / ``logistic`` / ``softmax`` on ``array_api_strict``
arrays (a stand-in device backend whose sparse kernels are the CPU ones) build
device problems, and ``bcd.minimize`` runs its array-API path on them.  For
the rules that choose blocks from the random generator or cyclically, the
device run visits the same blocks as the CPU run with the same seed and the
same float64 arithmetic, so the objective is compared **iteration by
iteration** (to rounding).  The greedy rules take the same argmax on both.
The Jacobi-parallel variant (``rule="jacobi"``, device and NumPy) is checked
against the CPU solution and for monotone decrease.  While a solver runs,
implicit host conversions of strict arrays raise; transfers are counted.

``@pytest.mark.gpu`` tests compare CuPy with NumPy on a device
(``python -m pytest -m gpu tests/test_bcd_gpu.py``).
"""


import numpy as np
import pytest
import scipy.sparse as sp

from sparseopt import bcd
from tests.strict_device import dev, host, strict_device, xps

# the iteration-by-iteration comparisons run a fixed, small number of iterations
pytestmark = pytest.mark.filterwarnings("ignore:bcd.minimize did not converge")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, p = 40, 24
    A = rng.standard_normal((n, p))
    b = rng.standard_normal(n)
    As = sp.csr_array(sp.random_array((n, p), density=0.3, random_state=3)
                      + sp.eye_array(n, p))
    return {"A": A, "As": As, "b": b, "yb": (b > 0).astype(int),
            "yc": rng.integers(0, 3, n)}


CASES = [
    ("least_squares", "A", "b", {"l2": 0.1}, {"rule": "cyclic", "block_size": 4}),
    ("least_squares", "A", "b", {"l1": 1.0}, {"rule": "random", "block_size": 5,
                                             "random_state": 0}),
    ("least_squares", "A", "b", {"bounds": (0, 0.5)},
     {"rule": "lipschitz", "block_size": 3, "random_state": 1, "partition": "avg"}),
    ("least_squares", "A", "b", {}, {"rule": "cyclic", "update": "matrix",
                                     "block_size": 6, "partition": "sort"}),
    ("least_squares", "As", "b", {"l1": 0.1},
     {"rule": "cyclic", "block_size": 4, "partition": "random", "random_state": 2}),
    ("logistic", "A", "yb", {"l2": 1.0}, {"rule": "cyclic", "block_size": 4}),
    ("logistic", "As", "yb", {"l2": 1.0, "l1": 0.1},
     {"rule": "random", "block_size": 4, "random_state": 3}),
    ("softmax", "A", "yc", {"l2": 1.0}, {"rule": "cyclic", "block_size": 6,
                                         "update": "matrix"}),
    ("softmax", "As", "yc", {"l2": 1.0, "l1": 0.05}, {"rule": "random", "block_size": 5,
                                                      "random_state": 4}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[4]['rule']}")
def test_sequential_rules_match_cpu_iteration_by_iteration(data, case):
    ctor, a, y, pkw, skw = case
    make = getattr(bcd, ctor)
    ref = bcd.minimize(make(data[a], data[y], **pkw), max_iter=300, tol=1e-9, **skw)
    with strict_device() as be:
        prob = make(dev(data[a]), dev(data[y]), **pkw)
        res = bcd.minimize(prob, max_iter=300, tol=1e-9, **skw)
    assert res.n_iter == ref.n_iter
    scale = max(1.0, abs(ref.objective[0]))
    np.testing.assert_allclose(res.objective, ref.objective, rtol=0, atol=1e-12 * scale)
    np.testing.assert_array_equal(res.n_updated, ref.n_updated)
    np.testing.assert_allclose(host(res.x), ref.x, rtol=1e-10, atol=1e-12)
    assert res.x.dtype == xps.float64
    # one transfer per check (one sweep over the blocks), plus set-up
    n_checks = len(res.history["stop_crit"]) - 1
    assert be.n_fetch <= n_checks + 12


@pytest.mark.parametrize("rule,l1", [("gs", 0.5), ("gsl", 0.5), ("gsd", 0.0),
                                     ("gsq", 0.0), ("gsq", 0.5)])
@pytest.mark.parametrize("sparse", [False, True])
def test_greedy_block_rules_match_cpu(data, rule, l1, sparse):
    A = data["As"] if sparse else data["A"]
    ref = bcd.minimize(bcd.least_squares(A, data["b"], l1=l1), rule=rule, block_size=4,
                       max_iter=150, tol=1e-9)
    with strict_device() as be:
        res = bcd.minimize(bcd.least_squares(dev(A), dev(data["b"]), l1=l1), rule=rule,
                           block_size=4, max_iter=150, tol=1e-9)
    assert res.n_iter == ref.n_iter
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(res.x), ref.x, rtol=1e-10, atol=1e-12)
    # the greedy rules fetch the chosen block: one transfer per iteration
    assert be.n_fetch <= 2 * res.n_iter + 12


def test_greedy_single_coordinates_and_softmax_gsq(data):
    ref = bcd.minimize(bcd.softmax(data["As"], data["yc"], l2=1.0, l1=0.05), rule="gsq",
                       block_size=6, max_iter=100, tol=1e-9)
    ref1 = bcd.minimize(bcd.least_squares(data["A"], data["b"], l1=0.5), rule="gsl",
                        fast=False, max_iter=100, tol=1e-9)
    with strict_device():
        res = bcd.minimize(bcd.softmax(dev(data["As"]), dev(data["yc"]), l2=1.0, l1=0.05),
                           rule="gsq", block_size=6, max_iter=100, tol=1e-9)
        res1 = bcd.minimize(bcd.least_squares(dev(data["A"]), dev(data["b"]), l1=0.5),
                            rule="gsl", max_iter=100, tol=1e-9)
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res1.objective, ref1.objective, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("update", ["lipschitz", "matrix"])
@pytest.mark.parametrize("where", ["numpy", "strict"])
def test_jacobi_converges_to_the_cpu_solution(data, update, where):
    l1 = 0.0 if update == "matrix" else 0.5
    ref = bcd.minimize(bcd.softmax(data["As"], data["yc"], l2=1.0, l1=l1), rule="cyclic",
                       block_size=6, max_iter=20000, tol=1e-11)
    kw = dict(rule="jacobi", update=update, block_size=6, max_iter=20000, tol=1e-11)
    if where == "numpy":
        res = bcd.minimize(bcd.softmax(data["As"], data["yc"], l2=1.0, l1=l1), **kw)
        x = res.x
        assert isinstance(x, np.ndarray)
    else:
        with strict_device() as be:
            res = bcd.minimize(bcd.softmax(dev(data["As"]), dev(data["yc"]), l2=1.0, l1=l1),
                               **kw)
        x = host(res.x)
        assert be.n_fetch <= res.n_iter + 12   # one transfer per iteration (its check)
    assert res.converged
    # l2 = 1 makes F 1-strongly convex, so ‖x − x*‖ ≤ 2‖G(x)‖ for the prox-gradient
    # map G (unit step bounded by the L_i); both runs stop at ‖G‖∞ ≤ 1e-11 ‖G(0)‖∞
    # with ‖G(0)‖∞ = O(10) here: 1e-8 leaves room for √p and rounding
    np.testing.assert_allclose(x, ref.x, rtol=0, atol=1e-8)
    # H ⪯ c D: every Jacobi step decreases F
    assert np.all(np.diff(res.objective) <= 1e-12 * abs(res.objective[0]))
    assert 1.0 <= res.extra["jacobi_constant"] <= res.extra["n_blocks"]


def test_x0_float32_bounds_and_inputs_unchanged(data):
    A32, b32 = data["A"].astype(np.float32), data["b"].astype(np.float32)
    x0 = np.full(24, 0.1)
    ref = bcd.minimize(bcd.least_squares(A32, b32, bounds=(-0.2, 0.3)), rule="cyclic",
                       block_size=4, x0=x0, max_iter=200, tol=1e-8)
    with strict_device():
        Ad, bd, x0d = dev(A32), dev(b32), dev(x0)
        res = bcd.minimize(bcd.least_squares(Ad, bd, bounds=(-0.2, 0.3)), rule="cyclic",
                           block_size=4, x0=x0d, max_iter=200, tol=1e-8)
    assert res.x.dtype == xps.float32
    # float32 data cast to float64 on both paths: same iterates to rounding
    np.testing.assert_allclose(host(res.x), ref.x, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(host(Ad), A32)
    np.testing.assert_array_equal(host(x0d), x0)
    assert np.all(host(res.x) >= -0.2) and np.all(host(res.x) <= 0.3)


def test_device_only_limits_and_bad_input(data):
    with strict_device():
        prob = bcd.least_squares(dev(data["A"]), dev(data["b"]), l1=0.1)
        for kw, msg in [({"partition": "variable"}, "CPU only"),
                        ({"update": "newton"}, "CPU only"),
                        ({"update": "matrix"}, "CPU only"),
                        ({"fast": True}, "CPU only"),
                        ({"active_set": True}, "CPU only"),
                        ({"rule": "nope"}, "unknown rule")]:
            with pytest.raises(ValueError, match=msg):
                bcd.minimize(prob, **kw)
        with pytest.raises(TypeError, match=r"A is a array_api_strict \(device\)"):
            bcd.least_squares(dev(data["A"]), data["b"])
        bad = data["b"].copy()
        bad[0] = np.inf
        with pytest.raises(ValueError, match="b contains infinity"):
            bcd.least_squares(dev(data["A"]), dev(bad))
        with pytest.raises(ValueError, match="two classes"):
            bcd.logistic(dev(data["A"]), dev(data["yc"]))
        with pytest.raises(ValueError, match="l2"):
            bcd.least_squares(dev(data["A"]), dev(data["b"]), l2=-1.0)
    with pytest.raises(ValueError, match="jacobi"):
        bcd.minimize(bcd.quadratic(sp.eye_array(3, format="csr"), np.ones(3)),
                     rule="jacobi")


def test_convergence_warning_and_callback(data):
    from sklearn.exceptions import ConvergenceWarning

    with strict_device():
        prob = bcd.least_squares(dev(data["A"]), dev(data["b"]))
        with pytest.warns(ConvergenceWarning):
            res = bcd.minimize(prob, rule="cyclic", block_size=4, max_iter=5)
        assert res.n_iter == 5 and not res.converged
        calls = []

        def stop(r):
            calls.append(r.n_iter)
            return len(calls) == 2

        res = bcd.minimize(prob, rule="cyclic", block_size=4, check_every=3,
                           callback=stop)
    assert calls == [3, 6] and res.n_iter == 6 and res.message == "stopped by callback"


@pytest.mark.gpu
@pytest.mark.parametrize("rule,update", [("cyclic", "lipschitz"), ("random", "matrix"),
                                         ("gsq", "lipschitz"), ("jacobi", "lipschitz"),
                                         ("jacobi", "matrix")])
def test_cupy_matches_numpy(data, rule, update):
    cp = pytest.importorskip("cupy")
    from sparseopt.gpu import to_device

    for A in (data["A"], data["As"]):
        Ad = to_device(A) if sp.issparse(A) else cp.asarray(A)
        for ctor, y in ((bcd.least_squares, "b"), (bcd.softmax, "yc")):
            kw = dict(rule=rule, update=update, block_size=6, max_iter=400, tol=1e-10,
                      random_state=0)
            ref = bcd.minimize(ctor(A, data[y], l2=1.0), **kw)
            res = bcd.minimize(ctor(Ad, cp.asarray(data[y]), l2=1.0), **kw)
            assert isinstance(res.x, cp.ndarray)
            np.testing.assert_allclose(cp.asnumpy(res.x), ref.x, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(res.objective[-1], ref.objective[-1], rtol=1e-10)
