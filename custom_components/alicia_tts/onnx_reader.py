"""A small reader for ONNX model files that needs neither ``onnx`` nor ``protobuf``.

An ``.onnx`` file is a serialized ``onnx.ModelProto`` message in the protobuf wire format. This
module decodes just the parts an inference engine needs: the opset imports, the graph with its
nodes (op type, inputs, outputs, attributes), initializers, inputs and outputs. Unknown fields
are skipped, as protobuf readers do, so files written by newer exporters still load.

Tensor payloads stored as ``raw_data`` (what every common exporter writes) become read-only
``numpy.frombuffer`` views over the one buffer that holds the file, so loading a model does not
copy its weights. :func:`load_model` maps the file with ``mmap``; :func:`parse_model` reads any
bytes-like object. Tensors stored in the typed repeated fields (``float_data``, ``int32_data``,
``int64_data``, ``double_data``, ``uint64_data``, ``string_data``) are decoded into new arrays.

Every structural problem (truncated data, a length running past its message, a wrong wire type,
invalid UTF-8, a payload whose size does not match its shape) raises :class:`OnnxFormatError`.
"""

from __future__ import annotations  # noqa: TID251 - the musl proof's CPython 3.13 imports it

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
import math
import mmap
import os
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Attribute",
    "AttributeType",
    "AttributeValue",
    "DataType",
    "Graph",
    "Model",
    "Node",
    "OnnxFormatError",
    "Tensor",
    "ValueInfo",
    "load_model",
    "numpy_dtype",
    "parse_model",
]


class OnnxFormatError(ValueError):
    """The data is not a well-formed ONNX model (or uses a storage feature not supported here)."""


class DataType(IntEnum):
    """``onnx.TensorProto.DataType`` element types."""

    UNDEFINED = 0
    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    UINT16 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    STRING = 8
    BOOL = 9
    FLOAT16 = 10
    DOUBLE = 11
    UINT32 = 12
    UINT64 = 13
    COMPLEX64 = 14
    COMPLEX128 = 15
    BFLOAT16 = 16


class AttributeType(IntEnum):
    """``onnx.AttributeProto.AttributeType``."""

    UNDEFINED = 0
    FLOAT = 1
    INT = 2
    STRING = 3
    TENSOR = 4
    GRAPH = 5
    FLOATS = 6
    INTS = 7
    STRINGS = 8
    TENSORS = 9
    GRAPHS = 10
    SPARSE_TENSOR = 11
    SPARSE_TENSORS = 12
    TYPE_PROTO = 13
    TYPE_PROTOS = 14


# Little-endian numpy dtypes of the element types that numpy can represent.
_NUMPY_DTYPES: dict[int, np.dtype[Any]] = {
    DataType.FLOAT: np.dtype("<f4"),
    DataType.UINT8: np.dtype("u1"),
    DataType.INT8: np.dtype("i1"),
    DataType.UINT16: np.dtype("<u2"),
    DataType.INT16: np.dtype("<i2"),
    DataType.INT32: np.dtype("<i4"),
    DataType.INT64: np.dtype("<i8"),
    DataType.STRING: np.dtype(object),
    DataType.BOOL: np.dtype("?"),
    DataType.FLOAT16: np.dtype("<f2"),
    DataType.DOUBLE: np.dtype("<f8"),
    DataType.UINT32: np.dtype("<u4"),
    DataType.UINT64: np.dtype("<u8"),
    DataType.COMPLEX64: np.dtype("<c8"),
    DataType.COMPLEX128: np.dtype("<c16"),
}


def numpy_dtype(data_type: int) -> np.dtype[Any]:
    """Return the numpy dtype of an ONNX element type, or raise :class:`OnnxFormatError`."""
    try:
        return _NUMPY_DTYPES[data_type]
    except KeyError:
        name = DataType(data_type).name if data_type in DataType else str(data_type)
        raise OnnxFormatError(f"unsupported tensor element type {name}") from None


@dataclass(frozen=True, slots=True)
class Tensor:
    """A ``TensorProto``: a named constant array.

    ``array`` has shape ``dims``. It is a read-only view into the model buffer when the tensor
    was stored as ``raw_data`` (little-endian, possibly not aligned), otherwise a new array.
    """

    name: str
    data_type: int
    dims: tuple[int, ...]
    array: npt.NDArray[Any] = field(repr=False)


