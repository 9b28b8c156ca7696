r"""Robust PCA: the :func:`robust_pca` function and the :class:`RobustPCA` transformer.

Robust PCA writes a data matrix as the sum of a low-rank matrix and a sparse
matrix of gross errors, :math:`X = L + S`, either by principal component
pursuit (convex, :math:`\min \|L\|_* + \lambda\|S\|_1` s.t. :math:`L + S = X`,
solved by an inexact ALM with a partial SVD) or, when the rank is known, by
accelerated alternating projections.  See :mod:`sparseopt.solvers.rpca` for the
algorithms and ``docs/rpca.md`` for a guide.
"""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from sparseopt.solvers._xp_checks import device_backend, fetch
from sparseopt.solvers._xp_validation import validate_data_xp
from sparseopt.solvers.rpca import (
    METHODS,
    SVD_METHODS,
    RobustPCAResult,
    robust_pca,
)

__all__ = ["RobustPCA", "RobustPCAResult", "robust_pca"]


class RobustPCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    r"""Robust principal component analysis: low-rank plus sparse decomposition.

    ``fit(X)`` splits ``X`` (n_samples x n_features) into ``low_rank_ +
    sparse_`` with :func:`robust_pca` and keeps the leading right singular
    vectors of ``low_rank_`` as ``components_``; ``transform`` projects data on
    that robustly estimated subspace.  Unlike :class:`sklearn.decomposition.PCA`
    the data are **not centred**: centring mixes the outliers into every row
    (the column means of ``S`` are dense), which destroys the sparsity PCP
    relies on.  Centre beforehand if the mean is known to be clean.

    NaN entries of ``X`` are treated as missing: ``fit`` solves the problem on
    the observed entries (``low_rank_`` completes the matrix, ``sparse_`` is
    zero at missing entries) and ``transform`` projects each row by least
    squares on its observed features.

    Parameters
    ----------
    n_components : int or None
        Number of components kept.  Required for ``method="accaltproj"`` (it is
        the rank of ``L``).  For ``"ialm"`` the rank of ``L`` follows from
        ``lam``; ``n_components`` then only truncates ``components_`` (None
        keeps the whole rank found).
    lam : float or None
        Weight of :math:`\|S\|_1` in principal component pursuit; default
        :math:`1/\sqrt{\max(n\_samples, n\_features)}`.
    method : {"ialm", "accaltproj"}
        Convex PCP by inexact ALM, or non-convex accelerated AltProj.
    tol : float
        Stop when :math:`\|X - L - S\|_F/\|X\|_F \le` ``tol`` (observed entries).
    max_iter : int or None
        Iteration cap (default 1000 for IALM, 100 for AccAltProj).
    svd_method : {"auto", "randomized", "lanczos", "full"}
        Singular value thresholding of IALM (see :func:`robust_pca`).
    beta : float or None
        AccAltProj threshold parameter (see :func:`robust_pca`).
    sparse_output : {"auto", True, False}
        Whether ``sparse_`` is a :class:`sparseopt.CSR` (see :func:`robust_pca`).
    random_state : int, RandomState instance or None
        Seed of the randomized SVDs.
    verbose : int
        Log solver progress.

    Attributes
    ----------
    low_rank_ : ndarray of shape (n_samples, n_features)
        The low-rank part ``L`` of the training data.
    sparse_ : ndarray or CSR of shape (n_samples, n_features)
        The sparse part ``S``.
    components_ : ndarray of shape (n_components_, n_features)
        Orthonormal basis of the row space of ``low_rank_``, by decreasing
        singular value.
    singular_values_ : ndarray of shape (n_components_,)
        The matching singular values of ``low_rank_``.
    n_components_ : int
        Number of components kept.
    rank_ : int
        Rank of ``low_rank_``.
    n_iter_ : int
        Solver iterations.
    result_ : RobustPCAResult
        The solver's full result (residual history, timings, ...).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has string feature names.

    See Also
    --------
    robust_pca : the functional interface.
    sklearn.decomposition.PCA : classical (non-robust) PCA.

    References
    ----------
    E. J. Candès, X. Li, Y. Ma and J. Wright, "Robust principal component
    analysis?", Journal of the ACM 58(3), 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from sparseopt.decomposition import RobustPCA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 40))
    >>> X[rng.random(X.shape) < 0.05] += 25.0          # gross corruptions
    >>> rpca = RobustPCA(random_state=0).fit(X)
    >>> rpca.rank_, rpca.transform(X).shape
    (3, (200, 3))
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "lam": [Interval(Real, 0, None, closed="neither"), None],
        "method": [StrOptions(set(METHODS))],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "svd_method": [StrOptions(set(SVD_METHODS))],
        "beta": [Interval(Real, 0, None, closed="neither"), None],
        "sparse_output": [StrOptions({"auto"}), "boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, n_components=None, *, lam=None, method="ialm", tol=1e-7,
                 max_iter=None, svd_method="auto", beta=None, sparse_output="auto",
                 random_state=None, verbose=0):
        self.n_components = n_components
        self.lam = lam
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.svd_method = svd_method
        self.beta = beta
        self.sparse_output = sparse_output
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _seed(self):
        rs = self.random_state
        if rs is None or isinstance(rs, (Integral, np.random.Generator)):
            return rs
        # a legacy RandomState: draw a seed from it (scikit-learn convention)
        return int(rs.randint(np.iinfo(np.int32).max))

    def fit(self, X, y=None):
        """Decompose ``X`` into ``low_rank_ + sparse_`` and learn the subspace.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN marks missing entries.
        y : Ignored

        Returns
        -------
        self : RobustPCA
        """
        self._validate_params()
        nx = device_backend(X=X)
        if nx is not None:
            # device (CuPy) data: decomposed on the device, fitted arrays stay there
            xp = nx.xp
            X, _, _, (any_missing,) = validate_data_xp(
                nx, self, X, reset=True, allow_nan=True,
                extra=lambda X, y: (xp.any(xp.isnan(X)),))
            mask = ~xp.isnan(X) if any_missing else None
        else:
            X = validate_data(self, X, dtype=[np.float64, np.float32],
                              ensure_all_finite="allow-nan", ensure_min_samples=1)
            missing = np.isnan(X)
            mask = ~missing if missing.any() else None
        if self.method == "accaltproj":
            if self.n_components is None:
                raise ValueError("method='accaltproj' needs n_components (the rank)")
            rank = self.n_components
        else:
            rank = None
        res = robust_pca(X, self.lam, method=self.method, rank=rank, mask=mask,
                         tol=self.tol, max_iter=self.max_iter,
                         svd_method=self.svd_method, beta=self.beta,
                         sparse_output=self.sparse_output,
                         random_state=self._seed(), verbose=self.verbose)
        k = res.rank if self.n_components is None else min(self.n_components, res.rank)
        self.result_ = res
        self.low_rank_ = res.low_rank
        self.sparse_ = res.sparse
        if nx is not None:
            self.components_ = res.Vt[:k, :]
            self.singular_values_ = res.s[:k]
        else:
            self.components_ = np.ascontiguousarray(res.Vt[:k])
            self.singular_values_ = np.asarray(res.s[:k])
        self.n_components_ = int(k)
        self.rank_ = int(res.rank)
        self.n_iter_ = int(res.n_iter)
        return self

    @property
    def _n_features_out(self):
        return self.n_components_

    def transform(self, X):
        """Coordinates of ``X`` in the learned subspace, ``X @ components_.T``.

        Rows with NaN entries are projected by least squares on their observed
        features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components_)
        """
        check_is_fitted(self)
        nx = device_backend(X=X, components_=self.components_)
        if nx is not None:
            X = validate_data_xp(nx, self, X, reset=False, allow_nan=True).X
            return _transform_device(nx, X, self.components_)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False,
                          ensure_all_finite="allow-nan")
        W = self.components_.astype(X.dtype, copy=False)
        missing = np.isnan(X)
        if not missing.any():
            return X @ W.T
        rows = missing.any(axis=1)
        out = np.empty((X.shape[0], W.shape[0]), dtype=X.dtype)
        out[~rows] = X[~rows] @ W.T
        for i in np.flatnonzero(rows):
            obs = ~missing[i]
            if not obs.any() or W.shape[0] == 0:
                out[i] = 0
                continue
            out[i] = np.linalg.lstsq(W[:, obs].T, X[i, obs], rcond=None)[0]
        return out

    def inverse_transform(self, X):
        """Map coordinates back to feature space, ``X @ components_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        nx = device_backend(X=X, components_=self.components_)
        if nx is not None:
            xp = nx.xp
            if X.ndim != 2 or X.shape[1] != self.n_components_:
                raise ValueError(f"X must have shape (n_samples, {self.n_components_}), "
                                 f"got {tuple(X.shape)}")
            dt = X.dtype if X.dtype in (xp.float32, xp.float64) else xp.float64
            return xp.astype(X, dt) @ xp.astype(self.components_, dt)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_components_:
            raise ValueError(
                f"X must have shape (n_samples, {self.n_components_}), got {X.shape}")
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return X.astype(dtype, copy=False) @ self.components_.astype(dtype, copy=False)


def _transform_device(nx, X, components):
    """``X @ W.T``; rows with NaN by least squares on their observed features.

    Zeroing a row's unobserved features in ``W.T`` and applying the
    pseudo-inverse (batched over rows) is the minimum-norm least-squares fit
    the host path computes with ``lstsq``.
    """
    xp = nx.xp
    W = xp.astype(components, X.dtype)
    missing = xp.isnan(X)
    (any_missing,) = fetch(nx, xp.any(missing))
    if not any_missing:
        return X @ W.T
    obs = ~missing
    Xo = xp.where(obs, X, 0.0)
    if W.shape[0] == 0:
        return xp.zeros((X.shape[0], 0), dtype=X.dtype)
    A = xp.where(obs[:, :, None], W.T[None, :, :], 0.0)       # (n, p, k)
    coef = xp.linalg.pinv(A) @ Xo[:, :, None]                 # (n, k, 1)
    return coef[:, :, 0]
