"""A lazy transpose of a CSR or BSR matrix (what scipy would call a CSC view)."""


class TransposedView:
    """``A.T`` without moving data: products dispatch to the transposed kernels.

    Parameters
    ----------
    base : CSR or BSR
        The matrix being transposed.
    """

    ndim = 2
    __array_priority__ = 10.1

    def __init__(self, base):
        self.base = base
        self.shape = (base.shape[1], base.shape[0])
        self.format = f"{base.format}.T"

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def nnz(self):
        return self.base.nnz

    @property
    def T(self):
        return self.base

    def __repr__(self):
        return f"<transpose of {self.base!r}>"

    def __matmul__(self, other):
        from sparseopt.linalg import matmul

        return matmul(self, other)

    def to_scipy(self):
        """The transpose as a scipy sparse array (CSC for a CSR base, no copy)."""
        return self.base.to_scipy().T

    def todense(self):
        return self.base.todense().T

    toarray = todense
