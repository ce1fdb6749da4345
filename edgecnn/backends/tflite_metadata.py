"""What a deployment needs to feed a .tflite model, stored inside the file and read back anywhere.

The export writes the same facts as the ONNX export's ``model_metadata`` (arch, mean/std,
resolution, class count, ...) plus the LiteRT specifics (precision, input layout, I/O type) as
one JSON entry named ``edgecnn`` in the flatbuffer's ``Model.metadata`` list: the place the
TFLite schema reserves for named key/value blobs, which every interpreter ignores.

Writing uses ai-edge-litert's flatbuffer object API (the build machine has it). Reading is a
few lines of flatbuffer arithmetic written here on purpose: a device that only runs models may
have only ``tflite-runtime``, which ships no schema module, and the official TFLite metadata
library (tflite-support) needs TensorFlow-era wheels; the reader needs nothing but the stdlib.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from edgecnn.errors import EdgeCNNError

METADATA_NAME = "edgecnn"
TFLITE_IDENTIFIER = b"TFL3"

# Field slots of the TFLite schema tables read here (schema.fbs, field order = slot).
_MODEL_BUFFERS = 4
_MODEL_METADATA = 6
_METADATA_NAME = 0
_METADATA_BUFFER = 1
_BUFFER_DATA = 0
_BUFFER_OFFSET = 1
_BUFFER_SIZE = 2


def with_metadata(model: bytes | bytearray, metadata: dict[str, str]) -> bytes:
    """``model`` with the ``edgecnn`` metadata entry set to ``metadata`` (replacing an old one)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    entries = [m for m in (obj.metadata or []) if _decode(m.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(obj.buffers) - 1
    obj.metadata = [*entries, entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def read_metadata(model: str | Path | bytes) -> dict[str, str]:
    """The ``edgecnn`` metadata of a .tflite file or buffer ({} if it was not made by edgecnn)."""
    raw = metadata_entries(model).get(METADATA_NAME)
    if raw is None:
        return {}
    try:
        data = json.loads(raw.decode())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise EdgeCNNError(f"the {METADATA_NAME!r} metadata of {_describe(model)} is not a "
                           "JSON object")
    return data


def tflite_bytes(model: str | Path | bytes) -> bytes:
    """The bytes of a .tflite file or buffer; EdgeCNNError if they are not a TFLite model."""
    buf = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    if len(buf) < 8 or buf[4:8] != TFLITE_IDENTIFIER:
        raise EdgeCNNError(f"{_describe(model)} is not a TFLite model (no 'TFL3' identifier)")
    return buf


def metadata_entries(model: str | Path | bytes) -> dict[str, bytes]:
    """Every ``Model.metadata`` entry of a .tflite model: name -> raw bytes."""
    buf = tflite_bytes(model)
    try:
        root = _u32(buf, 0)
        buffers = _vector_of_tables(buf, root, _MODEL_BUFFERS)
        out = {}
        for entry in _vector_of_tables(buf, root, _MODEL_METADATA):
            name = _string(buf, entry, _METADATA_NAME)
            index = _scalar(buf, entry, _METADATA_BUFFER, "<I")
            out[name] = _buffer_bytes(buf, buffers[index])
        return out
    except (struct.error, IndexError):
        raise EdgeCNNError(f"{_describe(model)} is a truncated or corrupt TFLite file") from None


def _describe(model: str | Path | bytes) -> str:
    return str(model) if isinstance(model, (str, Path)) else "the model buffer"


def _decode(name: str | bytes | None) -> str | None:
    return name.decode() if isinstance(name, bytes) else name


# Flatbuffer layout: a table starts with an int32 back-offset to its vtable; the vtable holds
# uint16 offsets of each field from the table start (0 = absent); vectors and strings are
# reached through uint32 forward offsets and start with a uint32 length.
def _u32(buf: bytes, at: int) -> int:
    return struct.unpack_from("<I", buf, at)[0]


def _field(buf: bytes, table: int, slot: int) -> int | None:
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vtable_size = struct.unpack_from("<H", buf, vtable)[0]
    entry = 4 + 2 * slot
    if entry >= vtable_size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + entry)[0]
    return table + offset if offset else None


def _scalar(buf: bytes, table: int, slot: int, fmt: str) -> int:
    at = _field(buf, table, slot)
    return 0 if at is None else struct.unpack_from(fmt, buf, at)[0]


def _indirect(buf: bytes, at: int) -> int:
    return at + _u32(buf, at)


def _vector_of_tables(buf: bytes, table: int, slot: int) -> list[int]:
    at = _field(buf, table, slot)
    if at is None:
        return []
    vector = _indirect(buf, at)
    return [_indirect(buf, vector + 4 + 4 * i) for i in range(_u32(buf, vector))]


def _string(buf: bytes, table: int, slot: int) -> str:
    at = _field(buf, table, slot)
    if at is None:
        return ""
    start = _indirect(buf, at)
    return buf[start + 4:start + 4 + _u32(buf, start)].decode()


def _buffer_bytes(buf: bytes, table: int) -> bytes:
    at = _field(buf, table, _BUFFER_DATA)
    if at is not None:
        start = _indirect(buf, at)
        return buf[start + 4:start + 4 + _u32(buf, start)]
    # Models over 2 GB keep buffers after the flatbuffer, addressed by offset and size.
    offset = _scalar(buf, table, _BUFFER_OFFSET, "<Q")
    size = _scalar(buf, table, _BUFFER_SIZE, "<Q")
    return buf[offset:offset + size] if offset > 1 else b""
