"""A pure-numpy ONNX interpreter for Piper voices, for platforms without onnxruntime (musl).

:class:`NumpySession` has the shape of ``onnxruntime.InferenceSession`` that Piper uses
(``run``, ``get_inputs``, ``get_outputs``), so ``piper.PiperVoice(session=NumpySession(...))``
works unchanged. It is a generic interpreter of ONNX graphs (default domain only; the operator
variants of opsets 6 to 18 are tested against onnxruntime), tuned for the VITS graphs Piper
exports:

* The graph is compiled once, at load: every node is checked against the operator table (an
  unknown operator raises :class:`UnsupportedOpError` there, never at run time), constant
  subgraphs are folded, LeakyRelu/Relu feeding convolutions is fused into the convolutions'
  input windows, and chains of element-wise ops after a convolution (residual Add, mask Mul,
  Div by a constant, Tanh, ...) are fused into its output blocks. The result is a flat list of
  prepared closures over integer value slots, with the slots of dead values freed as soon as
  their last reader ran, and element-wise ops writing into inputs that are dead afterwards.
* Conv (1-D) and ConvTranspose (1-D) run as blocked GEMMs in time-major layout (the layout in
  which OpenBLAS's SGEMM is fastest for these shapes), with weights re-laid once at load;
  ConvTranspose is a polyphase GEMM whose output blocks need no interleaving. Convolution
  outputs are returned as transposed views of their time-major buffers, which every other op
  accepts as ordinary arrays; element-wise ops keep that layout.
* Work is split over the session's own threads (``threads``), never OpenBLAS's: during
  :meth:`NumpySession.run` BLAS is pinned to one thread with ``threadpoolctl`` when it is
  installed. Without threadpoolctl, set ``OPENBLAS_NUM_THREADS=1`` in the environment: an
  OpenBLAS thread pool on a contended CPU makes each of the thousands of small GEMMs wait for
  scheduler ticks.
* ``RandomNormalLike`` draws from a ``numpy.random.Generator``; ``run(seed=...)`` makes a run
  reproducible, and ``run(noise={tensor name: array})`` replaces the draws outright (used to
  compare against onnxruntime with the same noise).

Not done (yet): memoizing shape-only subgraphs per input length. About 40 % of a Piper graph's
nodes compute only shapes, but after the duration predictor every shape depends on the
predicted frame count, so such a cache would hit only for repeated identical sentences.

The module imports only numpy and the standard library (threadpoolctl optionally).
"""

from __future__ import annotations  # noqa: TID251 - the musl proof's CPython 3.13 imports it

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
import importlib
import itertools
import math
import os
from pathlib import Path
import threading
from typing import Any, Final, Self
import weakref

import numpy as np
from numpy.lib.stride_tricks import as_strided
import numpy.typing as npt

from .onnx_reader import DataType, Node, OnnxFormatError, ValueInfo, load_model, numpy_dtype

__all__ = [
    "InvalidInputError",
    "ModelFormatError",
    "NodeArg",
    "NumpyBackendError",
    "NumpySession",
    "OpExecutionError",
    "SessionClosedError",
    "UnsupportedOpError",
    "supported_ops",
]

type Array = npt.NDArray[Any]
type Handler = Callable[..., Any]


# -- errors -------------------------------------------------------------------------------------


class NumpyBackendError(Exception):
    """Base class of the errors raised by the numpy backend."""


class UnsupportedOpError(NumpyBackendError):
    """The model uses an operator (or an operator variant) this backend does not implement."""

    def __init__(self, op: str, detail: str = "", *, node: str = "", domain: str = "") -> None:
        """Describe operator ``op`` (of ``domain``) at ``node``; ``detail`` says what is missing."""
        self.op = op
        self.node = node
        self.domain = domain
        self.detail = detail
        qualified = f"{domain}::{op}" if domain else op
        where = f" (node {node!r})" if node else ""
        reason = f": {detail}" if detail else ""
        super().__init__(f"unsupported ONNX operator {qualified}{where}{reason}")


class ModelFormatError(NumpyBackendError, OnnxFormatError):
    """The model file is not a well-formed ONNX model, or its graph is inconsistent."""


class InvalidInputError(NumpyBackendError, ValueError):
    """``run`` was called with missing, unknown or ill-typed inputs, outputs or noise."""


class OpExecutionError(NumpyBackendError):
    """A node failed while running (for example shapes that do not broadcast)."""

    def __init__(self, op: str, node: str, error: BaseException) -> None:
        """Wrap ``error`` raised by node ``node`` of type ``op``."""
        self.op = op
        self.node = node
        super().__init__(f"{op} node {node!r} failed: {type(error).__name__}: {error}")


class SessionClosedError(NumpyBackendError):
    """The session was used after :meth:`NumpySession.close`."""


@dataclass(frozen=True, slots=True)
class NodeArg:
    """A graph input or output, as ``onnxruntime.NodeArg`` describes it."""

    name: str
    type: str
    shape: tuple[int | str | None, ...]


_TYPE_NAMES: Final[dict[int, str]] = {
    DataType.FLOAT: "float",
    DataType.UINT8: "uint8",
    DataType.INT8: "int8",
    DataType.UINT16: "uint16",
    DataType.INT16: "int16",
    DataType.INT32: "int32",
    DataType.INT64: "int64",
    DataType.STRING: "string",
    DataType.BOOL: "bool",
    DataType.FLOAT16: "float16",
    DataType.DOUBLE: "double",
    DataType.UINT32: "uint32",
    DataType.UINT64: "uint64",
}


def _dtype_of(data_type: int, what: str) -> np.dtype[Any]:
    try:
        return numpy_dtype(data_type).newbyteorder("=")
    except OnnxFormatError as err:
        raise UnsupportedOpError(what, str(err)) from err


# -- BLAS thread pinning --------------------------------------------------------------------------


def _import_threadpoolctl() -> Any:
    try:
        return importlib.import_module("threadpoolctl")
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        return None


class _BlasPin:
    """Process-wide "BLAS uses one thread" while at least one session runs (reference counted)."""

    _lock = threading.Lock()
    _depth = 0
    _limiter: Any = None
    _controller: Any = None
    _module: Any = None
    _loaded = False

    @classmethod
    def acquire(cls) -> None:
        with cls._lock:
            if not cls._loaded:
                cls._module = _import_threadpoolctl()
                cls._loaded = True
            if cls._module is None:
                return
            if cls._depth == 0:
                if cls._controller is None:
                    cls._controller = cls._module.ThreadpoolController()
                cls._limiter = cls._controller.limit(limits=1, user_api="blas")
            cls._depth += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            if cls._module is None or cls._depth == 0:
                return
            cls._depth -= 1
            if cls._depth == 0 and cls._limiter is not None:
                cls._limiter.restore_original_limits()
                cls._limiter = None


# -- compile-time structures ---------------------------------------------------------------------


class _RunState:
    """Per-run data that the random ops read (set by ``run`` under the session lock)."""

    __slots__ = ("noise", "rng", "seeded")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.seeded = False
        self.noise: Mapping[str, Array] = {}


class _Pool:
    """Runs a convolution's row chunks on the calling thread plus the session's workers.

    The chunks are pulled from a shared counter, so a worker that the OS does not schedule
    promptly (a busy machine) delays the run by at most one chunk; which thread computes a
    chunk never changes the result.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="alicia_numpy")
            if threads > 1
            else None
        )

    def run(self, tasks: Sequence[Callable[[], None]]) -> None:
        """Run ``tasks`` (the first one on this thread) and wait for all of them."""
        executor = self.executor
        if executor is None or len(tasks) == 1:
            for task in tasks:
                task()
            return
        counter = itertools.count()  # next() is atomic: each chunk runs exactly once
        total = len(tasks)

        def drain() -> None:
            while (index := next(counter)) < total:
                tasks[index]()

        helpers: list[Future[None]] = [
            executor.submit(_quiet, drain) for _ in range(min(self.threads - 1, total - 1))
        ]
        try:
            drain()
        finally:
            errors = [f.exception() for f in helpers]
        for error in errors:
            if error is not None:
                raise error


def _quiet(task: Callable[[], None]) -> None:
    with np.errstate(all="ignore"):
        task()


@dataclass(frozen=True, slots=True)
class _Epi:
    """One element-wise op fused into a convolution's output blocks."""

    op: str
    operand: int = -1  # index into the fused node's extra inputs (binary ops)
    conv_left: bool = True  # for binary ops: the convolution result is the left operand
    alpha: float = 0.0  # LeakyRelu


@dataclass(slots=True)
class _PNode:
    """A node of the graph being compiled (possibly with fused neighbours)."""

    node: Node
    op: str
    inputs: list[str]
    outputs: list[str]
    pos: int
    pre_alpha: float | None = None
    extra_pads: tuple[int, int] = (0, 0)
    epilogue: list[_Epi] = field(default_factory=list)
    before: list[str] = field(default_factory=list)  # names of nodes fused into the input side
    fused: list[str] = field(default_factory=list)  # names of nodes fused into the output side


@dataclass(slots=True)
class _Ctx:
    """What an op factory knows about its node when the plan is built."""

    node: Node
    opset: int
    consts: list[Array | None]
    donate: list[bool]
    pool: _Pool
    state: _RunState
    pre_alpha: float | None = None
    extra_pads: tuple[int, int] = (0, 0)
    epilogue: Sequence[_Epi] = ()
    drop: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.node.name or self.node.op_type

    def unsupported(self, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.node.op_type, detail, node=self.node.name)

    def const(self, index: int) -> Array | None:
        return self.consts[index] if index < len(self.consts) else None

    def has_input(self, index: int) -> bool:
        return index < len(self.node.inputs) and self.node.inputs[index] != ""

    def const_ints(self, index: int) -> tuple[int, ...] | None:
        value = self.const(index)
        return None if value is None else _ints(value)


type Factory = Callable[[_Ctx], Handler]

_OPS: dict[str, Factory] = {}
_MULTI_OUTPUT: Final = frozenset({"Split", "Dropout"})
_NONDETERMINISTIC: Final = frozenset({"RandomNormalLike", "RandomNormal"})
# Ops whose result never shares memory with an input unless one of the inputs was donated.
_FRESH: Final = frozenset(
    {
        "Shape", "Size", "Concat", "ConstantOfShape", "Range", "NonZero", "Gather",
        "GatherElements", "Where", "MatMul", "Gemm", "Conv", "ConvTranspose", "Softmax",
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin",
        "CumSum", "Pad", "Tile", "RandomNormalLike", "RandomNormal", "Erf", "Equal", "Less",
        "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Max", "Min", "Sum",
        "Mean", "Mod", "Softplus", "GatherND", "ScatterND", "ScatterElements",
    }
)  # fmt: skip
_UNARY_INPLACE: Final = frozenset(
    {
        "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Sigmoid", "Tanh", "Relu", "LeakyRelu",
        "Ceil", "Floor", "Round", "Not", "Clip", "Softplus",
    }
)  # fmt: skip
_BINARY_INPLACE: Final = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})
_DONATABLE: Final[dict[str, tuple[int, ...]]] = {
    **dict.fromkeys(_UNARY_INPLACE, (0,)),
    **dict.fromkeys(("Add", "Sub", "Mul", "Div"), (0, 1)),
    "Pow": (0,),
    "Softmax": (0,),
    "ScatterND": (0,),
    "ScatterElements": (0,),
}
_CONV_OPS: Final = frozenset({"Conv", "ConvTranspose"})
_EPI_UNARY: Final = frozenset({"Tanh", "Sigmoid", "Relu", "LeakyRelu"})
_EPI_BINARY: Final = frozenset({"Add", "Sub", "Mul", "Div"})


