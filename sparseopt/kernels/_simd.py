"""Row operations of the CSR products in vector registers, as Numba intrinsics.

The CSR products spend their time on rows of a dense ``X``: an output row is
``sum_k data[k] * X[indices[k], :]``, a scatter adds ``a * X[i, :]`` to a row of
the output.  Numba compiles with LLVM's SLP vectorizer off
(``NUMBA_SLP_VECTORIZE=0``), so a loop over 8 columns, which LLVM unrolls
before its loop vectorizer runs, is left as 8 scalar multiply-adds; a loop
over a run-time number of columns vectorizes, but keeps the output row in
memory (a load and a store per stored entry, as ``out`` may alias ``X``) and
sends 8 columns down its scalar remainder path.

These intrinsics emit LLVM vector IR that goes over the columns by panels of
32, then 8, then single columns; within a panel the sum (gather) or the row of
``X`` (scatter) lives in a register across the row's stored entries.  The
column panels are looped over inside the intrinsic, not by an ``njit``
helper: one inlined with ``inline="always"`` made the split scatter of
``A.T @ X`` (short runs of entries) 10x slower, apparently from Numba's
per-call handling of the array arguments, and an ordinary call costs too
much per row.

Each column's arithmetic is exactly the sequential ``acc += data[k] * X[j, c]``
in storage order that scipy's CSR kernel performs, without fused
multiply-adds.  ``sparseopt.spmm`` on a 2-core Zen 5, 20000 x 20000 uniform
CSR at 0.1 %, 2 threads, against the loop kernels before: ``k = 8`` float32
0.44-0.47 -> 0.16-0.17 ms (MKL 0.23 ms), ``k = 64`` float64 2.7-2.9 ->
1.8-1.9 ms (MKL 3.0-3.1 ms).

Operands are checked when Numba types a call: ``X`` and ``out`` must be
2-D C-ordered arrays of ``data``'s float dtype (the CPU backend makes them so).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
# column panels, widest first; the last width must be 1
_PANELS = (32, 8, 1)


def _check_operands(name, data, X, out):
    if not isinstance(data, types.Array) or data.dtype not in (types.float32, types.float64):
        raise TypingError(f"{name}: data must be a float32 or float64 array, got {data}")
    for label, m in (("X", X), ("out", out)):
        if not (isinstance(m, types.Array) and m.ndim == 2 and m.layout == "C"
                and m.dtype == data.dtype):
            raise TypingError(f"{name}: {label} must be a 2-D C-ordered {data.dtype} array, "
                              f"got {m}")


def _i64(n):
    return ir.Constant(_I64, n)


class _RowOperands:
    """LLVM views of ``(indices, data, X, out, i, k0, k1, ...)`` for one call."""

    def __init__(self, context, builder, signature, args):
        self.context, self.builder = context, builder
        tys = signature.args
        self.types = tys[:4]
        self.arrays = [context.make_array(t)(context, builder, v)
                       for t, v in zip(tys[:4], args[:4], strict=True)]
        self.elt = context.get_data_type(tys[1].dtype)
        self.align = tys[1].dtype.bitwidth // 8
        self.index_signed = tys[0].dtype.signed
        self.i, self.k0, self.k1 = (context.cast(builder, v, t, types.int64)
                                    for v, t in zip(args[4:7], tys[4:7], strict=True))
        self.n_vec = builder.extract_value(self.arrays[2].shape, 1)

    def column(self, k):
        """``indices[k]`` as a 64-bit integer."""
        b = self.builder
        j = b.load(cgutils.get_item_pointer(self.context, b, self.types[0], self.arrays[0], [k]))
        if j.type.width < 64:
            j = b.sext(j, _I64) if self.index_signed else b.zext(j, _I64)
        return j

    def value(self, k):
        """``data[k]``."""
        b = self.builder
        return b.load(cgutils.get_item_pointer(self.context, b, self.types[1], self.arrays[1], [k]))

    def lane_type(self, lanes):
        return self.elt if lanes == 1 else ir.VectorType(self.elt, lanes)

    def broadcast(self, scalar, lanes):
        if lanes == 1:
            return scalar
        b = self.builder
        vec = self.lane_type(lanes)
        lane0 = b.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(_I32, 0))
        mask = ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes)
        return b.shuffle_vector(lane0, ir.Constant(vec, ir.Undefined), mask)

    def panel(self, which, row, col, lanes):
        """Pointer to ``X[row, col:col + lanes]`` (``which=2``) or ``out[...]`` (3)."""
        ptr = cgutils.get_item_pointer(self.context, self.builder, self.types[which],
                                       self.arrays[which], [row, col])
        return self.builder.bitcast(ptr, self.lane_type(lanes).as_pointer())

    def load(self, ptr):
        return self.builder.load(ptr, align=self.align)

    def store(self, value, ptr):
        self.builder.store(value, ptr, align=self.align)

    def over_panels(self, emit):
        """``emit(col, lanes)`` for every panel of the columns, widest first."""
        b = self.builder
        start = _i64(0)
        for lanes in _PANELS:
            stop = b.sub(self.n_vec, b.urem(self.n_vec, _i64(lanes))) if lanes > 1 else self.n_vec
            with cgutils.for_range_slice(b, start, stop, _i64(lanes)) as (col, _):
                emit(col, lanes)
            start = stop

    def over_entries(self, emit):
        """``emit(k)`` for ``k`` in ``range(k0, k1)``."""
        with cgutils.for_range_slice(self.builder, self.k0, self.k1, _i64(1)) as (k, _):
            emit(k)


@intrinsic
def gather_row(typingctx, indices, data, X, out, i, k0, k1):
    """``out[i] = sum(data[k] * X[indices[k]] for k in range(k0, k1))``.

    Per panel of columns the sum is held in a register, added to in storage
    order, and stored once.
    """
    _check_operands("gather_row", data, X, out)

    def codegen(context, builder, signature, args):
        ops = _RowOperands(context, builder, signature, args)

        def panel(col, lanes):
            acc = cgutils.alloca_once_value(builder, ir.Constant(ops.lane_type(lanes), None))

            def entry(k):
                x = ops.load(ops.panel(2, ops.column(k), col, lanes))
                term = builder.fmul(ops.broadcast(ops.value(k), lanes), x)
                builder.store(builder.fadd(builder.load(acc), term), acc)

            ops.over_entries(entry)
            ops.store(builder.load(acc), ops.panel(3, ops.i, col, lanes))

        ops.over_panels(panel)
        return context.get_dummy_value()

    return types.void(indices, data, X, out, i, k0, k1), codegen


@intrinsic
def scatter_row(typingctx, indices, data, X, out, i, k0, k1, shift):
    """``out[indices[k] - shift] += data[k] * X[i]`` for ``k`` in ``range(k0, k1)``.

    Per panel of columns the panel of ``X[i]`` is held in a register.
    """
    _check_operands("scatter_row", data, X, out)

    def codegen(context, builder, signature, args):
        ops = _RowOperands(context, builder, signature, args)
        offset = context.cast(builder, args[7], signature.args[7], types.int64)

        def panel(col, lanes):
            x = ops.load(ops.panel(2, ops.i, col, lanes))

            def entry(k):
                dst = ops.panel(3, builder.sub(ops.column(k), offset), col, lanes)
                term = builder.fmul(ops.broadcast(ops.value(k), lanes), x)
                ops.store(builder.fadd(ops.load(dst), term), dst)

            ops.over_entries(entry)

        ops.over_panels(panel)
        return context.get_dummy_value()

    return types.void(indices, data, X, out, i, k0, k1, shift), codegen
