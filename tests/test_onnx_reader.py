"""The ONNX reader's wire-format checks, on hand-encoded protobuf messages.

tests/test_numpy_backend.py checks that the reader decodes what ``onnx`` writes (the voice, every
typed field, every attribute kind). Here each structural fault a damaged or hostile file can have
is written byte by byte, and each must raise :class:`OnnxFormatError` naming the fault — never an
IndexError, a numpy error or a silently wrong model.
"""

from __future__ import annotations

from pathlib import Path
import struct

import numpy as np
import pytest

from custom_components.alicia_tts import onnx_reader
from custom_components.alicia_tts.onnx_reader import OnnxFormatError

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    """Protobuf base-128 varint (negative numbers as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vfield(number: int, value: int) -> bytes:
    return key(number, VARINT) + varint(value)


def lfield(number: int, payload: bytes) -> bytes:
    return key(number, LEN) + varint(len(payload)) + payload


def model_of(graph: bytes) -> bytes:
    """A ModelProto (ir_version 8) around a GraphProto payload."""
    return vfield(1, 8) + lfield(7, graph)


def graph_of(*nodes: bytes, initializers: tuple[bytes, ...] = ()) -> bytes:
    return b"".join(lfield(1, n) for n in nodes) + b"".join(lfield(5, t) for t in initializers)


def node_of(*attributes: bytes, op_type: str = "Custom") -> bytes:
    return lfield(4, op_type.encode()) + b"".join(lfield(5, a) for a in attributes)


def tensor_of(*fields: bytes, name: str = "t") -> bytes:
    return lfield(8, name.encode()) + b"".join(fields)


def nested_graph(depth: int) -> bytes:
    """A graph whose one node carries a GRAPH attribute ``depth`` levels deep."""
    graph = b""
    for _ in range(depth):
        attr = lfield(1, b"body") + vfield(20, 5) + lfield(6, graph)
        graph = graph_of(node_of(attr, op_type="If"))
    return graph


FLOAT_ONE = struct.pack("<f", 1.0)

WIRE_FAULTS = [
    pytest.param(vfield(1, 8)[:1] + b"\xff" * 11, "varint longer than 10 bytes", id="long-varint"),
    pytest.param(b"\x08\xff", "truncated varint", id="truncated-varint"),
    pytest.param(b"\x00\x01", "invalid field number 0", id="field-zero"),
    pytest.param(key(7, LEN) + varint(5) + b"\x00", "runs 4 bytes past", id="length-overrun"),
    pytest.param(key(2, FIXED32) + b"\x00", "truncated fixed-width field 2", id="short-fixed32"),
    pytest.param(
        key(2, FIXED64) + b"\x00" * 7, "truncated fixed-width field 2", id="short-fixed64"
    ),
    pytest.param(key(2, 3), "unsupported wire type 3", id="group-wire-type"),
    pytest.param(lfield(1, b""), "ModelProto.ir_version: wire type 2", id="ir-version-as-bytes"),
    pytest.param(vfield(2, 1), "ModelProto string: wire type 0", id="producer-as-varint"),
    pytest.param(lfield(2, b"\xff\xfe"), "invalid UTF-8", id="producer-not-utf8"),
    pytest.param(lfield(5, b""), "ModelProto.model_version: wire type 2", id="model-version"),
    pytest.param(vfield(7, 1), "ModelProto.graph: wire type 0", id="graph-as-varint"),
    pytest.param(vfield(8, 1), "ModelProto.opset_import: wire type 0", id="opset-as-varint"),
    pytest.param(
        lfield(8, vfield(1, 1)) + lfield(7, b""), "OperatorSetIdProto.domain", id="opset-domain"
    ),
    pytest.param(
        lfield(8, lfield(2, b"")) + lfield(7, b""), "OperatorSetIdProto.version", id="opset-version"
    ),
    pytest.param(vfield(14, 1), "ModelProto.metadata_props: wire type 0", id="metadata-varint"),
    pytest.param(
        lfield(14, vfield(1, 1)) + lfield(7, b""), "StringStringEntryProto", id="metadata-key"
    ),
    pytest.param(model_of(vfield(1, 3)), "GraphProto field 1: wire type 0", id="node-as-varint"),
    pytest.param(model_of(lfield(15, b"")), "sparse initializers", id="sparse-initializer"),
    pytest.param(model_of(graph_of(lfield(3, b"n"))), "has no op_type", id="no-op-type"),
    pytest.param(
        model_of(graph_of(vfield(4, 1))), "NodeProto field 4: wire type 0", id="op-type-varint"
    ),
    pytest.param(model_of(nested_graph(40)), "nested too deeply", id="hostile-nesting"),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(20, 99)))),
        "attribute 'a': unknown type 99",
        id="attribute-unknown-type",
    ),
    pytest.param(
        model_of(graph_of(node_of(vfield(1, 1)))), "AttributeProto.name", id="attribute-name"
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + lfield(20, b"")))),
        "AttributeProto.type",
        id="attribute-type-as-bytes",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(2, 1)))),
        "AttributeProto.f: wire type 0",
        id="float-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + lfield(3, b"")))),
        "AttributeProto.i: wire type 2",
        id="int-as-bytes",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(4, 1)))),
        "AttributeProto.s: wire type 0",
        id="string-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(5, 1)))),
        "AttributeProto.t: wire type 0",
        id="tensor-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(6, 1)))),
        "AttributeProto.g: wire type 0",
        id="graph-attr-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(7, 1)))),
        "repeated fixed-width field has wire type 0",
        id="floats-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + lfield(7, b"\x00\x00\x80")))),
        "not a multiple of 4",
        id="packed-floats-ragged",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + key(8, FIXED32) + FLOAT_ONE))),
        "repeated integer field has wire type 5",
        id="ints-as-fixed32",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(10, 1)))),
        "AttributeProto.tensors",
        id="tensors-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(11, 1)))),
        "AttributeProto.graphs",
        id="graphs-as-varint",
    ),
    pytest.param(
        model_of(graph_of(node_of(vfield(3, 1)))), "attribute without a name", id="nameless"
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(3, 1) + lfield(4, b"x")))),
        "has no type and no single value",
        id="untyped-two-values",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a")))),
        "has no type and no single value",
        id="untyped-no-value",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(20, 4)))),
        "TENSOR without a tensor",
        id="tensor-missing",
    ),
    pytest.param(
        model_of(graph_of(node_of(lfield(1, b"a") + vfield(20, 5)))),
        "GRAPH without a graph",
        id="graph-missing",
    ),
    pytest.param(model_of(lfield(11, vfield(1, 1))), "ValueInfoProto.name", id="value-info-name"),
    pytest.param(
        model_of(lfield(11, lfield(1, b"x") + vfield(2, 1))),
        "ValueInfoProto.type",
        id="value-info-type",
    ),
    pytest.param(
        model_of(lfield(11, lfield(1, b"x") + lfield(2, vfield(1, 1)))),
        "TypeProto.tensor_type",
        id="tensor-type-as-varint",
    ),
    pytest.param(
        model_of(lfield(11, lfield(1, b"x") + lfield(2, lfield(1, lfield(1, b""))))),
        "TypeProto.Tensor.elem_type",
        id="elem-type-as-bytes",
    ),
    pytest.param(
        model_of(lfield(11, lfield(1, b"x") + lfield(2, lfield(1, vfield(2, 1))))),
        "TypeProto.Tensor.shape",
        id="shape-as-varint",
    ),
    pytest.param(
        model_of(lfield(11, lfield(1, b"x") + lfield(2, lfield(1, lfield(2, vfield(1, 1)))))),
        "TensorShapeProto.dim",
        id="dim-as-varint",
    ),
    pytest.param(
        model_of(
            lfield(11, lfield(1, b"x") + lfield(2, lfield(1, lfield(2, lfield(1, lfield(1, b""))))))
        ),
        "Dimension.dim_value",
        id="dim-value-as-bytes",
    ),
    pytest.param(
        model_of(
            lfield(11, lfield(1, b"x") + lfield(2, lfield(1, lfield(2, lfield(1, vfield(2, 1))))))
        ),
        "Dimension.dim_param",
        id="dim-param-as-varint",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(lfield(2, b"")),))),
        "TensorProto.data_type",
        id="data-type-as-bytes",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(lfield(3, b"")),))),
        "segmented tensors",
        id="segmented",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(1, 2), vfield(1, -1), vfield(2, 1)),))),
        "negative dimension",
        id="negative-dim",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(2, 16)),))),
        "unsupported tensor element type BFLOAT16",
        id="bfloat16",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(2, 77)),))),
        "unsupported tensor element type 77",
        id="unknown-element-type",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(6, 1)),))),
        "TensorProto.string_data",
        id="string-data-as-varint",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(8, 1), name=""),))),
        "TensorProto.name",
        id="tensor-name-as-varint",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(9, 1)),))),
        "TensorProto.raw_data",
        id="raw-data-as-varint",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(lfield(14, b"")),))),
        "TensorProto.data_location",
        id="data-location-as-bytes",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(2, 13), key(11, FIXED32) + b"\0" * 4),))),
        "repeated integer field has wire type 5",
        id="uint64-as-fixed32",
    ),
    pytest.param(
        model_of(graph_of(initializers=(tensor_of(vfield(1, 2), vfield(2, 7), vfield(7, 5)),))),
        "has 1 values, shape [2] needs 2",
        id="typed-count-mismatch",
    ),
]


@pytest.mark.parametrize(("data", "message"), WIRE_FAULTS)
def test_wire_faults_are_format_errors(data: bytes, message: str) -> None:
    with pytest.raises(OnnxFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        onnx_reader.parse_model(data)


def test_fields_are_read_from_every_buffer_type(tmp_path: Path) -> None:
    """bytes, bytearray, memoryview and a mapped file decode alike (the reader indexes each)."""
    data = model_of(graph_of(node_of(lfield(1, b"k") + vfield(3, 7), op_type="Relu")))
    for buffer in (data, bytearray(data), memoryview(data)):
        model = onnx_reader.parse_model(buffer)
        assert model.ir_version == 8
        assert model.graph.nodes[0].get_int("k", 0) == 7
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert onnx_reader.load_model(path).graph.nodes[0].op_type == "Relu"
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxFormatError, match="empty file"):
        onnx_reader.load_model(empty)


def test_unknown_fields_are_skipped() -> None:
    """Fields a newer exporter adds (any wire type) are skipped, as protobuf readers do."""
    extra = vfield(99, 5) + lfield(98, b"new") + key(97, FIXED32) + FLOAT_ONE
    extra += key(96, FIXED64) + b"\0" * 8
    node = node_of(lfield(1, b"k") + vfield(3, 2) + extra, op_type="Relu") + extra
    model = onnx_reader.parse_model(extra + model_of(graph_of(node) + extra))
    assert model.graph.nodes[0].get_int("k", 0) == 2


def test_domain_aliases_and_ref_attributes() -> None:
    """ "ai.onnx" is ONNX's own domain (stored as ""); a function's attribute reference is kept."""
    opset = lfield(8, lfield(1, b"ai.onnx") + vfield(2, 17))
    attr = lfield(1, b"alpha") + vfield(20, 1) + lfield(21, b"outer_alpha")
    node = node_of(attr) + lfield(7, b"ai.onnx")
    model = onnx_reader.parse_model(vfield(1, 8) + opset + lfield(7, graph_of(node)))
    assert model.opset_imports == {"": 17}
    parsed = model.graph.nodes[0]
    assert parsed.domain == ""
    assert parsed.attributes["alpha"].ref_attr_name == "outer_alpha"
    assert parsed.get_float("alpha", 9.0) == 0.0  # declared FLOAT, value only by reference


def test_attribute_kinds_the_reader_does_not_decode() -> None:
    """Sparse tensors and type protos are recognised and carry no value (None), not an error."""
    sparse = lfield(1, b"sp") + lfield(22, b"")  # sparse_tensor, no declared type (IR < 2 style)
    typed = lfield(1, b"tp") + vfield(20, 13) + lfield(14, b"")
    node = onnx_reader.parse_model(model_of(graph_of(node_of(sparse, typed)))).graph.nodes[0]
    assert node.attributes["sp"].value is None
    assert node.attributes["sp"].type is onnx_reader.AttributeType.UNDEFINED
    assert node.attributes["tp"].type is onnx_reader.AttributeType.TYPE_PROTO
    assert node.attributes["tp"].value is None


def test_attribute_accessors_on_bad_or_absent_values() -> None:
    """Invalid UTF-8 in a STRING(S) attribute is a format error; absent list kinds are None."""
    bad_s = lfield(1, b"s") + vfield(20, 3) + lfield(4, b"\xff")
    bad_strings = lfield(1, b"ss") + vfield(20, 8) + lfield(9, b"ok") + lfield(9, b"\xfe")
    node = onnx_reader.parse_model(model_of(graph_of(node_of(bad_s, bad_strings)))).graph.nodes[0]
    with pytest.raises(OnnxFormatError, match="'s' is not valid UTF-8"):
        node.get_string("s", "")
    with pytest.raises(OnnxFormatError, match="'ss' is not valid UTF-8"):
        node.get_strings("ss")
    assert node.get_string("absent", "default") == "default"
    assert node.get_floats("absent") is None
    assert node.get_strings("absent") is None
    assert node.get_tensor("absent") is None
    assert node.get_float("absent", 1.5) == 1.5


def test_typed_data_without_values_and_packed_or_single_fields() -> None:
    """An empty FLOAT/DOUBLE tensor decodes from no typed data; single and packed ints agree."""
    empty_float = tensor_of(vfield(1, 0), vfield(2, 1), name="ef")
    empty_double = tensor_of(vfield(1, 0), vfield(2, 11), name="ed")
    single = tensor_of(vfield(1, 2), vfield(2, 7), vfield(7, -5), vfield(7, 6), name="single")
    packed = tensor_of(lfield(1, varint(2)), vfield(2, 7), lfield(7, varint(-5) + varint(6)))
    uints = tensor_of(vfield(1, 1), vfield(2, 12), vfield(11, 2**32 - 1), name="u32")
    doubles = tensor_of(vfield(1, 1), vfield(2, 11), key(10, FIXED64) + struct.pack("<d", 2.5))
    graph = graph_of(initializers=(empty_float, empty_double, single, packed, uints, doubles))
    tensors = onnx_reader.parse_model(model_of(graph)).graph.initializers
    assert tensors[0].array.shape == (0,)
    assert tensors[0].array.dtype == np.float32
    assert tensors[1].array.dtype == np.float64
    np.testing.assert_array_equal(tensors[2].array, [-5, 6])
    np.testing.assert_array_equal(tensors[3].array, [-5, 6])
    assert tensors[4].array.dtype == np.uint32
    assert int(tensors[4].array[0]) == 2**32 - 1
    assert float(tensors[5].array[0]) == 2.5


def test_model_header_and_non_tensor_values() -> None:
    """model_version and the header strings are kept; a non-tensor value has no element type."""
    sequence = lfield(11, lfield(1, b"seq") + lfield(2, lfield(4, b"")))  # TypeProto.sequence_type
    header = vfield(5, 3) + lfield(2, b"exporter") + lfield(6, b"doc")
    shape = vfield(9, 1) + lfield(1, vfield(1, 4))  # an unknown field before the one dim
    tensor = lfield(11, lfield(1, b"x") + lfield(2, lfield(1, vfield(1, 1) + lfield(2, shape))))
    model = onnx_reader.parse_model(header + model_of(sequence + tensor))
    assert (model.model_version, model.producer_name, model.doc_string) == (3, "exporter", "doc")
    assert model.graph.inputs[0] == onnx_reader.ValueInfo(name="seq")
    assert model.graph.inputs[1] == onnx_reader.ValueInfo(name="x", elem_type=1, shape=(4,))