def _register(*names: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        for name in names:
            _OPS[name] = factory
        return factory

    return deco


def _register_each(make: Callable[[np.ufunc], Factory], ufuncs: Mapping[str, np.ufunc]) -> None:
    """Register ``make(ufunc)`` as the factory of each op name of ``ufuncs``."""
    for name, ufunc in ufuncs.items():
        _register(name)(make(ufunc))


def supported_ops() -> frozenset[str]:
    """Return the ONNX operator types this backend implements."""
    return frozenset(_OPS)


# -- small helpers ---------------------------------------------------------------------------------


def _arr(value: Any) -> Array:
    """Return ``value`` as an ndarray (numpy turns 0-d results into scalars)."""
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def _fits(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when ``shape`` broadcasts to ``target`` without enlarging it."""
    if shape == target:
        return True
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


def _can_write(target: Any, other_shape: tuple[int, ...], dtype: np.dtype[Any]) -> bool:
    """True when ``target`` may receive an element-wise result of this shape and dtype."""
    if not isinstance(target, np.ndarray) or not target.flags.writeable or target.dtype != dtype:
        return False
    return _fits(other_shape, target.shape)


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _ints(value: Any) -> tuple[int, ...]:
    arr = np.asarray(value)
    return tuple(arr.reshape(-1).tolist() if arr.ndim != 1 else arr.tolist())


def _leaky(src: Array, alpha: float, dst: Array, scratch: Array | None = None) -> None:
    """``dst = src if src >= 0 else alpha * src``.

    Without ``scratch``, ``dst`` (which must not be ``src``) holds ``alpha * src`` on the way;
    in place (``dst`` is ``src``), ``scratch``, an array of the same shape, holds it.
    """
    if alpha == 0.0:
        np.maximum(src, 0, out=dst)
        return
    product = dst if scratch is None else scratch
    np.multiply(src, alpha, out=product)
    if 0.0 < alpha <= 1.0:
        np.maximum(src, product, out=dst)
    elif scratch is None:
        np.copyto(dst, src, where=src >= 0)
    else:
        np.copyto(dst, product, where=src < 0)


def _sigmoid_inplace(x: Array) -> None:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1
    np.reciprocal(x, out=x)


# Erf: |x| < 0.5 by its Maclaurin series, above by erfc(x) = t exp(-x^2 + P(t)), t = 1/(1+x/2),
# with P a degree-8 weighted least-squares fit made for this module (max abs error 1.2e-12).
_ERFC_POLY: Final = (
    -1.2630388996579758,
    0.9624964650038462,
    0.6248677385387172,
    -0.8699258461597335,
    2.178271463328877,
    -3.5209950349116568,
    2.8721488391317824,
    -1.1839383345519825,
    0.20011526758625586,
)
# erf(s) = 2/sqrt(pi) * s * sum_k (-1)^k s^2k / (k! (2k + 1)); 9 terms reach 1e-11 for s < 0.5.
_ERF_SERIES: Final = tuple(
    2.0 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(9)
)


def erf(x: npt.ArrayLike) -> Array:
    """Error function, element-wise, computed in float64 and returned in the input's dtype."""
    arr = np.asarray(x)
    out_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    v = arr.astype(np.float64).reshape(-1)
    a = np.abs(v)
    t = 0.5 * a
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.full_like(t, _ERFC_POLY[-1])
    for c in reversed(_ERFC_POLY[:-1]):
        poly *= t
        poly += c
    poly -= a * a
    np.exp(poly, out=poly)
    poly *= t
    out = np.subtract(1.0, poly, out=poly)
    small = np.flatnonzero(a < 0.5)
    if small.size:
        s = a[small]
        s2 = s * s
        acc = np.full_like(s, _ERF_SERIES[-1])
        for c in reversed(_ERF_SERIES[:-1]):
            acc *= s2
            acc += c
        acc *= s
        out[small] = acc
    np.copysign(out, v, out=out)
    return out.reshape(arr.shape).astype(out_dtype, copy=False)


# -- element-wise ops ------------------------------------------------------------------------------


def _binary_factory(ufunc: np.ufunc) -> Factory:
    def factory(ctx: _Ctx) -> Handler:
        donate_a = ctx.donate[0]
        donate_b = ctx.donate[1]
        if not (donate_a or donate_b):
            return ufunc

        def run(a: Array, b: Array) -> Any:
            if donate_a and _can_write(a, b.shape, b.dtype):
                return ufunc(a, b, out=a)
            if donate_b and _can_write(b, a.shape, a.dtype):
                return ufunc(a, b, out=b)
            return ufunc(a, b)

        return run

    return factory


_register_each(_binary_factory, {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply})


def _int_div(a: Array, b: Array) -> Array:
    """Integer division truncating toward zero (C semantics), as ONNX specifies."""
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return _arr(q + fix.astype(q.dtype))


@_register("Div")
def _div(ctx: _Ctx) -> Handler:
    float_div = _binary_factory(np.divide)(ctx)

    def run(a: Array, b: Array) -> Any:
        if a.dtype.kind in "iu":
            return _int_div(a, b)
        return float_div(a, b)

    return run


@_register("Pow")
def _pow(ctx: _Ctx) -> Handler:
    exponent = ctx.const(1)
    donate = ctx.donate[0]
    if exponent is not None and exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0:

        def square(a: Array, b: Array) -> Any:
            if b.ndim > a.ndim:
                return np.power(a, b.astype(a.dtype))
            return np.multiply(a, a, out=a if donate and _can_write(a, (), a.dtype) else None)

        return square

    def run(a: Array, b: Array) -> Any:
        if a.dtype.kind == "f":
            b = b.astype(a.dtype, copy=False)
            return np.power(a, b, out=a if donate and _can_write(a, b.shape, a.dtype) else None)
        return np.power(a, b).astype(a.dtype, copy=False)

    return run


@_register("Mod")
def _mod(ctx: _Ctx) -> Handler:
    fmod = ctx.node.get_int("fmod", 0)
    if fmod:
        return np.fmod

    def run(a: Array, b: Array) -> Any:
        if a.dtype.kind == "f":
            raise ctx.unsupported("Mod with fmod=0 needs integer inputs")
        return np.mod(a, b)

    return run


def _plain(func: Handler) -> Factory:
    """A factory for an op that is exactly one numpy function."""

    def factory(_ctx: _Ctx) -> Handler:
        return func

    return factory


_register_each(
    _plain,
    {
        "Equal": np.equal,
        "Less": np.less,
        "LessOrEqual": np.less_equal,
        "Greater": np.greater,
        "GreaterOrEqual": np.greater_equal,
        "And": np.logical_and,
        "Or": np.logical_or,
        "Xor": np.logical_xor,
    },
)


def _variadic(ufunc: np.ufunc, mean: bool = False) -> Factory:
    def factory(_ctx: _Ctx) -> Handler:
        def run(*xs: Array) -> Any:
            result = xs[0]
            for x in xs[1:]:
                result = ufunc(result, x)
            if mean:
                result = result / np.asarray(len(xs), dtype=result.dtype)
            elif len(xs) == 1:
                result = result.copy()
            return result

        return run

    return factory


_register("Max")(_variadic(np.maximum))
_register("Min")(_variadic(np.minimum))
_register("Sum")(_variadic(np.add))
_register("Mean")(_variadic(np.add, mean=True))


def _unary_factory(ufunc: np.ufunc) -> Factory:
    def factory(ctx: _Ctx) -> Handler:
        if not ctx.donate[0]:
            return ufunc

        def run(x: Array) -> Any:
            if isinstance(x, np.ndarray) and x.flags.writeable:
                return ufunc(x, out=x)
            return ufunc(x)

        return run

    return factory


_register_each(
    _unary_factory,
    {
        "Neg": np.negative,
        "Abs": np.absolute,
        "Exp": np.exp,
        "Log": np.log,
        "Sqrt": np.sqrt,
        "Reciprocal": np.reciprocal,
        "Tanh": np.tanh,
        "Ceil": np.ceil,
        "Floor": np.floor,
        "Round": np.rint,
        "Not": np.logical_not,
    },
)


def _against_zero(ufunc: np.ufunc) -> Factory:
    """A factory for ``ufunc(x, 0)`` (0 of x's dtype), written into ``x`` when it is donated."""

    def factory(ctx: _Ctx) -> Handler:
        donate = ctx.donate[0]

        def run(x: Array) -> Any:
            zero = x.dtype.type(0)
            return ufunc(x, zero, out=x if donate and x.flags.writeable else None)

        return run

    return factory


_register("Relu")(_against_zero(np.maximum))
_register("Softplus")(_against_zero(np.logaddexp))  # log(1 + exp(x))


@_register("LeakyRelu")
def _leaky_relu(ctx: _Ctx) -> Handler:
    alpha = ctx.node.get_float("alpha", 0.01)
    donate = ctx.donate[0]

    def run(x: Array) -> Array:
        scratch = np.empty_like(x)
        if donate and x.flags.writeable:
            _leaky(x, alpha, x, scratch)
            return x
        _leaky(x, alpha, scratch)
        return scratch

    return run


@_register("Sigmoid")
def _sigmoid(ctx: _Ctx) -> Handler:
    donate = ctx.donate[0]

    def run(x: Array) -> Array:
        out = x if donate and x.flags.writeable else np.array(x, copy=True)
        _sigmoid_inplace(out)
        return out

    return run


_register("Erf")(_plain(erf))


@_register("Clip")
def _clip(ctx: _Ctx) -> Handler:
    donate = ctx.donate[0]
    attr_min = ctx.node.get_float("min", -math.inf) if "min" in ctx.node.attributes else None
    attr_max = ctx.node.get_float("max", math.inf) if "max" in ctx.node.attributes else None

    def run(x: Array, lo: Array | None = None, hi: Array | None = None) -> Any:
        low: Any = lo if lo is not None else attr_min
        high: Any = hi if hi is not None else attr_max
        if low is None and high is None:
            return np.array(x, copy=True)
        if low is not None:
            low = np.asarray(low, dtype=x.dtype)
        if high is not None:
            high = np.asarray(high, dtype=x.dtype)
        out = x if donate and x.flags.writeable else None
        return np.clip(x, low, high, out=out)

    return run


_register("Where")(_plain(np.where))


@_register("Cast")
def _cast(ctx: _Ctx) -> Handler:
    to = ctx.node.get_int("to", 0)
    if to == DataType.STRING:
        raise ctx.unsupported("Cast to STRING")
    dtype = _dtype_of(to, "Cast")

    def run(x: Array) -> Array:
        return _arr(x).astype(dtype, copy=False)

    return run


@_register("CastLike")
def _cast_like(_ctx: _Ctx) -> Handler:
    def run(x: Array, like: Array) -> Array:
        return _arr(x).astype(like.dtype, copy=False)

    return run


_register("Identity")(_plain(_arr))


@_register("Dropout")
def _dropout(ctx: _Ctx) -> Handler:
    want_mask = len(ctx.node.outputs) > 1 and ctx.node.outputs[1] != ""

    def run(x: Array, *_rest: Array | None) -> tuple[Array, ...]:
        if want_mask:
            return x, np.ones(x.shape, dtype=bool)
        return (x,)

    return run


# -- shape and indexing ops ------------------------------------------------------------------------


@_register("Constant")
def _constant(ctx: _Ctx) -> Handler:
    node = ctx.node
    value: Array
    if (tensor := node.get_tensor("value")) is not None:
        value = np.array(tensor.array, dtype=tensor.array.dtype.newbyteorder("="))
    elif "value_float" in node.attributes:
        value = np.array(node.get_float("value_float", 0.0), dtype=np.float32)
    elif (floats := node.get_floats("value_floats")) is not None:
        value = np.array(floats, dtype=np.float32)
    elif "value_int" in node.attributes:
        value = np.array(node.get_int("value_int", 0), dtype=np.int64)
    elif (ints := node.get_ints("value_ints")) is not None:
        value = np.array(ints, dtype=np.int64)
    else:
        raise ctx.unsupported("only value, value_float(s) and value_int(s) are supported")

    def run() -> Array:
        return value

    return run


@_register("Shape")
def _shape(ctx: _Ctx) -> Handler:
    start = ctx.node.get_int("start", 0)
    end = ctx.node.get_int("end", 0) if "end" in ctx.node.attributes else None

    def run(x: Array) -> Array:
        return np.array(x.shape[start:end], dtype=np.int64)

    return run


@_register("Size")
def _size(_ctx: _Ctx) -> Handler:
    def run(x: Array) -> Array:
        return np.array(x.size, dtype=np.int64)

    return run


@_register("Reshape")
def _reshape(ctx: _Ctx) -> Handler:
    allowzero = ctx.node.get_int("allowzero", 0)

    def run(x: Array, shape: Array) -> Array:
        dims: list[int] = shape.tolist()
        if not allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return _arr(x).reshape(dims)

    return run


@_register("Flatten")
def _flatten(ctx: _Ctx) -> Handler:
    axis = ctx.node.get_int("axis", 1)

    def run(x: Array) -> Array:
        a = _axis(axis, x.ndim)
        return _arr(x).reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))

    return run


