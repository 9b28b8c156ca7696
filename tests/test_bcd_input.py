"""BCD: edge cases, dtypes, sparse input, bad input, warnings and callbacks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from sparseopt import bcd


def _data(n=20, p=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)), rng.standard_normal(n)


def test_one_sample_one_feature():
    A = np.array([[2.0]])
    b = np.array([3.0])
    res = bcd.minimize(bcd.least_squares(A, b), tol=1e-12)
    assert res.converged
    np.testing.assert_allclose(res.x, [1.5], rtol=1e-12)
    # one sample, several features: minimum at A x = b (objective 0)
    A = np.array([[1.0, 2.0, -1.0]])
    res = bcd.minimize(bcd.least_squares(A, b), rule="gsq", tol=1e-12, max_iter=10000)
    np.testing.assert_allclose(A @ res.x, b, rtol=1e-10)


def test_all_zero_targets_start_optimal():
    A, _ = _data()
    res = bcd.minimize(bcd.least_squares(A, np.zeros(20), l1=1.0))
    assert res.converged and res.n_iter == 0
    np.testing.assert_array_equal(res.x, 0)


def test_l1_above_lambda_max_gives_zero():
    A, b = _data()
    lmax = np.abs(A.T @ b).max()
    res = bcd.minimize(bcd.least_squares(A, b, l1=1.01 * lmax))
    assert res.converged and res.n_iter == 0
    np.testing.assert_array_equal(res.x, 0)


@pytest.mark.parametrize("sparse_input", [False, True])
def test_float32_follows_input(sparse_input):
    A, b = _data()
    A32, b32 = A.astype(np.float32), b.astype(np.float32)
    Ain = sp.csr_array(A32) if sparse_input else A32
    res = bcd.minimize(bcd.least_squares(Ain, b32), rule="gsl", tol=1e-6,
                       max_iter=10000)
    assert res.x.dtype == np.float32
    ref = bcd.minimize(bcd.least_squares(A, b), rule="gsl", tol=1e-6, max_iter=10000)
    assert ref.x.dtype == np.float64
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_input_index_dtypes(index_dtype):
    A, b = _data(40, 10)
    A[np.abs(A) < 0.8] = 0.0
    S = sp.csr_array(A)
    S.indptr = S.indptr.astype(index_dtype)
    S.indices = S.indices.astype(index_dtype)
    rs = bcd.minimize(bcd.least_squares(S, b, l1=0.5), rule="gsq", tol=1e-10,
                      max_iter=100000)
    rd = bcd.minimize(bcd.least_squares(A, b, l1=0.5), rule="gsq", tol=1e-10,
                      max_iter=100000)
    assert rs.extra["fast_path"] and not rd.extra["fast_path"]
    np.testing.assert_allclose(rs.objective[-1], rd.objective[-1], rtol=1e-10)
    # the scipy.sparse COO / CSC formats are accepted as well
    rc = bcd.minimize(bcd.least_squares(sp.coo_array(A), b, l1=0.5), rule="gsq",
                      tol=1e-10, max_iter=100000)
    np.testing.assert_allclose(rc.x, rs.x, rtol=1e-12)


def test_inputs_not_modified():
    A, b = _data()
    S = sp.csr_array(np.where(np.abs(A) > 0.5, A, 0.0))
    A0, b0, S0 = A.copy(), b.copy(), S.copy()
    x0 = np.full(6, 0.1)
    x00 = x0.copy()
    for M in (A, S):
        bcd.minimize(bcd.least_squares(M, b, l1=0.2), x0=x0, rule="gsq",
                     partition="variable", block_size=2, update="newton", tol=1e-8,
                     max_iter=2000)
        bcd.minimize(bcd.least_squares(M, b, l1=0.2), x0=x0, rule="gsl", tol=1e-8,
                     max_iter=2000)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(x0, x00)
    np.testing.assert_array_equal(S.data, S0.data)
    np.testing.assert_array_equal(S.indices, S0.indices)


def test_x0_warm_start_and_projection():
    A, b = _data()
    x_star = np.linalg.lstsq(A, b, rcond=None)[0]
    res = bcd.minimize(bcd.least_squares(A, b), x0=x_star, tol=1e-8)
    assert res.n_iter == 0 and res.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = bcd.minimize(bcd.least_squares(A, b, bounds=(0, 1)), x0=np.full(6, 5.0),
                           max_iter=1, tol=0)
    assert (res.x <= 1).all() and (res.x >= 0).all()
    assert np.isfinite(res.objective).all()


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data(bad):
    A, b = _data()
    A2 = A.copy()
    A2[0, 0] = bad
    with pytest.raises(ValueError, match="A contains"):
        bcd.least_squares(A2, b)
    with pytest.raises(ValueError, match="A contains"):
        bcd.least_squares(sp.csr_array(A2), b)
    b2 = b.copy()
    b2[1] = bad
    with pytest.raises(ValueError, match="b contains"):
        bcd.least_squares(A, b2)
    with pytest.raises(ValueError, match="x0"):
        bcd.minimize(bcd.least_squares(A, b), x0=np.full(6, bad))


def test_wrong_shapes():
    A, b = _data()
    with pytest.raises(ValueError, match="b has 19 entries"):
        bcd.least_squares(A, b[:-1])
    with pytest.raises(ValueError, match="A must have 2"):
        bcd.least_squares(b, b)
    with pytest.raises(ValueError, match="x0 must have shape"):
        bcd.minimize(bcd.least_squares(A, b), x0=np.zeros(5))
    with pytest.raises(ValueError, match="y must have shape"):
        bcd.logistic(A, np.ones(3))
    with pytest.raises(ValueError, match="two classes"):
        bcd.logistic(A, np.ones(20))
    with pytest.raises(ValueError, match="c has"):
        bcd.quadratic(sp.eye_array(3, format="csr"), np.ones(4))


def test_bad_regularisation_and_parameters():
    A, b = _data()
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        bcd.least_squares(A, b, l1=-1.0)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        bcd.logistic(A, b > 0, l2=-1.0)
    with pytest.raises(ValueError, match="bounds"):
        bcd.least_squares(A, b, bounds=(1.0, 0.0))
    prob = bcd.least_squares(A, b)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        bcd.minimize(prob, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        bcd.minimize(prob, max_iter=-3)
    with pytest.raises(ValueError, match="block_size"):
        bcd.minimize(prob, block_size=0)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        bcd.label_propagation(sp.eye_array(3, format="csr"), np.array([0, 1, -1]),
                              reg=-1.0)


def test_unknown_names():
    A, b = _data()
    prob = bcd.least_squares(A, b)
    with pytest.raises(ValueError, match="unknown rule 'gauss'"):
        bcd.minimize(prob, rule="gauss")
    with pytest.raises(ValueError, match="unknown update 'exact-ish'"):
        bcd.minimize(prob, update="exact-ish")
    with pytest.raises(ValueError, match="unknown partition 'stripes'"):
        bcd.minimize(prob, partition="stripes")
    with pytest.raises(ValueError, match="fast must be"):
        bcd.minimize(prob, fast="yes")


def test_blocks_must_partition_the_variables():
    A, b = _data()
    prob = bcd.least_squares(A, b)
    with pytest.raises(ValueError, match="overlap"):
        bcd.minimize(prob, partition=[[0, 1, 2], [2, 3, 4, 5]])
    with pytest.raises(ValueError, match="do not cover"):
        bcd.minimize(prob, partition=[[0, 1, 2], [3, 4]])
    with pytest.raises(ValueError, match="outside"):
        bcd.minimize(prob, partition=[[0, 1, 2], [3, 4, 5, 6]])
    with pytest.raises(ValueError, match="non-empty"):
        bcd.minimize(prob, partition=[[0, 1, 2, 3, 4, 5], []])


def test_problem_missing_methods():
    A, b = _data()
    prob = bcd.custom(lambda x: 0.5 * np.sum((A @ x - b) ** 2),
                      lambda x: A.T @ (A @ x - b), 6, np.sum(A * A, axis=0))
    with pytest.raises(ValueError, match=r"update='newton' needs problem\.hessian"):
        bcd.minimize(prob, update="newton", block_size=2)
    with pytest.raises(ValueError, match=r"rule='gsd' needs problem\.diag_bound"):
        bcd.minimize(prob, rule="gsd", partition="variable", block_size=2)
    with pytest.raises(ValueError, match="needs a problem with a sparse Hessian"):
        bcd.minimize(prob, partition="tree")

    class NotAProblem:
        n_vars = 3

    with pytest.raises(TypeError, match="missing init_state"):
        bcd.minimize(NotAProblem())


def test_message_passing_needs_forest_blocks():
    W = sp.csr_array(np.ones((4, 4)) - np.eye(4))
    prob = bcd.label_propagation(W, np.array([0, 1, -1, -1]))
    with pytest.raises(ValueError, match="needs forest blocks"):
        bcd.minimize(prob, update="message-passing", partition="order", block_size=2)
    # a user block with a cycle is detected when it is solved
    W = sp.csr_array(np.ones((6, 6)) - np.eye(6))
    prob = bcd.label_propagation(W, np.array([0, 0, 1, -1, -1, -1]))
    with pytest.raises(ValueError, match="has a cycle"):
        bcd.minimize(prob, update="message-passing", partition=[[0, 1, 2]])
    with pytest.raises(ValueError, match="smooth problems only"):
        bcd.minimize(bcd.label_propagation(W, np.array([0, 0, 1, -1, -1, -1]), l1=0.1),
                     update="message-passing", partition="tree")


def test_active_set_needs_nonsmooth_and_variable_blocks():
    A, b = _data()
    with pytest.raises(ValueError, match="L1 term or bounds"):
        bcd.minimize(bcd.least_squares(A, b), active_set=True, partition="variable")
    with pytest.raises(ValueError, match="partition='variable'"):
        bcd.minimize(bcd.least_squares(A, b, l1=1.0), active_set=True)


def test_label_propagation_bad_graph():
    with pytest.raises(ValueError, match="symmetric"):
        bcd.label_propagation(sp.csr_array(np.triu(np.ones((3, 3)), 1)),
                              np.array([0, 1, -1]))
    with pytest.raises(ValueError, match="non-negative"):
        bcd.label_propagation(sp.csr_array(-(np.ones((3, 3)) - np.eye(3))),
                              np.array([0, 1, -1]))
    with pytest.raises(ValueError, match="two classes"):
        bcd.label_propagation(sp.csr_array(np.ones((3, 3))), np.array([0, 0, -1]))
    with pytest.raises(ValueError, match="labels must be an int array"):
        bcd.label_propagation(sp.csr_array(np.ones((3, 3))), np.array([0.0, 1.0, -1]))


def test_zero_column_needs_l2():
    A, b = _data()
    A[:, 2] = 0.0
    with pytest.raises(ValueError, match="L_i = 0"):
        bcd.minimize(bcd.least_squares(A, b))
    res = bcd.minimize(bcd.least_squares(A, b, l2=1e-3), tol=1e-8, max_iter=10000)
    assert res.converged and res.x[2] == 0.0


# ----------------------------------------------------------------- run control
@pytest.mark.parametrize("fast", [True, False])
def test_convergence_warning_at_max_iter(fast):
    A, b = _data()
    A = sp.csr_array(A)
    with pytest.warns(ConvergenceWarning, match="did not converge in 3 iterations"):
        res = bcd.minimize(bcd.least_squares(A, b), rule="gsl", max_iter=3,
                           tol=1e-12, fast=fast)
    assert not res.converged and res.n_iter == 3
    assert res.objective.shape == (4,)
    assert res.message == "max_iter reached"


def test_callback_stops_the_run():
    A, b = _data()
    seen = []

    def cb(r):
        seen.append(r.n_iter)
        return r.n_iter >= 5

    res = bcd.minimize(bcd.least_squares(A, b), callback=cb, tol=1e-14,
                       max_iter=1000)
    assert res.n_iter == 5 and seen == [1, 2, 3, 4, 5]
    assert res.message == "stopped by callback" and not res.converged

    def cb_stop(r):
        raise StopIteration

    res = bcd.minimize(bcd.least_squares(sp.csr_array(A), b), callback=cb_stop,
                       check_every=4, tol=1e-14, max_iter=1000)
    assert res.n_iter == 4 and res.extra["fast_path"]


def test_verbose_logs(caplog):
    A, b = _data()
    with caplog.at_level("INFO", logger="sparseopt.bcd"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            bcd.minimize(bcd.least_squares(A, b), verbose=2, max_iter=3, tol=0)
    assert any("iter 3" in r.getMessage() for r in caplog.records)


def test_result_fields_and_repr():
    A, b = _data()
    res = bcd.minimize(bcd.least_squares(A, b, l1=0.5), partition="variable",
                       block_size=2, rule="gsq", update="matrix", tol=1e-9,
                       max_iter=1000)
    assert res.rule == "gsq" and res.update == "matrix" and res.partition == "variable"
    assert res.active_set_iter is not None and res.support_size == np.count_nonzero(res.x)
    assert np.all(np.diff(res.time) >= 0) and np.all(np.diff(res.n_updated) >= 0)
    assert "objective" in res.history and "stop_crit" in res.history
    assert "BCDResult(" in repr(res)


def test_public_module_names():
    import sparseopt

    assert sparseopt.bcd.minimize is bcd.minimize
    for name in ("least_squares", "logistic", "softmax", "label_propagation",
                 "quadratic", "custom", "BCDResult"):
        assert hasattr(bcd, name)