type AttributeValue = (
    float
    | int
    | bytes
    | Tensor
    | Graph
    | tuple[float, ...]
    | tuple[int, ...]
    | tuple[bytes, ...]
    | tuple[Tensor, ...]
    | tuple[Graph, ...]
    | None
)
"""An attribute's value; ``None`` for kinds this reader does not decode (sparse, type protos)."""


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``AttributeProto``: a named, typed node parameter."""

    name: str
    type: AttributeType
    value: AttributeValue
    ref_attr_name: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """A ``NodeProto``: one operator application."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str = ""
    domain: str = ""
    attributes: Mapping[str, Attribute] = field(default_factory=dict)

    def _get(self, name: str, kinds: tuple[AttributeType, ...]) -> AttributeValue:
        attr = self.attributes.get(name)
        if attr is None:
            return None
        if attr.type not in kinds:
            raise OnnxFormatError(
                f"node {self.name or self.op_type!r}: attribute {name!r} is {attr.type.name}, "
                f"expected {' or '.join(kind.name for kind in kinds)}"
            )
        return attr.value

    def get_int(self, name: str, default: int) -> int:
        """Return an INT attribute, or ``default`` when it is absent."""
        value = self._get(name, (AttributeType.INT,))
        return value if isinstance(value, int) else default

    def get_float(self, name: str, default: float) -> float:
        """Return a FLOAT attribute (an INT is accepted too), or ``default``."""
        value = self._get(name, (AttributeType.FLOAT, AttributeType.INT))
        return float(value) if isinstance(value, float | int) else default

    def get_string(self, name: str, default: str) -> str:
        """Return a STRING attribute decoded as UTF-8, or ``default``."""
        value = self._get(name, (AttributeType.STRING,))
        if not isinstance(value, bytes):
            return default
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise OnnxFormatError(f"attribute {name!r} is not valid UTF-8") from err

    def get_ints(self, name: str) -> tuple[int, ...] | None:
        """Return an INTS attribute, or ``None`` when it is absent."""
        value = self._get(name, (AttributeType.INTS,))
        return (
            tuple(int(v) for v in value if isinstance(v, int)) if isinstance(value, tuple) else None
        )

    def get_floats(self, name: str) -> tuple[float, ...] | None:
        """Return a FLOATS attribute, or ``None`` when it is absent."""
        value = self._get(name, (AttributeType.FLOATS,))
        if not isinstance(value, tuple):
            return None
        return tuple(float(v) for v in value if isinstance(v, float | int))

    def get_strings(self, name: str) -> tuple[str, ...] | None:
        """Return a STRINGS attribute decoded as UTF-8, or ``None`` when it is absent."""
        value = self._get(name, (AttributeType.STRINGS,))
        if not isinstance(value, tuple):
            return None
        try:
            return tuple(v.decode("utf-8") for v in value if isinstance(v, bytes))
        except UnicodeDecodeError as err:
            raise OnnxFormatError(f"attribute {name!r} is not valid UTF-8") from err

    def get_tensor(self, name: str) -> Tensor | None:
        """Return a TENSOR attribute, or ``None`` when it is absent."""
        value = self._get(name, (AttributeType.TENSOR,))
        assert value is None or isinstance(value, Tensor)
        return value


type Dim = int | str | None
"""One dimension of a declared shape: a size, a symbolic name, or unknown."""


@dataclass(frozen=True, slots=True)
class ValueInfo:
    """A ``ValueInfoProto``: a graph input, output or annotated intermediate value.

    ``elem_type`` is ``None`` for non-tensor types; ``shape`` is ``None`` when no shape is given.
    """

    name: str
    elem_type: int | None = None
    shape: tuple[Dim, ...] | None = None