def _axes_of(ctx: _Ctx, input_index: int) -> tuple[int, ...] | None:
    """Axes given as an attribute (older opsets) or as a constant input; None if at run time."""
    attr = ctx.node.get_ints("axes")
    if attr is not None:
        return attr
    if not ctx.has_input(input_index):
        return ()
    return ctx.const_ints(input_index)


@_register("Squeeze")
def _squeeze(ctx: _Ctx) -> Handler:
    static = _axes_of(ctx, 1)

    def run(x: Array, axes: Array | None = None) -> Array:
        ax = static if static is not None else _ints(axes)
        if not ax:
            return _arr(np.squeeze(x))
        return _arr(np.squeeze(x, axis=tuple(_axis(a, x.ndim) for a in ax)))

    return run


@_register("Unsqueeze")
def _unsqueeze(ctx: _Ctx) -> Handler:
    static = _axes_of(ctx, 1)

    def run(x: Array, axes: Array | None = None) -> Array:
        ax = static if static is not None else _ints(axes)
        return _arr(np.expand_dims(x, ax))

    return run


@_register("Transpose")
def _transpose(ctx: _Ctx) -> Handler:
    perm = ctx.node.get_ints("perm")

    def run(x: Array) -> Array:
        return _arr(np.transpose(x, perm))

    return run


def _is_channel_last(a: Array) -> bool:
    """True for a 3-D array that is a transposed view of a C-contiguous (N, T, C) buffer."""
    if a.ndim != 3 or a.shape[1] < 2 or a.shape[2] < 2:
        return False
    item = a.itemsize
    return bool(a.strides[1] == item and a.strides[2] == a.shape[1] * item)


@_register("Concat")
def _concat(ctx: _Ctx) -> Handler:
    axis = ctx.node.get_int("axis", 0)

    def run(*xs: Array) -> Array:
        arrays = [_arr(x) for x in xs]
        if axis in (1, -2) and all(_is_channel_last(a) for a in arrays):
            # Keep convolution outputs' time-major layout: concatenate the underlying buffers.
            phys = np.concatenate([a.transpose(0, 2, 1) for a in arrays], axis=2)
            return phys.transpose(0, 2, 1)
        return np.concatenate(arrays, axis=axis)

    return run


@_register("Split")
def _split(ctx: _Ctx) -> Handler:
    axis = ctx.node.get_int("axis", 0)
    attr_split = ctx.node.get_ints("split")
    num_outputs = ctx.node.get_int("num_outputs", 0)
    n_out = len(ctx.node.outputs)

    def run(x: Array, split: Array | None = None) -> tuple[Array, ...]:
        a = _axis(axis, x.ndim)
        dim = x.shape[a]
        sizes: Sequence[int]
        if split is not None:
            sizes = _ints(split)
        elif attr_split is not None:
            sizes = attr_split
        elif num_outputs:
            chunk = -(-dim // num_outputs)
            sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(num_outputs)]
        else:
            if dim % n_out:
                raise ValueError(f"axis of size {dim} cannot be split into {n_out} equal parts")
            sizes = [dim // n_out] * n_out
        if sum(sizes) != dim or len(sizes) != n_out:
            raise ValueError(f"split sizes {list(sizes)} do not match axis size {dim}")
        bounds = np.cumsum(sizes)[:-1].tolist()
        return tuple(np.split(x, bounds, axis=a))

    return run


def _slice_bound(dim: int, start: int, end: int, step: int) -> slice:
    """ONNX Slice clamping for one axis, as a Python slice."""
    if step == 0:
        raise ValueError("Slice step cannot be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        return slice(start, end, step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@_register("Slice")
def _slice(ctx: _Ctx) -> Handler:
    node = ctx.node
    if ctx.opset < 10 and "starts" in node.attributes:
        a_starts = node.get_ints("starts") or ()
        a_ends = node.get_ints("ends") or ()
        a_axes = node.get_ints("axes")

        def run_attr(x: Array) -> Array:
            axes = a_axes if a_axes is not None else tuple(range(len(a_starts)))
            return _apply_slice(x, a_starts, a_ends, axes, (1,) * len(a_starts))

        return run_attr

    if all(ctx.const(i) is not None or not ctx.has_input(i) for i in range(1, 5)):
        c_starts = ctx.const_ints(1) or ()
        c_ends = ctx.const_ints(2) or ()
        c_axes = ctx.const_ints(3) if ctx.has_input(3) else tuple(range(len(c_starts)))
        c_steps = ctx.const_ints(4) if ctx.has_input(4) else (1,) * len(c_starts)
        assert c_axes is not None
        assert c_steps is not None

        def run_static(x: Array, *_params: Array | None) -> Array:
            return _apply_slice(x, c_starts, c_ends, c_axes, c_steps)

        ctx.drop.update({1, 2, 3, 4})
        return run_static

    def run(x: Array, starts: Array, ends: Array, *optional: Array | None) -> Array:
        axes, steps = (*optional, None, None)[:2]  # both inputs may be left out
        st = _ints(starts)
        ax = _ints(axes) if axes is not None else tuple(range(len(st)))
        sp = _ints(steps) if steps is not None else (1,) * len(st)
        return _apply_slice(x, st, _ints(ends), ax, sp)

    return run


def _apply_slice(
    x: Array,
    starts: Sequence[int],
    ends: Sequence[int],
    axes: Sequence[int],
    steps: Sequence[int],
) -> Array:
    x = _arr(x)
    rank = x.ndim
    index: list[slice] = [slice(None)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        a = axis + rank if axis < 0 else axis
        index[a] = _slice_bound(x.shape[a], start, end, step)
    return _arr(x[tuple(index)])


@_register("Gather")
def _gather(ctx: _Ctx) -> Handler:
    axis = ctx.node.get_int("axis", 0)

    def run(x: Array, indices: Array) -> Array:
        return _arr(np.take(x, indices, axis=axis))

    return run


def _element_index(indices: Array, axis: int, dim: int) -> tuple[Array, ...]:
    """Index tuple for Gather/ScatterElements: the grid of ``indices`` with ``axis`` replaced."""
    grid = list(np.indices(indices.shape, sparse=True))
    grid[axis] = np.where(indices < 0, indices + dim, indices)
    return tuple(grid)


@_register("GatherElements")
def _gather_elements(ctx: _Ctx) -> Handler:
    axis = ctx.node.get_int("axis", 0)

    def run(x: Array, indices: Array) -> Array:
        a = _axis(axis, x.ndim)
        return _arr(x[_element_index(indices, a, x.shape[a])])

    return run


_SCATTER_UFUNCS: Final = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_target(ctx: _Ctx, data: Array) -> Array:
    if ctx.donate[0] and isinstance(data, np.ndarray) and data.flags.writeable:
        return data
    return np.array(data, copy=True)


def _scatter(ctx: _Ctx, index_of: Callable[[Array, Array], tuple[Array, ...]]) -> Handler:
    """A Scatter op: ``updates`` written (or reduced) into ``data`` at ``index_of(data, ...)``."""
    reduction = ctx.node.get_string("reduction", "none")
    if reduction != "none" and reduction not in _SCATTER_UFUNCS:
        raise ctx.unsupported(f"reduction {reduction!r}")

    def run(data: Array, indices: Array, updates: Array) -> Array:
        out = _scatter_target(ctx, data)
        index = index_of(out, indices)
        if reduction == "none":
            out[index] = updates
        else:
            _SCATTER_UFUNCS[reduction].at(out, index, updates)
        return out

    return run


@_register("ScatterElements")
def _scatter_elements(ctx: _Ctx) -> Handler:
    axis = ctx.node.get_int("axis", 0)

    def index_of(data: Array, indices: Array) -> tuple[Array, ...]:
        a = _axis(axis, data.ndim)
        return _element_index(indices, a, data.shape[a])

    return _scatter(ctx, index_of)


@_register("GatherND")
def _gather_nd(ctx: _Ctx) -> Handler:
    batch_dims = ctx.node.get_int("batch_dims", 0)

    def run(data: Array, indices: Array) -> Array:
        k = indices.shape[-1]
        if batch_dims == 0:
            return np.array(data[tuple(np.moveaxis(indices, -1, 0))], copy=True)
        batch = data.shape[:batch_dims]
        nb = math.prod(batch)
        flat = data.reshape((nb, *data.shape[batch_dims:]))
        idx = indices.reshape((nb, -1, k))
        rows = np.arange(nb).reshape(nb, 1)
        picked = flat[(rows, *np.moveaxis(idx, -1, 0))]
        return np.array(
            picked.reshape((*batch, *indices.shape[batch_dims:-1], *data.shape[batch_dims + k :])),
            copy=True,
        )

    return run


@_register("ScatterND")
def _scatter_nd(ctx: _Ctx) -> Handler:
    return _scatter(ctx, lambda _data, indices: tuple(np.moveaxis(indices, -1, 0)))


@_register("Expand")
def _expand(_ctx: _Ctx) -> Handler:
    def run(x: Array, shape: Array) -> Array:
        want = _ints(shape)
        have = x.shape
        rank = max(len(want), len(have))
        a = (1,) * (rank - len(have)) + have
        b = (1,) * (rank - len(want)) + want
        target = []
        for da, db in zip(a, b, strict=True):
            if da != db and 1 not in (da, db):
                raise ValueError(f"cannot expand shape {have} to {want}")
            target.append(db if da == 1 else da)
        return np.broadcast_to(x, tuple(target))

    return run


@_register("Tile")
def _tile(_ctx: _Ctx) -> Handler:
    def run(x: Array, repeats: Array) -> Array:
        return _arr(np.tile(x, _ints(repeats)))

    return run


@_register("Pad")
def _pad(ctx: _Ctx) -> Handler:
    node = ctx.node
    mode = node.get_string("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.unsupported(f"mode {mode!r}")
    attr_pads = node.get_ints("pads") if ctx.opset < 11 else None
    attr_value = node.get_float("value", 0.0)

    def run(
        x: Array,
        pads: Array | None = None,
        value: Array | None = None,
        axes: Array | None = None,
    ) -> Array:
        p = attr_pads if attr_pads is not None else _ints(pads)
        rank = x.ndim
        ax = [_axis(a, rank) for a in _ints(axes)] if axes is not None else list(range(rank))
        n = len(ax)
        if len(p) != 2 * n:
            raise ValueError(f"pads has {len(p)} values for {n} axes")
        before = [0] * rank
        after = [0] * rank
        for i, a in enumerate(ax):
            before[a] = p[i]
            after[a] = p[i + n]
        # Negative pads crop.
        if any(v < 0 for v in before + after):
            crop = tuple(
                slice(max(-b, 0), x.shape[i] - max(-e, 0))
                for i, (b, e) in enumerate(zip(before, after, strict=True))
            )
            x = x[crop]
            before = [max(v, 0) for v in before]
            after = [max(v, 0) for v in after]
        fill = (
            np.asarray(value).reshape(-1)[0].item()
            if value is not None and np.asarray(value).size
            else attr_value
        )
        if mode == "constant":
            shape = tuple(s + b + e for s, b, e in zip(x.shape, before, after, strict=True))
            out = np.full(shape, fill, dtype=x.dtype)
            out[tuple(slice(b, b + s) for b, s in zip(before, x.shape, strict=True))] = x
            return out
        pad_mode: Any = mode
        return _arr(np.pad(x, list(zip(before, after, strict=True)), mode=pad_mode))

    return run


@_register("ConstantOfShape")
def _constant_of_shape(ctx: _Ctx) -> Handler:
    tensor = ctx.node.get_tensor("value")
    if tensor is None:
        fill: Any = np.float32(0)
        dtype = np.dtype(np.float32)
    else:
        dtype = tensor.array.dtype.newbyteorder("=")
        fill = tensor.array.reshape(-1)[0]

    def run(shape: Array) -> Array:
        return np.full(_ints(shape), fill, dtype=dtype)

    return run


@_register("Range")
def _range(_ctx: _Ctx) -> Handler:
    def run(start: Array, limit: Array, delta: Array) -> Array:
        dtype = start.dtype
        s, lim, d = start.item(), limit.item(), delta.item()
        if dtype.kind in "iu":
            n = max(-((s - lim) // d), 0)
            return _arr((s + np.arange(n, dtype=np.int64) * d).astype(dtype))
        n = max(math.ceil((lim - s) / d), 0)
        values = np.asarray(s, dtype) + np.arange(n, dtype=dtype) * np.asarray(d, dtype)
        return _arr(values.astype(dtype))

    return run


@_register("NonZero")
def _nonzero(_ctx: _Ctx) -> Handler:
    def run(x: Array) -> Array:
        return np.array(np.nonzero(np.atleast_1d(x)), dtype=np.int64)

    return run


@_register("CumSum")
def _cumsum(ctx: _Ctx) -> Handler:
    exclusive = ctx.node.get_int("exclusive", 0)
    reverse = ctx.node.get_int("reverse", 0)

    def run(x: Array, axis: Array) -> Array:
        a = _axis(int(np.asarray(axis).reshape(-1)[0]), x.ndim)
        v = np.flip(x, a) if reverse else x
        out = np.cumsum(v, axis=a, dtype=x.dtype)
        if exclusive:
            shifted = np.zeros_like(out)
            src = [slice(None)] * x.ndim
            dst = [slice(None)] * x.ndim
            src[a] = slice(0, -1)
            dst[a] = slice(1, None)
            shifted[tuple(dst)] = out[tuple(src)]
            out = shifted
        return np.ascontiguousarray(np.flip(out, a)) if reverse else out

    return run


# -- reductions and normalisation ------------------------------------------------------------------


def _reduce_factory(func: Callable[..., Any], keep_dtype: bool) -> Factory:
    def factory(ctx: _Ctx) -> Handler:
        keepdims = bool(ctx.node.get_int("keepdims", 1))
        noop = ctx.node.get_int("noop_with_empty_axes", 0)
        static = _axes_of(ctx, 1)

        def run(x: Array, axes: Array | None = None) -> Array:
            ax = static if static is not None else _ints(axes)
            if not ax:
                if noop:
                    return np.array(x, copy=True)
                axis: tuple[int, ...] | None = None
            else:
                axis = tuple(_axis(a, x.ndim) for a in ax)
            if keep_dtype:
                return _arr(func(x, axis=axis, keepdims=keepdims, dtype=x.dtype))
            return _arr(func(x, axis=axis, keepdims=keepdims))

        return run

    return factory


_register("ReduceMean")(_reduce_factory(np.mean, keep_dtype=True))
_register("ReduceSum")(_reduce_factory(np.sum, keep_dtype=True))
_register("ReduceProd")(_reduce_factory(np.prod, keep_dtype=True))
_register("ReduceMax")(_reduce_factory(np.max, keep_dtype=False))
_register("ReduceMin")(_reduce_factory(np.min, keep_dtype=False))


def _arg_factory(func: Callable[..., Any]) -> Factory:
    def factory(ctx: _Ctx) -> Handler:
        axis = ctx.node.get_int("axis", 0)
        keepdims = bool(ctx.node.get_int("keepdims", 1))
        last = ctx.node.get_int("select_last_index", 0)

        def run(x: Array) -> Array:
            a = _axis(axis, x.ndim)
            if last:
                flipped = np.flip(x, a)
                idx = x.shape[a] - 1 - func(flipped, axis=a, keepdims=keepdims)
            else:
                idx = func(x, axis=a, keepdims=keepdims)
            return np.asarray(idx, dtype=np.int64)

        return run

    return factory


_register("ArgMax")(_arg_factory(np.argmax))
_register("ArgMin")(_arg_factory(np.argmin))


@_register("Softmax")
def _softmax(ctx: _Ctx) -> Handler:
    legacy = ctx.opset < 13
    axis = ctx.node.get_int("axis", 1 if legacy else -1)
    donate = ctx.donate[0]

    def run(x: Array) -> Array:
        shape = x.shape
        a = _axis(axis, x.ndim)
        if legacy:
            x = x.reshape(math.prod(shape[:a]), math.prod(shape[a:]))
            a = 1
        out = x if donate and x.flags.writeable else None
        e = np.subtract(x, np.max(x, axis=a, keepdims=True), out=out)
        np.exp(e, out=e)
        e /= np.sum(e, axis=a, keepdims=True)
        return _arr(e.reshape(shape))

    return run


# -- linear algebra --------------------------------------------------------------------------------


_register("MatMul")(_plain(np.matmul))


@_register("Gemm")
def _gemm(ctx: _Ctx) -> Handler:
    alpha = ctx.node.get_float("alpha", 1.0)
    beta = ctx.node.get_float("beta", 1.0)
    trans_a = ctx.node.get_int("transA", 0)
    trans_b = ctx.node.get_int("transB", 0)

    def run(a: Array, b: Array, c: Array | None = None) -> Array:
        y = np.matmul(a.T if trans_a else a, b.T if trans_b else b)
        if alpha != 1.0:
            y *= y.dtype.type(alpha)
        if c is not None and beta != 0.0:
            y += c if beta == 1.0 else c * c.dtype.type(beta)
        return _arr(y)

    return run


# -- convolutions ----------------------------------------------------------------------------------

# im2col blocks: about 1 MiB (a core's L2 with the output block), but never fewer than 512 rows,
# below which OpenBLAS's SGEMM loses efficiency on these narrow (32-768 column) outputs.
_BLOCK_BYTES: Final = 1 << 20
_MIN_BLOCK_ROWS: Final = 512
_MAX_BLOCK_ROWS: Final = 4096
_SHIFT_MAX_CHANNELS: Final = 4  # Conv with at most this many outputs uses the output-shift form
_MIN_TASK_ROWS: Final = 48  # a thread task gets at least this many output rows...
_MIN_TASK_FLOPS: Final = 4.0e6  # ...and this much work, or the conv is not split
_CHUNKS_PER_THREAD: Final = 4  # dynamic balancing: starved threads cost one chunk at most


class _EpilogueRun:
    """The fused element-wise ops of one convolution call, bound to their operands."""

    __slots__ = ("block_ops", "operands", "rest")

    def __init__(
        self, ops: Sequence[_Epi], extras: Sequence[Array], out_shape: tuple[int, ...]
    ) -> None:
        # Operands as time-major (N, T, C) views broadcast to the output; ops whose operand would
        # enlarge the output (unusual broadcasting) and everything after them run unfused.
        self.block_ops: list[_Epi] = []
        self.operands: list[Array | None] = []
        self.rest: list[_Epi] = []
        for i, op in enumerate(ops):
            if op.operand >= 0:
                z = extras[op.operand]
                if not _fits(z.shape, out_shape):
                    self.rest = list(ops[i:])
                    break
                self.operands.append(np.broadcast_to(z, out_shape).transpose(0, 2, 1))
            else:
                self.operands.append(None)
            self.block_ops.append(op)

    def apply(
        self, block: Array, batch: int, t0: int, t1: int, scratch: Array, bias: Array | None = None
    ) -> None:
        """Add ``bias``, then apply the fused ops to output rows [t0, t1) of item ``batch``.

        ``block`` is time-major; ``scratch`` has at least its shape.
        """
        if bias is not None:
            block += bias
        for op, operand in zip(self.block_ops, self.operands, strict=True):
            name = op.op
            if operand is not None:
                z = operand[batch, t0:t1]
                ufunc = _EPI_UFUNCS[name]
                if op.conv_left:
                    ufunc(block, z, out=block)
                else:
                    ufunc(z, block, out=block)
            elif name == "Tanh":
                np.tanh(block, out=block)
            elif name == "Sigmoid":
                _sigmoid_inplace(block)
            elif name == "Relu":
                np.maximum(block, 0, out=block)
            else:  # LeakyRelu
                _leaky(block, op.alpha, block, scratch[: block.shape[0]])

    def finish(self, y: Array, extras: Sequence[Array]) -> Array:
        """Apply the unfused remainder to the logical (N, C, T) result."""
        for op in self.rest:
            if op.operand >= 0:
                z = extras[op.operand]
                ufunc = _EPI_UFUNCS[op.op]
                y = ufunc(y, z) if op.conv_left else ufunc(z, y)
            elif op.op == "Tanh":
                y = np.tanh(y)
            elif op.op == "Sigmoid":
                y = np.array(y, copy=True)
                _sigmoid_inplace(y)
            elif op.op == "Relu":
                y = np.maximum(y, 0)
            else:
                out = np.empty_like(y)
                _leaky(y, op.alpha, out)
                y = out
        return y


_EPI_UFUNCS: Final[dict[str, np.ufunc]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
}


# OpenBLAS has a fast path for small products (M*N*K up to about 2**20 on x86_64) that skips
# packing; a GEMM with few rows (a short utterance) is ~2x faster as several such products.
_SMALL_GEMM_ROWS: Final = 32
_SMALL_GEMM_MNK: Final = 1_000_000


def _matmul_into(a: Array, b: Array, out: Array) -> None:
    """``out = a @ b``, split over output columns when ``a`` has few rows."""
    m, kd = a.shape
    n = b.shape[1]
    if m <= _SMALL_GEMM_ROWS and m * kd * n > _SMALL_GEMM_MNK:
        step = max(16, _SMALL_GEMM_MNK // (m * kd) // 16 * 16)
        if step < n:
            for j in range(0, n, step):
                np.matmul(a, b[:, j : j + step], out=out[:, j : j + step])
            return
    np.matmul(a, b, out=out)


def _chunks(rows: int, flops: float, threads: int) -> list[tuple[int, int]]:
    """Split [0, rows) into equal chunks (up to 4 per thread) of enough work each."""
    if threads <= 1 or flops < _MIN_TASK_FLOPS * 2 or rows < 2 * _MIN_TASK_ROWS:
        return [(0, rows)]
    n = min(_CHUNKS_PER_THREAD * threads, int(flops // _MIN_TASK_FLOPS), rows // _MIN_TASK_ROWS)
    if n <= 1:
        return [(0, rows)]
    step = -(-rows // n)
    bounds = [*range(0, rows, step), rows]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _conv_pads(node: Node, length: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    auto_pad = node.get_string("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = node.get_ints("pads") or (0, 0)
        return pads[0], pads[1]
    if auto_pad == "VALID":
        return 0, 0
    out = -(-length // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    small = total // 2
    return (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)


def _fill_window(window: Array, xt: Array, lo: int, hi: int, alpha: float | None) -> None:
    """Copy input rows [lo, hi) of ``xt`` into ``window``, zeros outside, activation applied."""
    length = xt.shape[0]
    a = max(lo, 0)
    e = min(hi, length)
    if e <= a:
        window.fill(0)
        return
    if a > lo:
        window[: a - lo].fill(0)
    if e < hi:
        window[e - lo :].fill(0)
    dst = window[a - lo : e - lo]
    if alpha is None:
        np.copyto(dst, xt[a:e])
    else:
        _leaky(xt[a:e], alpha, dst)


class _InputWindows:
    """Row ranges of a time-major input as a convolution reads them (see :func:`_fill_window`).

    A range inside the input is a view of it when no activation is fused; any other is filled
    into a buffer of ``span`` rows, allocated at the first need and reused.
    """

    __slots__ = ("alpha", "buf", "direct", "dtype", "span", "xt")

    def __init__(self, xt: Array, alpha: float | None, span: int, dtype: np.dtype[Any]) -> None:
        self.xt = xt
        self.alpha = alpha
        self.direct = alpha is None and xt.flags.c_contiguous
        self.span = span
        self.dtype = dtype
        self.buf: Array | None = None

    def rows(self, lo: int, hi: int) -> Array:
        """Input rows [lo, hi) (at most ``span``)."""
        xt = self.xt
        if self.direct and lo >= 0 and hi <= xt.shape[0]:
            return xt[lo:hi]
        if self.buf is None:
            self.buf = np.empty((self.span, xt.shape[1]), dtype=self.dtype)
        window = self.buf[: hi - lo]
        _fill_window(window, xt, lo, hi, self.alpha)
        return window


def _time_major(x: Array, batch: int) -> Array:
    """The (T, C) time-major view of batch item ``batch`` of a logical (N, C, T) array."""
    return _arr(x[batch].T)


class _ConvWeights:
    """Conv weights re-laid for time-major GEMMs: per group a (K * C_in_g, C_out_g) matrix."""

    def __init__(self, w: Array, b: Array | None, group: int, stride: int) -> None:
        if w.ndim != 3:
            raise ValueError(f"only 1-D convolutions are supported (weight rank {w.ndim})")
        c_out, cpg, k = w.shape
        if c_out % group:
            raise ValueError(f"{c_out} output channels are not divisible by group {group}")
        self.dtype = w.dtype.newbyteorder("=")
        self.c_out = c_out
        self.cpg = cpg
        self.k = k
        self.group = group
        self.opg = c_out // group
        self.depthwise: Array | None = None
        self.shift: Array | None = None
        self.mats: list[Array] = []
        if group == 1 and stride == 1 and k > 1 and c_out <= _SHIFT_MAX_CHANNELS:
            # (C_in, K * C_out): column j * C_out + o holds tap j of output channel o
            self.shift = np.array(
                w.transpose(1, 2, 0).reshape(cpg, k * c_out), dtype=self.dtype, order="C"
            )
        elif group > 1 and cpg == 1 and self.opg == 1:
            # (K, C): out[t, c] = sum_k x[t + k d, c] w[c, k]
            self.depthwise = np.array(w[:, 0, :].T, dtype=self.dtype, order="C")
        else:
            for g in range(group):
                wg = w[g * self.opg : (g + 1) * self.opg]  # (opg, cpg, K)
                mat = np.array(
                    wg.transpose(2, 1, 0).reshape(k * cpg, self.opg), dtype=self.dtype, order="C"
                )
                self.mats.append(mat)
        self.bias = None if b is None else np.array(b, dtype=self.dtype).reshape(-1)


class _Conv1d:
    """What both 1-D convolution kernels keep of their node and its fused neighbours."""

    def __init__(self, ctx: _Ctx, what: str) -> None:
        """Read group, stride and dilation (``what`` names the op if they are not 1-D)."""
        node = ctx.node
        strides = node.get_ints("strides") or (1,)
        dilations = node.get_ints("dilations") or (1,)
        if len(strides) != 1 or len(dilations) != 1:
            raise ctx.unsupported(f"only 1-D {what} are supported")
        self.node = node
        self.pool = ctx.pool
        self.pre_alpha = ctx.pre_alpha
        self.epilogue = tuple(ctx.epilogue)
        self.group, self.stride, self.dilation = node.get_int("group", 1), strides[0], dilations[0]


class _ConvKernel(_Conv1d):
    """A prepared 1-D Conv node (with optional fused input activation and output epilogue)."""

    def __init__(self, ctx: _Ctx) -> None:
        super().__init__(ctx, "convolutions")
        self.extra_pads = ctx.extra_pads
        w = ctx.const(1)
        self.weights: _ConvWeights | None = None
        if w is not None and (not ctx.has_input(2) or ctx.const(2) is not None):
            if w.ndim != 3:
                raise ctx.unsupported(f"only 1-D convolutions are supported (weight rank {w.ndim})")
            self.weights = _ConvWeights(w, ctx.const(2), self.group, self.stride)
            ctx.drop.update({1, 2})

    def __call__(self, x: Array, w: Array | None, b: Array | None, *extras: Array) -> Array:
        weights = (
            self.weights
            if self.weights is not None
            else _ConvWeights(_arr(w), b, self.group, self.stride)
        )
        if x.ndim != 3:
            raise UnsupportedOpError(
                "Conv", f"only 1-D convolutions are supported (input rank {x.ndim})",
                node=self.node.name,
            )  # fmt: skip
        if x.dtype != weights.dtype:
            x = x.astype(weights.dtype)
        n, c_in, length = x.shape
        if c_in != weights.cpg * weights.group:
            raise ValueError(
                f"input has {c_in} channels, weights expect {weights.cpg * weights.group}"
            )
        k, s, d = weights.k, self.stride, self.dilation
        pl, pr = _conv_pads(self.node, length, k, s, d)
        pl += self.extra_pads[0]
        pr += self.extra_pads[1]
        l_out = (length + pl + pr - (k - 1) * d - 1) // s + 1
        if l_out <= 0:
            raise ValueError(f"convolution output would be empty (input length {length})")
        out = np.empty((n, l_out, weights.c_out), dtype=weights.dtype)
        epi = _EpilogueRun(self.epilogue, extras, (n, weights.c_out, l_out))
        for bi in range(n):
            xt = _time_major(x, bi)
            if weights.depthwise is not None:
                self._depthwise(xt, out[bi], weights, pl, pr, l_out, epi, bi)
                continue
            rows_per_block = self._block_rows(weights, c_in)
            flops = 2.0 * l_out * weights.k * c_in * weights.opg
            chunks = _chunks(l_out, flops, self.pool.threads)
            tasks = [
                _bind_rows(self._rows, xt, out[bi], weights, pl, r0, r1, rows_per_block, epi, bi)
                for r0, r1 in chunks
            ]
            self.pool.run(tasks)
        y = out.transpose(0, 2, 1)
        return epi.finish(y, extras) if epi.rest else y

    def _block_rows(self, weights: _ConvWeights, c_in: int) -> int:
        row_bytes = weights.k * c_in * weights.dtype.itemsize
        return int(max(_MIN_BLOCK_ROWS, min(_MAX_BLOCK_ROWS, _BLOCK_BYTES // max(row_bytes, 1))))

    def _rows(
        self,
        xt: Array,
        out: Array,
        weights: _ConvWeights,
        pl: int,
        r0: int,
        r1: int,
        nb: int,
        epi: _EpilogueRun,
        bi: int,
    ) -> None:
        """Compute output rows [r0, r1) of one batch item, about ``nb`` rows per GEMM."""
        nb = -(-(r1 - r0) // -(-(r1 - r0) // nb))  # equal blocks: no small ragged last one
        k, s, d = weights.k, self.stride, self.dilation
        windows = _InputWindows(xt, self.pre_alpha, (nb - 1) * s + (k - 1) * d + 1, weights.dtype)
        compute = (
            self._im2col_blocks(weights, nb)
            if weights.shift is None
            else self._shift_blocks(weights, nb)
        )
        scratch = np.empty((nb, weights.c_out), dtype=weights.dtype)
        for t0 in range(r0, r1, nb):
            t1 = min(t0 + nb, r1)
            block = out[t0:t1]
            compute(windows.rows(t0 * s - pl, (t1 - 1) * s - pl + (k - 1) * d + 1), block)
            epi.apply(block, bi, t0, t1, scratch, weights.bias)

    def _im2col_blocks(self, weights: _ConvWeights, nb: int) -> Callable[[Array, Array], None]:
        """``block = conv(window)``: per group, one GEMM over the window's im2col copy."""
        k, s, d, cpg, opg = weights.k, self.stride, self.dilation, weights.cpg, weights.opg
        needs_cols = not (k == 1 and s == 1 and weights.group == 1)
        cols_buf = np.empty((nb, k * cpg), dtype=weights.dtype) if needs_cols else None
        item = weights.dtype.itemsize

        def compute(window: Array, block: Array) -> None:
            rows = block.shape[0]
            row_stride = window.strides[0]
            for g in range(weights.group):
                if cols_buf is None:
                    cols = window
                else:
                    cols = cols_buf[:rows]
                    view = as_strided(
                        window[:, g * cpg :],
                        shape=(rows, k, cpg),
                        strides=(s * row_stride, d * row_stride, item),
                        writeable=False,
                    )
                    np.copyto(cols.reshape(rows, k, cpg), view)
                target = block if weights.group == 1 else block[:, g * opg : (g + 1) * opg]
                _matmul_into(cols, weights.mats[g], target)

        return compute

    def _shift_blocks(self, weights: _ConvWeights, nb: int) -> Callable[[Array, Array], None]:
        """Few output channels (stride 1): one GEMM gives every tap's output, then shifted sums.

        ``y = window @ W`` has a (tap, channel) column per tap, and output row ``t`` is the sum
        over taps ``j`` of ``y[t + j d, j]``: no im2col copy of the (wide) input.
        """
        shift = weights.shift
        assert shift is not None
        k, d, c_out = weights.k, self.dilation, weights.c_out
        taps_buf = np.empty((nb + (k - 1) * d, k * c_out), dtype=weights.dtype)

        def compute(window: Array, block: Array) -> None:
            rows = block.shape[0]
            taps = taps_buf[: window.shape[0]]
            np.matmul(window, shift, out=taps)
            np.copyto(block, taps[0:rows, 0:c_out])
            for j in range(1, k):
                block += taps[j * d : j * d + rows, j * c_out : (j + 1) * c_out]

        return compute

    def _depthwise(
        self,
        xt: Array,
        out: Array,
        weights: _ConvWeights,
        pl: int,
        pr: int,
        l_out: int,
        epi: _EpilogueRun,
        bi: int,
    ) -> None:
        assert weights.depthwise is not None
        length, c = xt.shape
        s, d = self.stride, self.dilation
        padded = np.zeros((length + pl + pr, c), dtype=weights.dtype)
        if self.pre_alpha is None:
            padded[pl : pl + length] = xt
        else:
            _leaky(xt, self.pre_alpha, padded[pl : pl + length])
        stop = (l_out - 1) * s + 1
        np.multiply(padded[0:stop:s], weights.depthwise[0], out=out)
        tmp = np.empty_like(out)
        for j in range(1, weights.k):
            np.multiply(padded[j * d : j * d + stop : s], weights.depthwise[j], out=tmp)
            out += tmp
        epi.apply(out, bi, 0, l_out, tmp, weights.bias)


def _bind_rows(func: Callable[..., None], *args: Any) -> Callable[[], None]:
    def task() -> None:
        func(*args)

    return task


@_register("Conv")
def _conv(ctx: _Ctx) -> Handler:
    return _ConvKernel(ctx)


class _ConvTransposeWeights:
    """Polyphase GEMM matrices of a 1-D ConvTranspose (group 1, dilation 1).

    Output row ``q * s + r`` (after cropping ``pad`` rows) sums ``x[q + a - m] @ w[:, :, p + m s]``
    over taps m, where ``r + pad = a s + p``. Phases sharing ``a`` form one GEMM whose output
    columns are a contiguous range of the (Q, s * C_out) view of the time-major output.
    """

    def __init__(self, w: Array, b: Array | None, stride: int, pad: int) -> None:
        c_in, c_out, k = w.shape
        self.dtype = w.dtype.newbyteorder("=")
        self.c_in = c_in
        self.c_out = c_out
        self.k = k
        self.stride = stride
        self.pad = pad
        self.bias = None if b is None else np.array(b, dtype=self.dtype).reshape(-1)
        # groups: (first phase, last phase + 1, lowest input shift, taps M,
        #          matrix (M * C_in, phases * C_out))
        self.groups: list[tuple[int, int, int, int, Array]] = []
        phases: dict[int, list[int]] = {}
        for r in range(stride):
            phases.setdefault((r + pad) // stride, []).append(r)
        for a, rs in sorted(phases.items()):
            taps = max(-(-(k - (r + pad) % stride) // stride) for r in rs)
            taps = max(taps, 1)
            mat = np.zeros((taps, c_in, len(rs), c_out), dtype=self.dtype)
            for j, r in enumerate(rs):
                p = (r + pad) % stride
                for m in range(taps):
                    tap = p + m * stride
                    if tap < k:
                        # shift a - m reads window row (taps - 1 - m)
                        mat[taps - 1 - m, :, j, :] = w[:, :, tap]
            self.groups.append(
                (rs[0], rs[-1] + 1, a - taps + 1, taps, mat.reshape(taps * c_in, len(rs) * c_out))
            )
        self.lowest = min(g[2] for g in self.groups)
        self.highest = max(g[2] + g[3] - 1 for g in self.groups)


class _ConvTransposeKernel(_Conv1d):
    """A prepared 1-D ConvTranspose node."""

    def __init__(self, ctx: _Ctx) -> None:
        super().__init__(ctx, "transposed convolutions")
        node = ctx.node
        self.output_padding = (node.get_ints("output_padding") or (0,))[0]
        self.output_shape = node.get_ints("output_shape")
        self.auto_pad = node.get_string("auto_pad", "NOTSET")
        w = ctx.const(1)
        self.w: Array | None = None  # kept only when the polyphase matrices cannot be static
        self.b: Array | None = None
        self.w_shape: tuple[int, ...] | None = None
        self.static: _ConvTransposeWeights | None = None
        if w is not None and (not ctx.has_input(2) or ctx.const(2) is not None):
            if w.ndim != 3:
                raise ctx.unsupported(f"only 1-D transposed convolutions (weight rank {w.ndim})")
            b = ctx.const(2)
            ctx.drop.update({1, 2})
            self.w_shape = w.shape
            pads = node.get_ints("pads") or (0, 0)
            if (
                self._polyphase_ok()
                and self.output_shape is None
                and self.auto_pad in ("NOTSET", "")
            ):
                # Padding is static: only the polyphase matrices are needed.
                self.static = _ConvTransposeWeights(w, b, self.stride, pads[0])
            else:
                self.w = np.array(w, dtype=w.dtype.newbyteorder("="))
                self.b = None if b is None else np.array(b, dtype=self.w.dtype)

    def _polyphase_ok(self) -> bool:
        return self.group == 1 and self.dilation == 1

    def _pads(self, length: int, k: int) -> tuple[int, int]:
        s, d = self.stride, self.dilation
        full = s * (length - 1) + self.output_padding + (k - 1) * d + 1
        if self.output_shape is not None or self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = self.output_shape[-1] if self.output_shape is not None else length * s
            total = full - target
            half = total // 2
            if self.auto_pad == "SAME_UPPER":
                return half, total - half
            return total - half, half
        if self.auto_pad == "VALID":
            return 0, 0
        pads = self.node.get_ints("pads") or (0, 0)
        return pads[0], pads[1]

    def __call__(self, x: Array, w: Array | None, b: Array | None, *extras: Array) -> Array:
        weight: Array | None = self.w
        bias = self.b
        if self.w_shape is None:
            weight = _arr(w)
            bias = b
        shape = self.w_shape if self.w_shape is not None else _arr(weight).shape
        if x.ndim != 3 or len(shape) != 3:
            raise UnsupportedOpError(
                "ConvTranspose", "only 1-D transposed convolutions are supported",
                node=self.node.name,
            )  # fmt: skip
        dtype = self.static.dtype if self.static is not None else _arr(weight).dtype
        if x.dtype != dtype:
            x = x.astype(dtype)
        n, c_in, length = x.shape
        if c_in != shape[0]:
            raise ValueError(f"input has {c_in} channels, weights expect {shape[0]}")
        k = shape[2]
        c_out = shape[1] * self.group
        pb, pe = self._pads(length, k)
        full = self.stride * (length - 1) + self.output_padding + (k - 1) * self.dilation + 1
        l_out = full - pb - pe
        if l_out <= 0:
            raise ValueError("transposed convolution output would be empty")
        epi = _EpilogueRun(self.epilogue, extras, (n, c_out, l_out))
        if self._polyphase_ok() and pb >= 0:
            poly = self.static
            if poly is None:
                assert weight is not None
                poly = _ConvTransposeWeights(weight, bias, self.stride, pb)
            q = -(-l_out // self.stride)
            buf = np.empty((n, q * self.stride, c_out), dtype=dtype)
            max_taps = max(g[3] for g in poly.groups)
            row_bytes = (max_taps * c_in + self.stride * c_out) * dtype.itemsize
            nb = max(8, min(2048, _BLOCK_BYTES // row_bytes))
            for bi in range(n):
                xt = _time_major(x, bi)
                flops = 2.0 * q * c_in * c_out * k
                tasks = [
                    _bind_rows(self._poly_rows, xt, buf[bi], poly, q0, q1, nb, l_out, epi, bi)
                    for q0, q1 in _chunks(q, flops, self.pool.threads)
                ]
                self.pool.run(tasks)
            y = buf[:, :l_out].transpose(0, 2, 1)
        else:
            assert weight is not None
            y = self._generic(x, weight, bias, pb, l_out, epi)
        return epi.finish(y, extras) if epi.rest else y

    def _poly_rows(
        self,
        xt: Array,
        out: Array,
        poly: _ConvTransposeWeights,
        q0: int,
        q1: int,
        nb: int,
        l_out: int,
        epi: _EpilogueRun,
        bi: int,
    ) -> None:
        c_in = xt.shape[1]
        s = self.stride
        c_out = poly.c_out
        alpha = self.pre_alpha
        dtype = poly.dtype
        item = dtype.itemsize
        out2d = out.reshape(-1, s * c_out)
        lowest, highest = poly.lowest, poly.highest
        windows = _InputWindows(xt, alpha, nb + highest - lowest, dtype)
        max_taps = max(g[3] for g in poly.groups)
        cols_buf = np.empty((nb, max_taps * c_in), dtype=dtype)
        scratch = np.empty((nb * s, c_out), dtype=dtype)
        for t0 in range(q0, q1, nb):
            t1 = min(t0 + nb, q1)
            rows = t1 - t0
            window = windows.rows(t0 + lowest, t1 - 1 + highest + 1)
            row_stride = window.strides[0]
            block = out2d[t0:t1]
            for r_lo, r_hi, shift, taps, mat in poly.groups:
                start = shift - lowest
                if taps == 1:
                    cols = window[start : start + rows]
                else:
                    cols = cols_buf[:rows, : taps * c_in]
                    view = as_strided(
                        window[start:],
                        shape=(rows, taps, c_in),
                        strides=(row_stride, row_stride, item),
                        writeable=False,
                    )
                    np.copyto(cols.reshape(rows, taps, c_in), view)
                _matmul_into(cols, mat, block[:, r_lo * c_out : r_hi * c_out])
            r_start = t0 * s
            r_end = min(t1 * s, l_out)
            if r_end > r_start:
                epi.apply(out[r_start:r_end], bi, r_start, r_end, scratch, poly.bias)

    def _generic(
        self,
        x: Array,
        weight: Array,
        bias: Array | None,
        pb: int,
        l_out: int,
        epi: _EpilogueRun,
    ) -> Array:
        """Any group/dilation/padding: one GEMM per tap, scattered into a full-length buffer."""
        n, c_in, length = x.shape
        _, opg, k = weight.shape
        g = self.group
        cpg = c_in // g
        s, d = self.stride, self.dilation
        full = s * (length - 1) + self.output_padding + (k - 1) * d + 1
        lo = min(pb, 0)
        buf = np.zeros((n, full - lo + max(pb + l_out - full, 0), g * opg), dtype=weight.dtype)
        for bi in range(n):
            xt = _time_major(x, bi)
            if self.pre_alpha is not None:
                act = np.empty(xt.shape, dtype=xt.dtype)
                _leaky(xt, self.pre_alpha, act)
                xt = act
            for gi in range(g):
                xg = xt[:, gi * cpg : (gi + 1) * cpg]
                for j in range(k):
                    contrib = xg @ weight[gi * cpg : (gi + 1) * cpg, :, j]
                    start = j * d - lo
                    buf[
                        bi, start : start + (length - 1) * s + 1 : s, gi * opg : (gi + 1) * opg
                    ] += contrib
        out = np.ascontiguousarray(buf[:, pb - lo : pb - lo + l_out])
        if bias is not None:
            out += bias
        for bi in range(n):
            epi.apply(out[bi], bi, 0, l_out, np.empty_like(out[bi]))
        return out.transpose(0, 2, 1)


@_register("ConvTranspose")
def _conv_transpose(ctx: _Ctx) -> Handler:
    return _ConvTransposeKernel(ctx)


# -- random ----------------------------------------------------------------------------------------


def _random_factory(like: bool) -> Factory:
    def factory(ctx: _Ctx) -> Handler:
        node = ctx.node
        mean = node.get_float("mean", 0.0)
        scale = node.get_float("scale", 1.0)
        out_name = node.outputs[0]
        state = ctx.state
        node_rng = (
            np.random.default_rng(int(node.get_float("seed", 0.0)))
            if "seed" in node.attributes
            else None
        )
        if like:
            attr_dtype = node.get_int("dtype", 0)
            fixed_dtype = _dtype_of(attr_dtype, node.op_type) if attr_dtype else None
            fixed_shape: tuple[int, ...] | None = None
        else:
            fixed_dtype = _dtype_of(node.get_int("dtype", DataType.FLOAT), node.op_type)
            fixed_shape = node.get_ints("shape")
            if fixed_shape is None:
                raise ctx.unsupported("RandomNormal needs a shape")

        def run(x: Array | None = None) -> Array:
            shape = fixed_shape if fixed_shape is not None else _arr(x).shape
            dtype = fixed_dtype if fixed_dtype is not None else _arr(x).dtype
            override = state.noise.get(out_name)
            if override is not None:
                arr = np.asarray(override, dtype=dtype)
                if arr.shape != shape:
                    raise InvalidInputError(
                        f"noise for {out_name!r} has shape {arr.shape}, the graph needs {shape}"
                    )
                view = arr.view()
                view.flags.writeable = False
                return view
            rng = node_rng if node_rng is not None and not state.seeded else state.rng
            draw_dtype = np.float64 if dtype == np.float64 else np.float32
            values = rng.standard_normal(shape, dtype=draw_dtype)
            if scale != 1.0:
                values *= scale
            if mean != 0.0:
                values += mean
            return values.astype(dtype, copy=False)

        return run

    return factory


_register("RandomNormalLike")(_random_factory(like=True))
_register("RandomNormal")(_random_factory(like=False))


# -- compiler --------------------------------------------------------------------------------------

_NONE_SLOT: Final = 0  # always None: missing optional inputs and dropped constant inputs
_DISCARD_SLOT: Final = 1  # receives outputs whose name is empty (unused optional outputs)
_FOLD_LIMIT_BYTES: Final = 16 << 20


@dataclass(slots=True)
class _Step:
    fn: Handler
    ins: tuple[int, ...]
    outs: tuple[int, ...]
    frees: tuple[int, ...]
    multi: bool
    op: str
    name: str


def _owned(a: Any) -> Array:
    """A private, aligned, native-endian, read-only copy of a constant."""
    arr = np.array(a, dtype=np.asarray(a).dtype.newbyteorder("="), order="C", copy=True)
    arr.flags.writeable = False
    return arr


class _Compiler:
    """Turns the model's graph into the session's step list (see the module docstring)."""

    def __init__(self, path: Path, pool: _Pool, state: _RunState) -> None:
        try:
            model = load_model(path)
        except ModelFormatError:
            raise
        except OnnxFormatError as err:
            raise ModelFormatError(f"{path.name}: {err}") from err
        graph = model.graph
        self.pool = pool
        self.state = state
        if "" not in model.opset_imports:
            raise ModelFormatError(f"{path.name}: the model imports no default-domain opset")
        self.opset = model.opset_imports[""]
        for node in graph.nodes:
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOpError(node.op_type, node=node.name, domain=node.domain)
            if node.op_type not in _OPS:
                raise UnsupportedOpError(node.op_type, node=node.name)
        self.initializer_names = {t.name for t in graph.initializers}
        self.inputs = tuple(v for v in graph.inputs if v.name not in self.initializer_names)
        self.outputs = graph.outputs
        self.consts: dict[str, Array] = {t.name: t.array for t in graph.initializers}
        self.output_names = [v.name for v in graph.outputs]
        nodes = self._toposort(graph.nodes)
        nodes = self._fold(nodes)
        self.random_outputs = {
            n.outputs[0] for n in nodes if n.op in _NONDETERMINISTIC and n.outputs
        }
        self._fuse_pads(nodes)
        self._fuse_activations(nodes)
        self._fuse_epilogues(nodes)
        self._build(nodes)
        # Drop every reference into the file mapping: constants still needed were copied.
        self.consts = {}

    # -- graph preparation --

    def _toposort(self, nodes: Sequence[Node]) -> list[_PNode]:
        available = {v.name for v in self.inputs} | set(self.consts) | {""}
        pending = list(nodes)
        ordered: list[Node] = []
        while pending:
            progress: list[Node] = []
            rest: list[Node] = []
            for node in pending:
                if all(name in available for name in node.inputs):
                    progress.append(node)
                    available.update(node.outputs)
                else:
                    rest.append(node)
            if not progress:
                missing = sorted({i for n in rest for i in n.inputs if i not in available})
                raise ModelFormatError(
                    f"graph has undefined values or a cycle (e.g. {missing[:3]})"
                )
            ordered.extend(progress)
            pending = rest
        for name in self.output_names:
            if name not in available:
                raise ModelFormatError(f"graph output {name!r} is never computed")
        pnodes: list[_PNode] = []
        for i, n in enumerate(ordered):
            inputs = list(n.inputs)
            if n.op_type in _CONV_OPS:
                inputs += [""] * (3 - len(inputs))  # X, W, B; fused operands follow
            pnodes.append(
                _PNode(node=n, op=n.op_type, inputs=inputs, outputs=list(n.outputs), pos=i)
            )
        return pnodes

    def _ctx(self, pnode: _PNode, donate: Sequence[bool] | None = None) -> _Ctx:
        consts = [self.consts.get(name) if name else None for name in pnode.inputs]
        return _Ctx(
            node=pnode.node,
            opset=self.opset,
            consts=consts,
            donate=list(donate) if donate is not None else [False] * max(len(pnode.inputs), 3),
            pool=self.pool,
            state=self.state,
            pre_alpha=pnode.pre_alpha,
            extra_pads=pnode.extra_pads,
            epilogue=pnode.epilogue,
        )

    def _fold(self, nodes: list[_PNode]) -> list[_PNode]:
        """Evaluate nodes whose inputs are all constant (Constant nodes included)."""
        kept: list[_PNode] = []
        for pnode in nodes:
            if pnode.op in _NONDETERMINISTIC or not all(
                name == "" or name in self.consts for name in pnode.inputs
            ):
                kept.append(pnode)
                continue
            ctx = self._ctx(pnode)
            handler = _OPS[pnode.op](ctx)
            args = [self.consts.get(name) if name else None for name in pnode.inputs]
            try:
                with np.errstate(all="ignore"):
                    result = handler(*args)
            except NumpyBackendError:
                raise
            except Exception as err:
                raise OpExecutionError(pnode.op, pnode.node.name, err) from err
            results = result if pnode.op in _MULTI_OUTPUT else (result,)
            if sum(_arr(r).nbytes for r in results) > _FOLD_LIMIT_BYTES:
                kept.append(pnode)
                continue
            for name, value in zip(pnode.outputs, results, strict=False):
                if name:
                    arr = _arr(value)
                    if arr.flags.writeable:
                        arr = arr.view()
                        arr.flags.writeable = False
                    self.consts[name] = arr
        return kept

    def _consumers(self, nodes: Iterable[_PNode]) -> dict[str, list[tuple[_PNode, int]]]:
        consumers: dict[str, list[tuple[_PNode, int]]] = {}
        for pnode in nodes:
            for i, name in enumerate(pnode.inputs):
                if name:
                    consumers.setdefault(name, []).append((pnode, i))
        return consumers

    def _time_pads(self, pad: _PNode) -> tuple[int, int] | None:
        """(before, after) when ``pad`` only zero-pads the last axis of a 3-D tensor."""
        if pad.node.get_string("mode", "constant") != "constant" or self.opset < 11:
            return None
        inputs = pad.inputs + [""] * (4 - len(pad.inputs))
        pads = self.consts.get(inputs[1])
        if pads is None:
            return None
        if inputs[2]:
            value = self.consts.get(inputs[2])
            if value is None or value.size != 1 or float(value.reshape(-1)[0]) != 0.0:
                return None
        p = _ints(pads)
        if inputs[3]:
            axes = self.consts.get(inputs[3])
            if axes is None or _ints(axes) not in ((2,), (-1,)) or len(p) != 2:
                return None
            before, after = p
        elif len(p) == 6 and not any(p[:2]) and not any(p[3:5]):
            before, after = p[2], p[5]
        else:
            return None
        return (before, after) if before >= 0 and after >= 0 else None

    def _fuse_pads(self, nodes: list[_PNode]) -> None:
        """Fold zero padding of the time axis into the padding of the Conv nodes reading it."""

        def takes(conv: _PNode) -> bool:
            if conv.op != "Conv":
                return False
            return conv.node.get_string("auto_pad", "NOTSET") in ("NOTSET", "")

        def give(conv: _PNode, extra: tuple[int, int]) -> None:
            conv.extra_pads = extra

        self._fold_into_convs(
            nodes, lambda pad: self._time_pads(pad) if pad.op == "Pad" else None, takes, give
        )

    def _fuse_activations(self, nodes: list[_PNode]) -> None:
        """Fold LeakyRelu/Relu into the input windows of the convolutions that read them."""

        def alpha(act: _PNode) -> float | None:
            if act.op == "Relu":
                return 0.0
            return act.node.get_float("alpha", 0.01) if act.op == "LeakyRelu" else None

        def give(conv: _PNode, value: float) -> None:
            conv.pre_alpha = value

        self._fold_into_convs(
            nodes, alpha, lambda conv: conv.op in _CONV_OPS and conv.pre_alpha is None, give
        )

    def _fold_into_convs[T](
        self,
        nodes: list[_PNode],
        value_of: Callable[[_PNode], T | None],
        takes: Callable[[_PNode], bool],
        give: Callable[[_PNode, T], None],
    ) -> None:
        """Remove each node with a ``value_of`` whose output only convolutions read.

        Each such reader must read it once, as its data input (index 0), with no padding folded
        in yet, and be one that it ``takes``; it then reads the node's input and is given the
        value. A graph output stays.
        """
        consumers = self._consumers(nodes)
        outputs = set(self.output_names)
        removed: set[int] = set()
        for pnode in nodes:
            if pnode.outputs[0] in outputs or (value := value_of(pnode)) is None:
                continue
            users = consumers.get(pnode.outputs[0], [])
            if not users or not all(
                i == 0 and u.extra_pads == (0, 0) and u.inputs.count(u.inputs[0]) == 1 and takes(u)
                for u, i in users
            ):
                continue
            for user, _ in users:
                user.inputs[0] = pnode.inputs[0]
                give(user, value)
                user.before.insert(0, pnode.node.name)
            removed.add(id(pnode))
        nodes[:] = [n for n in nodes if id(n) not in removed]

    def _fuse_epilogues(self, nodes: list[_PNode]) -> None:
        """Fold single-consumer element-wise chains into the convolutions that produce them."""
        consumers = self._consumers(nodes)
        producer: dict[str, _PNode] = {o: n for n in nodes for o in n.outputs if o}
        outputs = set(self.output_names)
        graph_inputs = {v.name for v in self.inputs}
        removed: set[int] = set()
        for conv in nodes:
            if conv.op not in _CONV_OPS or id(conv) in removed:
                continue
            extras: list[str] = []
            while True:
                y = conv.outputs[0]
                users = consumers.get(y, [])
                if y in outputs or len(users) != 1:
                    break
                user, index = users[0]
                if user.op in _EPI_UNARY:
                    alpha = user.node.get_float("alpha", 0.01) if user.op == "LeakyRelu" else 0.0
                    conv.epilogue.append(_Epi(user.op, alpha=alpha))
                elif user.op in _EPI_BINARY and len(user.inputs) == 2:
                    other = user.inputs[1 - index]
                    if other == y:
                        break
                    source = producer.get(other)
                    if not (
                        other in self.consts
                        or other in graph_inputs
                        or (source is not None and source.pos < conv.pos)
                    ):
                        break
                    extras.append(other)
                    conv.epilogue.append(
                        _Epi(user.op, operand=len(extras) - 1, conv_left=index == 0)
                    )
                    consumers.setdefault(other, []).append((conv, -1))
                else:
                    break
                conv.outputs = [user.outputs[0]]
                conv.fused.append(user.node.name)
                producer[user.outputs[0]] = conv
                removed.add(id(user))
            conv.inputs += extras
        nodes[:] = [n for n in nodes if id(n) not in removed]

    # -- plan --

    def _build(self, nodes: list[_PNode]) -> None:  # noqa: C901 - one pass over the op kinds
        slots: dict[str, int] = {"": _NONE_SLOT, "\0discard": _DISCARD_SLOT}

        def slot(name: str) -> int:
            if not name:
                return _NONE_SLOT
            if name not in slots:
                slots[name] = len(slots)
            return slots[name]

        for v in self.inputs:
            slot(v.name)
        outputs = set(self.output_names)
        last_use: dict[str, int] = {}
        for i, pnode in enumerate(nodes):
            for name in pnode.inputs:
                if name:
                    last_use[name] = i
        immutable_root = 0
        roots: dict[str, frozenset[int]] = {}
        members: dict[int, list[str]] = {immutable_root: []}
        for name in [v.name for v in self.inputs] + list(self.consts):
            roots[name] = frozenset({immutable_root})
        next_root = 1
        steps: list[_Step] = []
        init: dict[int, Array] = {}
        end = len(nodes)

        def dead_after(name: str, i: int) -> bool:
            return name not in outputs and last_use.get(name, -1) <= i

        for i, pnode in enumerate(nodes):
            donate = [False] * max(len(pnode.inputs), 3)
            for p in _DONATABLE.get(pnode.op, ()):
                if p >= len(pnode.inputs) or not pnode.inputs[p]:
                    continue
                name = pnode.inputs[p]
                rs = roots.get(name, frozenset({immutable_root}))
                if immutable_root in rs or not dead_after(name, i):
                    continue
                if all(dead_after(m, i) for r in rs for m in members[r]):
                    donate[p] = True
            ctx = self._ctx(pnode, donate)
            handler = _OPS[pnode.op](ctx)
            # Handlers read constants while they are built; a closure that keeps its context
            # must not keep views into the model file alive.
            ctx.consts = []
            ins: list[int] = []
            for p, name in enumerate(pnode.inputs):
                if not name or p in ctx.drop:
                    ins.append(_NONE_SLOT)
                    continue
                index = slot(name)
                if name in self.consts and index not in init:
                    init[index] = _owned(self.consts[name])
                ins.append(index)
            # alias roots of the outputs
            if pnode.op in _FRESH or (pnode.op in _DONATABLE and not any(donate)):
                out_roots: list[frozenset[int]] = []
                for _ in pnode.outputs:
                    out_roots.append(frozenset({next_root}))
                    members[next_root] = []
                    next_root += 1
            else:
                sources = (
                    [pnode.inputs[p] for p, d in enumerate(donate) if d]
                    if pnode.op in _DONATABLE
                    else [n for n in pnode.inputs if n]
                )
                merged = frozenset().union(
                    *(roots.get(n, frozenset({immutable_root})) for n in sources)
                )
                if not merged:
                    merged = frozenset({next_root})
                    members[next_root] = []
                    next_root += 1
                out_roots = [merged] * len(pnode.outputs)
            for name, rs in zip(pnode.outputs, out_roots, strict=True):
                if name:
                    roots[name] = rs
                    for r in rs:
                        members[r].append(name)
                    last_use.setdefault(name, i)  # produced but never read: free at once
            frees = sorted(
                {
                    slot(name)
                    for name in (*pnode.inputs, *pnode.outputs)
                    if name
                    and name not in self.consts
                    and name not in outputs
                    and last_use.get(name, end) <= i
                }
            )
            steps.append(
                _Step(
                    fn=handler,
                    ins=tuple(ins),
                    outs=tuple(slot(name) if name else _DISCARD_SLOT for name in pnode.outputs),
                    frees=tuple(frees) + ((_DISCARD_SLOT,) if "" in pnode.outputs else ()),
                    multi=pnode.op in _MULTI_OUTPUT,
                    op=pnode.op,
                    name="+".join([*pnode.before, pnode.node.name or pnode.op, *pnode.fused]),
                )
            )
        for name in self.output_names:
            index = slot(name)
            if name in self.consts and index not in init:
                init[index] = _owned(self.consts[name])
        self.steps = steps
        self.slot_count = len(slots)
        self.init = init
        self.slot_names = {index: name for name, index in slots.items()}
        self.input_slots = {v.name: slots[v.name] for v in self.inputs}
        self.output_slots = {name: slots[name] for name in self.output_names}
        # An output that may share memory with an input or a constant is copied on return.
        self.copy_outputs = {
            name for name in self.output_names if immutable_root in roots.get(name, frozenset())
        }


# -- session ---------------------------------------------------------------------------------------


def _node_arg(value: ValueInfo) -> NodeArg:
    elem = value.elem_type
    type_name = f"tensor({_TYPE_NAMES.get(elem, 'undefined')})" if elem is not None else "unknown"
    return NodeArg(name=value.name, type=type_name, shape=tuple(value.shape or ()))


class NumpySession:
    """Run an ONNX model with numpy, with the interface of ``onnxruntime.InferenceSession``.

    ``threads`` is the number of threads that work on one run (default ``os.cpu_count()``): the
    calling thread plus a pool of ``threads - 1`` workers that the big convolutions are split
    over. ``threads=1`` creates no pool. ``seed`` seeds the session's random generator (used by
    RandomNormalLike when ``run`` gets no seed). Call :meth:`close` (or use the session as a
    context manager) to stop the pool; one ``run`` executes at a time per session.

    Raises :class:`ModelFormatError` for a malformed file and :class:`UnsupportedOpError` for a
    graph using operators that are not implemented, both while loading.
    """

    def __init__(
        self, model_path: Path | str, *, threads: int | None = None, seed: int | None = None
    ) -> None:
        """Load and compile ``model_path``."""
        count = threads if threads is not None else (os.cpu_count() or 1)
        if count < 1:
            raise ValueError(f"threads must be at least 1, got {count}")
        self._threads = count
        self._lock = threading.Lock()
        self._state = _RunState(np.random.default_rng(seed))
        self._pool = _Pool(1)  # single-threaded while compiling (constant folding)
        compiler = _Compiler(Path(model_path), self._pool, self._state)
        self._steps = compiler.steps
        self._slot_count = compiler.slot_count
        self._init = compiler.init
        self._input_slots = compiler.input_slots
        self._slot_names = compiler.slot_names
        self._output_slots = compiler.output_slots
        self._copy_outputs = compiler.copy_outputs
        self._random_outputs = frozenset(compiler.random_outputs)
        self._inputs = [_node_arg(v) for v in compiler.inputs]
        self._outputs = [_node_arg(v) for v in compiler.outputs]
        self._input_types = {
            v.name: (v.elem_type, v.shape) for v in compiler.inputs if v.elem_type is not None
        }
        self._output_order = [v.name for v in compiler.outputs]
        del compiler
        # Start the workers only now, so a failed load leaves no threads behind.
        pool = _Pool(count)
        self._pool.threads = count
        self._pool.executor = pool.executor
        self._finalizer: weakref.finalize[Any, Any] | None = (
            weakref.finalize(self, pool.executor.shutdown, wait=False)
            if pool.executor is not None
            else None
        )
        self._closed = False

    # -- onnxruntime-compatible surface --

    def get_inputs(self) -> list[NodeArg]:
        """The graph inputs a caller feeds (initializers excluded), in graph order."""
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        """The graph outputs, in graph order."""
        return list(self._outputs)

    @property
    def threads(self) -> int:
        """Threads working on one run (the caller's plus the pool's)."""
        return self._threads

    @property
    def random_outputs(self) -> frozenset[str]:
        """Names of the RandomNormal(Like) outputs that ``run(noise=...)`` can override."""
        return self._random_outputs

    def run(
        self,
        output_names: list[str] | None,
        input_feed: Mapping[str, npt.ArrayLike],
        run_options: object = None,
        *,
        noise: Mapping[str, npt.ArrayLike] | None = None,
        seed: int | None = None,
    ) -> list[Array]:
        """Compute ``output_names`` (all outputs when None) from ``input_feed``.

        ``noise`` replaces the output of RandomNormal(Like) nodes, keyed by their output tensor
        name; ``seed`` draws this run's random values from a new generator seeded with it.
        ``run_options`` is accepted for compatibility and ignored.
        """
        del run_options
        names = list(self._output_order) if output_names is None else list(output_names)
        for name in names:
            if name not in self._output_slots:
                raise InvalidInputError(f"unknown output {name!r}")
        feeds = self._check_feed(input_feed)
        noise_arrays: dict[str, Array] = {}
        for key, value in (noise or {}).items():
            if key not in self._random_outputs:
                raise InvalidInputError(f"{key!r} is not the output of a RandomNormal(Like) node")
            noise_arrays[key] = np.asarray(value)
        with self._lock:
            if self._closed:
                raise SessionClosedError("the session has been closed")
            state = self._state
            saved_rng = state.rng
            if seed is not None:
                state.rng = np.random.default_rng(seed)
                state.seeded = True
            state.noise = noise_arrays
            _BlasPin.acquire()
            try:
                with np.errstate(all="ignore"):
                    values = self._execute(feeds)
            finally:
                _BlasPin.release()
                state.noise = {}
                state.rng = saved_rng
                state.seeded = False
        results: list[Array] = []
        for name in names:
            value = _arr(values[self._output_slots[name]])
            if name in self._copy_outputs or not value.flags.writeable:
                value = np.array(value, copy=True)
            elif not value.flags.c_contiguous:
                value = np.ascontiguousarray(value)
            results.append(value)
        return results

    def _check_feed(self, input_feed: Mapping[str, npt.ArrayLike]) -> list[tuple[int, Array]]:
        feeds: list[tuple[int, Array]] = []
        for name in input_feed:
            if name not in self._input_slots:
                raise InvalidInputError(f"unknown input {name!r}")
        for name, index in self._input_slots.items():
            if name not in input_feed:
                raise InvalidInputError(f"missing input {name!r}")
            arr = np.asarray(input_feed[name])
            declared = self._input_types.get(name)
            if declared is not None:
                elem, shape = declared
                if elem and elem in _TYPE_NAMES and elem != DataType.STRING:
                    expected = numpy_dtype(elem).newbyteorder("=")
                    if arr.dtype != expected:
                        raise InvalidInputError(
                            f"input {name!r} has dtype {arr.dtype}, the model expects {expected}"
                        )
                if shape is not None:
                    if arr.ndim != len(shape):
                        raise InvalidInputError(
                            f"input {name!r} has rank {arr.ndim}, the model expects {len(shape)}"
                        )
                    for got, want in zip(arr.shape, shape, strict=True):
                        if isinstance(want, int) and want >= 0 and got != want:
                            raise InvalidInputError(
                                f"input {name!r} has shape {arr.shape}, the model expects {shape}"
                            )
            view = arr.view()
            view.flags.writeable = False
            feeds.append((index, view))
        return feeds

    def _execute(self, feeds: Sequence[tuple[int, Array]]) -> list[Any]:
        values: list[Any] = [None] * self._slot_count
        for index, value in self._init.items():
            values[index] = value
        for index, value in feeds:
            values[index] = value
        step: _Step | None = None
        try:
            for step in self._steps:
                fn, ins, outs, frees = step.fn, step.ins, step.outs, step.frees
                if step.multi:
                    for out, result in zip(outs, fn(*[values[i] for i in ins]), strict=False):
                        values[out] = result
                else:
                    values[outs[0]] = fn(*[values[i] for i in ins])
                for index in frees:
                    values[index] = None
        except NumpyBackendError:
            raise
        except Exception as err:
            if step is None:  # pragma: no cover - the loop had not started
                raise
            raise OpExecutionError(step.op, step.name, err) from err
        return values

    # -- lifetime --

    def close(self) -> None:
        """Stop the worker threads; the session cannot run afterwards."""
        with self._lock:
            self._closed = True
            executor = self._pool.executor
            self._pool.executor = None
            self._pool.threads = 1
        if executor is not None:
            executor.shutdown(wait=True)
        if self._finalizer is not None:
            self._finalizer.detach()

    def __enter__(self) -> Self:
        """Use the session as a context manager that closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the session."""
        self.close()