@dataclass(frozen=True, slots=True)
class Graph:
    """A ``GraphProto``: nodes in their stored order plus the graph's named values."""

    name: str
    nodes: tuple[Node, ...]
    initializers: tuple[Tensor, ...]
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    value_info: tuple[ValueInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Model:
    """A ``ModelProto``. ``opset_imports`` maps an operator domain ("" is ONNX's) to its version."""

    ir_version: int
    opset_imports: Mapping[str, int]
    graph: Graph
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


# -- wire format --------------------------------------------------------------------------------

_VARINT = 0
_FIXED64 = 1
_LEN = 2
_FIXED32 = 5
_MAX_DEPTH = 32  # nested graphs (If/Loop bodies); guards against hostile recursion

type _Buffer = bytes | bytearray | memoryview | mmap.mmap


class _Wire:
    """Low-level decoding over one buffer; positions are absolute offsets into it."""

    __slots__ = ("buf", "view")

    def __init__(self, data: _Buffer) -> None:
        self.view = memoryview(data).cast("B")
        # Indexing bytes is faster than indexing a memoryview; mmap indexes fine as well.
        self.buf: bytes | bytearray | mmap.mmap = (
            data if isinstance(data, bytes | bytearray | mmap.mmap) else self.view.tobytes()
        )

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """Decode an unsigned varint at ``pos``; return (value, next position)."""
        buf = self.buf
        result = 0
        shift = 0
        while pos < end:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise OnnxFormatError(f"varint longer than 10 bytes at offset {pos}")
        raise OnnxFormatError(f"truncated varint at offset {pos}")

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """Yield (field number, wire type, a, b) for each field of the message in [start, end).

        For varints ``a`` is the value; for the other wire types [a, b) is the payload's range.
        """
        pos = start
        while pos < end:
            key, pos = self.varint(pos, end)
            number = key >> 3
            wire = key & 7
            if number == 0:
                raise OnnxFormatError(f"invalid field number 0 at offset {pos}")
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
                yield number, wire, value, 0
            elif wire == _LEN:
                length, pos = self.varint(pos, end)
                stop = pos + length
                if stop > end:
                    raise OnnxFormatError(
                        f"field {number} at offset {pos} runs {stop - end} bytes past its message"
                    )
                yield number, wire, pos, stop
                pos = stop
            elif wire in (_FIXED32, _FIXED64):
                stop = pos + (4 if wire == _FIXED32 else 8)
                if stop > end:
                    raise OnnxFormatError(f"truncated fixed-width field {number} at offset {pos}")
                yield number, wire, pos, stop
                pos = stop
            else:
                raise OnnxFormatError(f"unsupported wire type {wire} (field {number})")
        if pos != end:  # pragma: no cover - fields() never overshoots; kept as an invariant
            raise OnnxFormatError("message overran its end")

    def string(self, a: int, b: int) -> str:
        """Decode a UTF-8 string payload."""
        try:
            return bytes(self.view[a:b]).decode("utf-8")
        except UnicodeDecodeError as err:
            raise OnnxFormatError(f"invalid UTF-8 in string at offset {a}") from err

    def packed_varints(self, a: int, b: int) -> list[int]:
        """Decode a packed repeated varint payload."""
        out: list[int] = []
        pos = a
        while pos < b:
            value, pos = self.varint(pos, b)
            out.append(value)
        return out

    def fixed_array(self, a: int, b: int, dtype: str) -> npt.NDArray[Any]:
        """View a packed fixed-width payload as an array (a copy when it is misaligned)."""
        itemsize = np.dtype(dtype).itemsize
        if (b - a) % itemsize:
            raise OnnxFormatError(f"packed field at offset {a} is not a multiple of {itemsize}")
        return np.frombuffer(self.view, dtype=dtype, count=(b - a) // itemsize, offset=a)


@dataclass(slots=True)
class _TypedData:
    """A ``TensorProto``'s values stored in its typed repeated fields (not ``raw_data``)."""

    float_data: list[npt.NDArray[Any]] = field(default_factory=list)
    double_data: list[npt.NDArray[Any]] = field(default_factory=list)
    int32_data: list[int] = field(default_factory=list)
    int64_data: list[int] = field(default_factory=list)
    uint64_data: list[int] = field(default_factory=list)
    string_data: list[bytes] = field(default_factory=list)


def _signed64(value: int) -> int:
    """Interpret a decoded varint as a two's-complement int64 (int32 fields sign-extend too)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _expect(wire: int, expected: int, what: str) -> None:
    if wire != expected:
        raise OnnxFormatError(f"{what}: wire type {wire}, expected {expected}")


class _Parser:
    """Decode the ModelProto tree; see the module docstring."""

    def __init__(self, data: _Buffer) -> None:
        self.w = _Wire(data)

    # -- helpers for repeated scalar fields that may or may not be packed --

    def _ints(self, wire: int, a: int, b: int, into: list[int]) -> None:
        if wire == _LEN:
            into.extend(_signed64(v) for v in self.w.packed_varints(a, b))
        elif wire == _VARINT:
            into.append(_signed64(a))
        else:
            raise OnnxFormatError(f"repeated integer field has wire type {wire}")

    def _uints(self, wire: int, a: int, b: int, into: list[int]) -> None:
        if wire == _LEN:
            into.extend(self.w.packed_varints(a, b))
        elif wire == _VARINT:
            into.append(a)
        else:
            raise OnnxFormatError(f"repeated integer field has wire type {wire}")

    def _fixed(self, wire: int, a: int, b: int, dtype: str, into: list[npt.NDArray[Any]]) -> None:
        width = 8 if dtype.endswith("8") else 4
        if wire in (_LEN, _FIXED64 if width == 8 else _FIXED32):
            into.append(self.w.fixed_array(a, b, dtype))
        else:
            raise OnnxFormatError(f"repeated fixed-width field has wire type {wire}")

    def _string(self, wire: int, a: int, b: int, what: str) -> str:
        """A string field's value (``what`` names the field in a wire type error)."""
        _expect(wire, _LEN, what)
        return self.w.string(a, b)

    def _bytes(self, wire: int, a: int, b: int, what: str) -> bytes:
        """A bytes field's value (``what`` names the field in a wire type error)."""
        _expect(wire, _LEN, what)
        return bytes(self.w.view[a:b])

    # -- messages --

    def model(self) -> Model:
        w = self.w
        end = len(w.view)
        ir_version = 0
        opsets: dict[str, int] = {}
        graph: Graph | None = None
        strings = {2: "", 3: "", 4: "", 6: ""}
        model_version = 0
        metadata: dict[str, str] = {}
        for number, wire, a, b in w.fields(0, end):
            if number == 1:
                _expect(wire, _VARINT, "ModelProto.ir_version")
                ir_version = _signed64(a)
            elif number in strings:
                strings[number] = self._string(wire, a, b, "ModelProto string")
            elif number == 5:
                _expect(wire, _VARINT, "ModelProto.model_version")
                model_version = _signed64(a)
            elif number == 7:
                _expect(wire, _LEN, "ModelProto.graph")
                graph = self.graph(a, b, 0)
            elif number == 8:
                _expect(wire, _LEN, "ModelProto.opset_import")
                domain, version = self.opset(a, b)
                opsets[domain] = version
            elif number == 14:
                _expect(wire, _LEN, "ModelProto.metadata_props")
                key, value = self.string_entry(a, b)
                metadata[key] = value
        if graph is None:
            raise OnnxFormatError("not an ONNX model: no graph")
        return Model(
            ir_version=ir_version,
            opset_imports=opsets,
            graph=graph,
            producer_name=strings[2],
            producer_version=strings[3],
            domain=strings[4],
            model_version=model_version,
            doc_string=strings[6],
            metadata=metadata,
        )

    def opset(self, start: int, end: int) -> tuple[str, int]:
        domain = ""
        version = 0
        for number, wire, a, b in self.w.fields(start, end):
            if number == 1:
                domain = self._string(wire, a, b, "OperatorSetIdProto.domain")
            elif number == 2:
                _expect(wire, _VARINT, "OperatorSetIdProto.version")
                version = _signed64(a)
        if domain == "ai.onnx":
            domain = ""
        return domain, version

    def string_entry(self, start: int, end: int) -> tuple[str, str]:
        key = value = ""
        for number, wire, a, b in self.w.fields(start, end):
            if number in (1, 2):
                _expect(wire, _LEN, "StringStringEntryProto")
                if number == 1:
                    key = self.w.string(a, b)
                else:
                    value = self.w.string(a, b)
        return key, value

    def graph(self, start: int, end: int, depth: int) -> Graph:
        if depth > _MAX_DEPTH:
            raise OnnxFormatError("graphs nested too deeply")
        name = ""
        nodes: list[Node] = []
        initializers: list[Tensor] = []
        inputs: list[ValueInfo] = []
        outputs: list[ValueInfo] = []
        value_info: list[ValueInfo] = []
        for number, wire, a, b in self.w.fields(start, end):
            if number in (1, 2, 5, 11, 12, 13, 15):
                _expect(wire, _LEN, f"GraphProto field {number}")
            if number == 1:
                nodes.append(self.node(a, b, depth))
            elif number == 2:
                name = self.w.string(a, b)
            elif number == 5:
                initializers.append(self.tensor(a, b))
            elif number == 11:
                inputs.append(self.value_info(a, b))
            elif number == 12:
                outputs.append(self.value_info(a, b))
            elif number == 13:
                value_info.append(self.value_info(a, b))
            elif number == 15:
                raise OnnxFormatError("sparse initializers are not supported")
        return Graph(
            name=name,
            nodes=tuple(nodes),
            initializers=tuple(initializers),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            value_info=tuple(value_info),
        )

    def node(self, start: int, end: int, depth: int) -> Node:
        w = self.w
        inputs: list[str] = []
        outputs: list[str] = []
        name = op_type = domain = ""
        attributes: dict[str, Attribute] = {}
        for number, wire, a, b in w.fields(start, end):
            if number in (1, 2, 3, 4, 5, 7):
                _expect(wire, _LEN, f"NodeProto field {number}")
            if number == 1:
                inputs.append(w.string(a, b))
            elif number == 2:
                outputs.append(w.string(a, b))
            elif number == 3:
                name = w.string(a, b)
            elif number == 4:
                op_type = w.string(a, b)
            elif number == 5:
                attr = self.attribute(a, b, depth)
                attributes[attr.name] = attr
            elif number == 7:
                domain = w.string(a, b)
        if not op_type:
            raise OnnxFormatError(f"node {name!r} has no op_type")
        if domain == "ai.onnx":
            domain = ""
        return Node(
            op_type=op_type,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            name=name,
            domain=domain,
            attributes=attributes,
        )

    def attribute(self, start: int, end: int, depth: int) -> Attribute:  # noqa: C901 - a field table
        w = self.w
        name = ref = ""
        declared = AttributeType.UNDEFINED
        f: float | None = None
        i: int | None = None
        s: bytes | None = None
        t: Tensor | None = None
        g: Graph | None = None
        floats: list[npt.NDArray[Any]] = []
        ints: list[int] = []
        strings: list[bytes] = []
        tensors: list[Tensor] = []
        graphs: list[Graph] = []
        seen_other = False
        for number, wire, a, b in w.fields(start, end):
            if number == 1:
                name = self._string(wire, a, b, "AttributeProto.name")
            elif number == 21:
                ref = self._string(wire, a, b, "AttributeProto.ref_attr_name")
            elif number == 20:
                _expect(wire, _VARINT, "AttributeProto.type")
                try:
                    declared = AttributeType(a)
                except ValueError:
                    raise OnnxFormatError(f"attribute {name!r}: unknown type {a}") from None
            elif number == 2:
                _expect(wire, _FIXED32, "AttributeProto.f")
                f = float(struct.unpack_from("<f", w.view, a)[0])
            elif number == 3:
                _expect(wire, _VARINT, "AttributeProto.i")
                i = _signed64(a)
            elif number == 4:
                s = self._bytes(wire, a, b, "AttributeProto.s")
            elif number == 5:
                _expect(wire, _LEN, "AttributeProto.t")
                t = self.tensor(a, b)
            elif number == 6:
                _expect(wire, _LEN, "AttributeProto.g")
                g = self.graph(a, b, depth + 1)
            elif number == 7:
                self._fixed(wire, a, b, "<f4", floats)
            elif number == 8:
                self._ints(wire, a, b, ints)
            elif number == 9:
                strings.append(self._bytes(wire, a, b, "AttributeProto.strings"))
            elif number == 10:
                _expect(wire, _LEN, "AttributeProto.tensors")
                tensors.append(self.tensor(a, b))
            elif number == 11:
                _expect(wire, _LEN, "AttributeProto.graphs")
                graphs.append(self.graph(a, b, depth + 1))
            elif number in (14, 15, 22, 23):
                seen_other = True
        kind = declared
        if kind == AttributeType.UNDEFINED:
            # IR version < 2 files may omit the type; infer it from the field that was set.
            candidates = [
                (f is not None, AttributeType.FLOAT),
                (i is not None, AttributeType.INT),
                (s is not None, AttributeType.STRING),
                (t is not None, AttributeType.TENSOR),
                (g is not None, AttributeType.GRAPH),
                (bool(floats), AttributeType.FLOATS),
                (bool(ints), AttributeType.INTS),
                (bool(strings), AttributeType.STRINGS),
                (bool(tensors), AttributeType.TENSORS),
                (bool(graphs), AttributeType.GRAPHS),
            ]
            found = [k for present, k in candidates if present]
            if len(found) != 1 and not (seen_other and not found):
                raise OnnxFormatError(f"attribute {name!r} has no type and no single value")
            kind = found[0] if found else AttributeType.UNDEFINED
        value: AttributeValue
        match kind:
            case AttributeType.FLOAT:
                value = 0.0 if f is None else f
            case AttributeType.INT:
                value = 0 if i is None else i
            case AttributeType.STRING:
                value = b"" if s is None else s
            case AttributeType.TENSOR:
                if t is None:
                    raise OnnxFormatError(f"attribute {name!r}: TENSOR without a tensor")
                value = t
            case AttributeType.GRAPH:
                if g is None:
                    raise OnnxFormatError(f"attribute {name!r}: GRAPH without a graph")
                value = g
            case AttributeType.FLOATS:
                value = tuple(float(v) for arr in floats for v in arr)
            case AttributeType.INTS:
                value = tuple(ints)
            case AttributeType.STRINGS:
                value = tuple(strings)
            case AttributeType.TENSORS:
                value = tuple(tensors)
            case AttributeType.GRAPHS:
                value = tuple(graphs)
            case _:
                value = None
        if not name:
            raise OnnxFormatError("attribute without a name")
        return Attribute(name=name, type=kind, value=value, ref_attr_name=ref)

    def value_info(self, start: int, end: int) -> ValueInfo:
        name = ""
        elem_type: int | None = None
        shape: tuple[Dim, ...] | None = None
        for number, wire, a, b in self.w.fields(start, end):
            if number == 1:
                name = self._string(wire, a, b, "ValueInfoProto.name")
            elif number == 2:
                _expect(wire, _LEN, "ValueInfoProto.type")
                elem_type, shape = self.type_proto(a, b)
        return ValueInfo(name=name, elem_type=elem_type, shape=shape)

    def type_proto(self, start: int, end: int) -> tuple[int | None, tuple[Dim, ...] | None]:
        for number, wire, a, b in self.w.fields(start, end):
            if number == 1:  # tensor_type
                _expect(wire, _LEN, "TypeProto.tensor_type")
                elem_type = 0
                shape: tuple[Dim, ...] | None = None
                for n2, w2, a2, b2 in self.w.fields(a, b):
                    if n2 == 1:
                        _expect(w2, _VARINT, "TypeProto.Tensor.elem_type")
                        elem_type = a2
                    elif n2 == 2:
                        _expect(w2, _LEN, "TypeProto.Tensor.shape")
                        shape = self.shape(a2, b2)
                return elem_type, shape
        return None, None

    def shape(self, start: int, end: int) -> tuple[Dim, ...]:
        dims: list[Dim] = []
        for number, wire, a, b in self.w.fields(start, end):
            if number != 1:
                continue
            _expect(wire, _LEN, "TensorShapeProto.dim")
            dim: Dim = None
            for n2, w2, a2, b2 in self.w.fields(a, b):
                if n2 == 1:
                    _expect(w2, _VARINT, "Dimension.dim_value")
                    dim = _signed64(a2)
                elif n2 == 2:
                    _expect(w2, _LEN, "Dimension.dim_param")
                    dim = self.w.string(a2, b2)
            dims.append(dim)
        return tuple(dims)

    def tensor(self, start: int, end: int) -> Tensor:
        w = self.w
        dims: list[int] = []
        data_type = 0
        name = ""
        raw: tuple[int, int] | None = None
        typed = _TypedData()
        external = False
        for number, wire, a, b in w.fields(start, end):
            if number == 1:
                self._ints(wire, a, b, dims)
            elif number == 2:
                _expect(wire, _VARINT, "TensorProto.data_type")
                data_type = a
            elif number == 3:
                raise OnnxFormatError("segmented tensors are not supported")
            elif number == 4:
                self._fixed(wire, a, b, "<f4", typed.float_data)
            elif number == 5:
                self._ints(wire, a, b, typed.int32_data)
            elif number == 6:
                typed.string_data.append(self._bytes(wire, a, b, "TensorProto.string_data"))
            elif number == 7:
                self._ints(wire, a, b, typed.int64_data)
            elif number == 8:
                name = self._string(wire, a, b, "TensorProto.name")
            elif number == 9:
                _expect(wire, _LEN, "TensorProto.raw_data")
                raw = (a, b)
            elif number == 10:
                self._fixed(wire, a, b, "<f8", typed.double_data)
            elif number == 11:
                self._uints(wire, a, b, typed.uint64_data)
            elif number == 14:
                _expect(wire, _VARINT, "TensorProto.data_location")
                external = a == 1
        if external:
            raise OnnxFormatError(f"tensor {name!r}: external data files are not supported")
        if any(d < 0 for d in dims):
            raise OnnxFormatError(f"tensor {name!r} has a negative dimension {dims}")
        shape = tuple(dims)
        count = math.prod(shape)
        dtype = numpy_dtype(data_type)
        array = self._tensor_array(name, data_type, dtype, shape, count, raw, typed)
        return Tensor(name=name, data_type=data_type, dims=shape, array=array)

    def _tensor_array(
        self,
        name: str,
        data_type: int,
        dtype: np.dtype[Any],
        shape: tuple[int, ...],
        count: int,
        raw: tuple[int, int] | None,
        typed: _TypedData,
    ) -> npt.NDArray[Any]:
        if raw is not None and data_type != DataType.STRING:
            a, b = raw
            itemsize = 1 if data_type == DataType.BOOL else dtype.itemsize
            if b - a != count * itemsize:
                raise OnnxFormatError(
                    f"tensor {name!r}: raw_data has {b - a} bytes, shape {list(shape)} "
                    f"needs {count * itemsize}"
                )
            if data_type == DataType.BOOL:
                flat = np.frombuffer(self.w.view, dtype=np.uint8, count=count, offset=a) != 0
            else:
                flat = np.frombuffer(self.w.view, dtype=dtype, count=count, offset=a)
            shaped: npt.NDArray[Any] = flat.reshape(shape)
            return shaped
        values: npt.NDArray[Any]
        if data_type in (DataType.FLOAT, DataType.COMPLEX64):
            values = np.concatenate(typed.float_data) if typed.float_data else np.empty(0, "<f4")
            values = values.view(dtype) if data_type == DataType.COMPLEX64 else values
        elif data_type in (DataType.DOUBLE, DataType.COMPLEX128):
            values = np.concatenate(typed.double_data) if typed.double_data else np.empty(0, "<f8")
            values = values.view(dtype) if data_type == DataType.COMPLEX128 else values
        elif data_type == DataType.INT64:
            values = np.array(typed.int64_data, dtype=np.int64)
        elif data_type in (DataType.UINT32, DataType.UINT64):
            values = np.array(typed.uint64_data, dtype=np.uint64).astype(dtype)
        elif data_type == DataType.FLOAT16:
            # int32_data carries the raw IEEE half bit patterns.
            values = np.array(typed.int32_data, dtype=np.int64).astype(np.uint16).view(np.float16)
        elif data_type == DataType.BOOL:
            values = np.array(typed.int32_data, dtype=np.int64) != 0
        elif data_type == DataType.STRING:
            values = np.empty(len(typed.string_data), dtype=object)
            values[:] = typed.string_data
        else:  # the remaining integer types travel in int32_data
            values = np.array(typed.int32_data, dtype=np.int64).astype(dtype)
        if values.size != count:
            raise OnnxFormatError(
                f"tensor {name!r} has {values.size} values, shape {list(shape)} needs {count}"
            )
        return values.reshape(shape)


def parse_model(data: bytes | bytearray | memoryview | mmap.mmap) -> Model:
    """Decode an ONNX model from a bytes-like object.

    Tensors stored as ``raw_data`` are views into ``data``, which therefore stays referenced by
    them; do not modify a mutable buffer while the model is in use.
    """
    try:
        return _Parser(data).model()
    except OnnxFormatError:
        raise
    except (ValueError, struct.error, TypeError) as err:  # numpy/struct rejecting a payload
        raise OnnxFormatError(f"malformed ONNX data: {err}") from err


def load_model(path: str | os.PathLike[str]) -> Model:
    """Map an ``.onnx`` file read-only and decode it (tensors are views into the mapping).

    The mapping is released when the last array viewing it is garbage collected.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise OnnxFormatError(f"{os.fspath(path)}: empty file")
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    return parse_model(mapping)
