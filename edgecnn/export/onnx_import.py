"""An ONNX classifier made by another tool, brought into the form of edgecnn's own exports.

A graph from another exporter (an older torch, tf2onnx, a model zoo) differs from what
:mod:`edgecnn.export.onnx_export` writes in ways the later stages depend on: its opset may be
older than the quantizers and converters accept, its input and output have other names, its
batch may be fixed at 1, and it carries none of edgecnn's metadata. :func:`import_onnx` fixes
exactly those: opset upgraded with the ONNX version converter, input renamed ``input`` and output
``logits``, batch made dynamic (height and width fixed at the resolution), metadata replaced; and
then proves with ONNX Runtime that the result computes what the given file does, and the same per
image at batch 2 as at batch 1, before it writes anything. :func:`inspect_onnx` is the cheap
half: it reads and checks the file's signature without writing, for validation and preflight.

Every problem with the given file is one :class:`EdgeCNNError` naming the file and what would be
valid. External data files are loaded when they sit beside the ``.onnx`` (in its folder, as the
ONNX format locates them) and embedded into the imported file, which is always self-contained.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.export.onnx_export import INPUT_NAME, MIN_OPSET, OUTPUT_NAME
from edgecnn.profile.onnx_counting import all_nodes

if TYPE_CHECKING:
    import numpy as np
    import onnx

BATCH_PARAM = "batch"
# Domains ONNX Runtime implements besides the default one; any other is a custom op library
# edgecnn's runtimes would not have.
ALLOWED_DOMAINS = ("", "ai.onnx", "com.microsoft", "ai.onnx.ml")
_DEFAULT_DOMAINS = ("", "ai.onnx")
_PROTOBUF_LIMIT = 2**31 - 1  # one serialized ModelProto, the protobuf limit
_CHECK_BATCH = 2
_TOLERANCE = 1e-4  # max |diff| relative to max(1, max |output|)


@dataclass(frozen=True)
class OnnxSignature:
    """What :func:`inspect_onnx` read from a file, all checked.

    ``resolution`` is the fixed input height (= width), or None where they are symbolic (then a
    resolution must be given to import it); ``batch`` is the fixed batch or its symbolic name.
    """

    path: Path
    opset: int
    input_name: str
    input_shape: tuple[int | str, ...]
    batch: int | str
    in_chans: int
    resolution: int | None
    output_name: str
    num_classes: int
    nodes: int
    domains: tuple[str, ...]
    external_data: tuple[str, ...]
    model: Any = field(default=None, repr=False, compare=False)  # the loaded onnx.ModelProto


@dataclass
class ImportedOnnx:
    path: Path
    source_sha256: str
    opset_before: int
    opset_after: int
    input_name_before: str
    batch_before: int | str
    resolution: int
    in_chans: int
    num_classes: int
    nodes: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def inspect_onnx(source: Path, *, in_chans: int | None = None,
                 resolution: int | None = None) -> OnnxSignature:
    """Load ``source`` and check it is a one-input, one-output NCHW float32 classifier.

    Checks, each failure one :class:`EdgeCNNError`: the file exists and parses, its external
    data (if any) sits beside it, ``onnx.checker`` (full check) passes, its domains are ones
    ONNX Runtime implements, exactly one non-initializer input ``[N, C, H, W]`` float32 with C
    fixed and H == W, exactly one float32 output ``[N, classes]`` with classes fixed. Where
    given, ``in_chans`` must equal C and ``resolution`` a fixed H; symbolic H/W are allowed
    here (``resolution`` None in the result) and need ``resolution`` only to import.
    """
    source = Path(source)
    model, _, external = _load(source)
    return _signature(source, model, in_chans, resolution, external)


def import_onnx(source: Path, dest: Path, *, opset: int, resolution: int | None, in_chans: int,
                metadata: dict[str, str]) -> ImportedOnnx:
    """Write ``source`` to ``dest`` in edgecnn's form (see the module docstring), atomically.

    ``opset`` is the least default-domain opset of the result: an older graph is converted, a
    newer one kept. ``metadata`` replaces the file's ``metadata_props`` (the caller's edgecnn
    keys), with ``source_sha256`` and ``source_opset`` added.
    """
    import onnx

    from edgecnn.atomic import atomic_write_bytes

    source, dest = Path(source), Path(dest)
    highest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= highest:
        raise EdgeCNNError(f"export.onnx.opset must be between {MIN_OPSET} and {highest} (the "
                           f"newest this onnx {onnx.__version__} knows), got {opset}")
    if resolution is not None and resolution < 1:
        raise EdgeCNNError(f"model.resolution must be positive, got {resolution}")
    model, digest, external = _load(source)
    sig = _signature(source, model, in_chans, resolution, external)
    if sig.resolution is None and resolution is None:
        raise EdgeCNNError(
            f"{source}: input {sig.input_name!r} has symbolic height/width "
            f"{_dims_text(sig.input_shape)}; set model.resolution to the size to import it at")
    size = resolution or sig.resolution
    assert size is not None
    converted = _convert(model, source, sig.opset, opset) if sig.opset < opset else model
    opset_after = max(sig.opset, opset)
    result = _edgecnn_form(converted, sig, size)
    del result.metadata_props[:]
    for key, value in {**metadata, "source_sha256": digest,
                       "source_opset": str(sig.opset)}.items():
        result.metadata_props.add(key=str(key), value=str(value))
    _verify(source, model, sig, result, size)
    try:
        onnx.checker.check_model(result, full_check=True)
    except Exception as exc:  # ValidationError / InferenceError
        raise EdgeCNNError(f"{source}: the imported graph fails the ONNX checker: "
                           f"{first_line(exc)}") from exc
    atomic_write_bytes(dest, result.SerializeToString())
    return ImportedOnnx(path=dest, source_sha256=digest, opset_before=sig.opset,
                        opset_after=opset_after, input_name_before=sig.input_name,
                        batch_before=sig.batch, resolution=size, in_chans=sig.in_chans,
                        num_classes=sig.num_classes, nodes=len(result.graph.node))


# --- loading and checking -------------------------------------------------------------------


def _load(source: Path) -> tuple[onnx.ModelProto, str, tuple[str, ...]]:
    """The model with its external data (if any) loaded, the sha256 of the .onnx file (not of
    its data files), and the data files' names."""
    import onnx

    if not source.is_file():
        raise EdgeCNNError(f"ONNX file {source} does not exist" if not source.exists()
                           else f"{source} is not a file (model.onnx takes one .onnx file)")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise EdgeCNNError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and kin
        raise EdgeCNNError(f"{source} is not an ONNX model (the protobuf does not parse: "
                           f"{first_line(exc)})") from exc
    if not model.ir_version or not model.HasField("graph") or not model.graph.node:
        raise EdgeCNNError(f"{source} is not an ONNX model (no IR version or no graph); give "
                           "the .onnx file an exporter wrote")
    external = _load_external_data(source, model)
    if model.functions:
        # Local functions (some exporters' way to group ops) are a custom domain to every
        # runtime; inlined they are plain default-domain ops.
        try:
            model = onnx.inliner.inline_local_functions(model)
        except Exception as exc:
            raise EdgeCNNError(f"{source}: its local functions cannot be inlined: "
                               f"{first_line(exc)}") from exc
    return model, hashlib.sha256(data).hexdigest(), external


def _load_external_data(source: Path, model: onnx.ModelProto) -> tuple[str, ...]:
    """Load the external data files a large model keeps beside it (their locations are relative
    to the .onnx file's folder, and must stay inside it)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    locations: dict[str, None] = {}
    for tensor in _all_tensors(model.graph):
        if uses_external_data(tensor):
            entry = {e.key: e.value for e in tensor.external_data}
            locations[entry.get("location", "")] = None
    if not locations:
        return ()
    folder = source.parent.resolve()
    for location in locations:
        path = (folder / location).resolve()
        if not location or folder not in path.parents:
            raise EdgeCNNError(f"{source}: external data location {location!r} is not a file "
                               f"in {folder}; only data files beside the .onnx are read")
        if not path.is_file():
            raise EdgeCNNError(f"{source} keeps its weights in {location!r}, which is not in "
                               f"{folder}; put the data file beside the .onnx file")
    try:
        onnx.load_external_data_for_model(model, str(folder))
    except Exception as exc:
        raise EdgeCNNError(f"{source}: cannot load its external data "
                           f"({', '.join(locations)}): {first_line(exc)}") from exc
    if model.ByteSize() > _PROTOBUF_LIMIT:
        raise EdgeCNNError(f"{source} with its external data is over 2 GB, more than one "
                           "self-contained ONNX file can hold; edgecnn imports smaller models")
    return tuple(sorted(locations))


def _all_tensors(graph: Any):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _signature(source: Path, model: onnx.ModelProto, in_chans: int | None,
               resolution: int | None, external: tuple[str, ...]) -> OnnxSignature:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        raise EdgeCNNError(f"{source} fails the ONNX checker: {first_line(exc)}") from exc
    opset = _default_opset(model, source)
    domains = _check_domains(model, source)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise EdgeCNNError(f"{source} has {len(inputs)} graph inputs ({names}); edgecnn "
                           "deploys a classifier with exactly one input, an NCHW image batch")
    inp = inputs[0]
    shape = _input_shape(inp, source)
    if len(shape) != 4:
        raise EdgeCNNError(f"{source}: input {inp.name!r} has shape {_dims_text(shape)}; "
                           "edgecnn takes a 4-D NCHW image batch [N, C, H, W]")
    batch, channels, height, width = shape
    if not isinstance(channels, int):
        raise EdgeCNNError(f"{source}: input {inp.name!r} {_dims_text(shape)} has a symbolic "
                           "channel dimension; it must be fixed (an NCHW [N, C, H, W] batch)")
    if in_chans is not None and channels != in_chans:
        nhwc = width == in_chans and channels == height
        hint = (" (it looks NHWC [N, H, W, C]: edgecnn takes NCHW; export it channels-first)"
                if nhwc else f"; set model.in_chans: {channels}")
        raise EdgeCNNError(f"{source}: input {inp.name!r} {_dims_text(shape)} has {channels} "
                           f"channels, but model.in_chans is {in_chans}{hint}")
    fixed = {d for d in (height, width) if isinstance(d, int)}
    if len(fixed) > 1:
        raise EdgeCNNError(f"{source}: input {inp.name!r} {_dims_text(shape)} is not square "
                           f"({height}x{width}); edgecnn takes square H == W images")
    size = next(iter(fixed)) if fixed else None
    if size is not None and resolution is not None and resolution != size:
        raise EdgeCNNError(f"{source}: input {inp.name!r} {_dims_text(shape)} is fixed at "
                           f"{size}x{size}, but model.resolution is {resolution}; drop "
                           f"model.resolution or set it to {size}")
    if size is not None and not (isinstance(height, int) and isinstance(width, int)):
        size = None  # half symbolic: the fixed half must match a resolution given to import
    if len(graph.output) != 1:
        names = ", ".join(repr(o.name) for o in graph.output)
        raise EdgeCNNError(f"{source} has {len(graph.output)} outputs ({names}); edgecnn "
                           "deploys a classifier with exactly one output, [N, classes] logits")
    num_classes = _num_classes(source, model, graph.output[0], resolution or size)
    return OnnxSignature(
        path=source, opset=opset, input_name=inp.name, input_shape=shape, batch=batch,
        in_chans=channels, resolution=size, output_name=graph.output[0].name,
        num_classes=num_classes, nodes=len(graph.node), domains=domains,
        external_data=external, model=model)


def _default_opset(model: onnx.ModelProto, source: Path) -> int:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    raise EdgeCNNError(f"{source} imports no default-domain (ai.onnx) opset; it is not a graph "
                       "of standard ONNX ops")


def _check_domains(model: onnx.ModelProto, source: Path) -> tuple[str, ...]:
    used = {e.domain for e in model.opset_import}
    used |= {n.domain for n in all_nodes(model.graph)}
    for domain in sorted(used):
        if domain not in ALLOWED_DOMAINS:
            ops = sorted({n.op_type for n in all_nodes(model.graph) if n.domain == domain})
            what = f" (ops {', '.join(ops)})" if ops else ""
            raise EdgeCNNError(f"{source} uses the custom op domain {domain!r}{what}; edgecnn's "
                               "runtimes implement only the standard ONNX ops and ONNX Runtime's "
                               "com.microsoft and ai.onnx.ml domains")
    return tuple(sorted(d or "ai.onnx" for d in used))


def _input_shape(value: Any, source: Path) -> tuple[int | str, ...]:
    from onnx import TensorProto

    if not value.type.HasField("tensor_type"):
        raise EdgeCNNError(f"{source}: input {value.name!r} is not a tensor; edgecnn takes a "
                           "float32 NCHW image batch")
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type != TensorProto.FLOAT:
        name = TensorProto.DataType.Name(tensor_type.elem_type).lower()
        raise EdgeCNNError(f"{source}: input {value.name!r} is {name}; edgecnn takes a float32 "
                           "NCHW image batch")
    dims = _dims(value)
    if dims is None:
        raise EdgeCNNError(f"{source}: input {value.name!r} has no declared shape; edgecnn "
                           "needs [N, C, H, W]")
    return dims


def _num_classes(source: Path, model: onnx.ModelProto, output: Any,
                 resolution: int | None) -> int:
    """The output's class count, inferred at batch 1 (and ``resolution``), else as declared."""
    _check_output_type(output, source)
    declared = _dims(output)
    if declared is not None and len(declared) != 2:
        raise EdgeCNNError(f"{source}: output {output.name!r} has shape {_dims_text(declared)}; "
                           "edgecnn takes a classifier's [N, classes] logits")
    inferred = _inferred_output(model, resolution)
    if inferred is not None and len(inferred) != 2:
        raise EdgeCNNError(f"{source}: output {output.name!r} has shape {_dims_text(inferred)} "
                           "(inferred at batch 1); edgecnn takes a classifier's [N, classes] "
                           "logits")
    candidates = [s[1] for s in (inferred, declared) if s is not None]
    classes = next((c for c in candidates if isinstance(c, int)), None)
    if classes is None or classes < 1:
        shape = _dims_text(inferred or declared or ("?", "?"))
        hint = "" if resolution is not None else " (set model.resolution: it may need the size)"
        raise EdgeCNNError(f"{source}: the class count of output {output.name!r} is not fixed "
                           f"(shape {shape} after shape inference){hint}; edgecnn takes "
                           "[N, classes] logits with a fixed class count")
    return classes


def _dims(value: Any) -> tuple[int | str, ...] | None:
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in tensor_type.shape.dim)


def _check_output_type(output: Any, source: Path) -> None:
    from onnx import TensorProto

    if not output.type.HasField("tensor_type"):
        raise EdgeCNNError(f"{source}: output {output.name!r} is not a tensor; edgecnn takes "
                           "[N, classes] float32 logits")
    elem = output.type.tensor_type.elem_type
    if elem != TensorProto.FLOAT:
        raise EdgeCNNError(f"{source}: output {output.name!r} is "
                           f"{TensorProto.DataType.Name(elem).lower()}; edgecnn takes float32 "
                           "logits")


def _inferred_output(model: onnx.ModelProto, resolution: int | None) -> tuple | None:
    """The output shape at batch 1 (and the resolution, where H/W are symbolic), or None."""
    from edgecnn.profile.onnx_counting import static_shapes

    try:
        inferred = static_shapes(model, resolution, symbolic_ok=True)
    except EdgeCNNError:
        return None
    return _dims(inferred.graph.output[0])


# --- conversion -----------------------------------------------------------------------------


def _convert(model: onnx.ModelProto, source: Path, before: int, target: int) -> onnx.ModelProto:
    """The model at opset ``target``; a failure names the op the converter cannot convert."""
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, target)
    except Exception as exc:  # the converter's RuntimeError / ConvertError / InferenceError
        op, step = _unconvertible(model, exc, before, target)
        where = f" (between opset {step} and {step + 1})" if step is not None else ""
        raise EdgeCNNError(
            f"{source} is at opset {before} and the ONNX version converter cannot bring it to "
            f"opset {target}: it has no conversion for {op}{where}; re-export the model at "
            f"opset {target} or newer from the framework it came from, or replace that op"
        ) from exc
    _raise_ir_version(converted)
    return converted


def _unconvertible(model: onnx.ModelProto, exc: BaseException, before: int,
                   target: int) -> tuple[str, int | None]:
    """The op type the converter failed on, from its message or else by converting one opset
    step at a time, and the opset step where it failed (when found that way)."""
    import onnx
    from onnx import version_converter

    ops = sorted({n.op_type for n in model.graph.node if n.domain in _DEFAULT_DOMAINS})
    named = _op_in_message(str(exc), ops)
    if named:
        return f"op {named}", None
    current, version = model, before
    while version < target:
        try:
            current = version_converter.convert_version(current, version + 1)
        except Exception as step_exc:
            named = _op_in_message(str(step_exc), ops)
            if named:
                return f"op {named}", version
            changed = [op for op in ops if not onnx.defs.has(op) or _changes_at(op, version + 1)]
            return ("one of the ops " + ", ".join(changed) if changed
                    else f"this graph ({first_line(step_exc)})"), version
        version += 1
    return f"this graph ({first_line(exc)})", None


def _op_in_message(message: str, ops: list[str]) -> str | None:
    patterns = (r"No Adapter (?:From|To) Version \$?\d+ for (\w+)", r"No Adapter For (\w+)",
                r"Op '(\w+)' has no registered schema")
    for pattern in patterns:
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    # "Op '%s' has no registered schema; ... %lld.ImageScaler818": the arguments are appended
    # to an unformatted message; the op is the graph's op type that the tail starts with.
    tail = message.rsplit("%lld.", 1)[-1] if "%lld." in message else None
    if tail:
        starts = [op for op in ops if tail.startswith(op)]
        if starts:
            return max(starts, key=len)
    # An adapter's own assertion names its source file: adapters/upsample_6_7.h.
    found = re.search(r"adapters/([a-z_]+?)_\d+_\d+\.h", message)
    if found:
        key = found.group(1).replace("_", "")
        for op in ops:
            if op.lower() == key:
                return op
    return None


def _changes_at(op: str, version: int) -> bool:
    import onnx

    try:
        return onnx.defs.get_schema(op, version).since_version == version
    except Exception:
        return False


def _raise_ir_version(model: onnx.ModelProto) -> None:
    """The converter keeps the old IR version, which a new opset may not allow."""
    from onnx import helper

    try:
        needed = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    except Exception:
        return
    model.ir_version = max(model.ir_version, needed)


# --- edgecnn's form -------------------------------------------------------------------------


def _edgecnn_form(model: onnx.ModelProto, sig: OnnxSignature, size: int) -> onnx.ModelProto:
    """A copy renamed to input/logits, batch dynamic, H/W fixed at ``size``, shapes inferred."""
    import onnx

    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    initializers = {t.name for t in graph.initializer}
    if result.ir_version >= 4:
        # Initializers listed as inputs (old IR) would be overridable inputs to a runtime.
        kept = [i for i in graph.input if i.name not in initializers]
        del graph.input[:]
        graph.input.extend(kept)
    taken = _tensor_names(graph)
    temp_in, temp_out = _fresh("edgecnn_in", taken), _fresh("edgecnn_out", taken | {"_"})
    _rename(graph, sig.input_name, temp_in)
    _rename(graph, sig.output_name, temp_out)
    for name in (INPUT_NAME, OUTPUT_NAME):  # a tensor of the graph already called so
        if name in _tensor_names(graph):
            _rename(graph, name, _fresh(f"{name}_", _tensor_names(graph)))
    _rename(graph, temp_in, INPUT_NAME)
    _rename(graph, temp_out, OUTPUT_NAME)
    _set_shape(graph.input[0], [BATCH_PARAM, sig.in_chans, size, size])
    _set_shape(graph.output[0], [BATCH_PARAM, sig.num_classes])
    del graph.value_info[:]  # recorded for the old batch / names
    try:
        return onnx.shape_inference.infer_shapes(result, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception:  # inference of an edited graph: the runtime check reports it better
        return result


def _tensor_names(graph: Any) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    names |= {t.name for t in graph.initializer}
    for node in all_nodes(graph):
        names.update(node.input)
        names.update(node.output)
    return names


def _fresh(stem: str, taken: set[str]) -> str:
    index = 0
    while f"{stem}{index}" in taken:
        index += 1
    return f"{stem}{index}"


def _rename(graph: Any, old: str, new: str) -> None:
    """Rename tensor ``old`` everywhere: nodes (and subgraphs that see it), inputs, outputs,
    value_info, initializers."""
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if value.name == old:
            value.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename(attr.g, old, new)
            for sub in attr.graphs:
                _rename(sub, old, new)


def _set_shape(value: Any, dims: list[int | str]) -> None:
    shape = value.type.tensor_type.shape
    shape.ClearField("dim")
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        else:
            entry.dim_param = dim


# --- verification ---------------------------------------------------------------------------


def _verify(source: Path, model: onnx.ModelProto, sig: OnnxSignature, result: onnx.ModelProto,
            size: int) -> None:
    """ONNX Runtime runs the imported graph: at batch 1 as the given file does, and at batch 2
    as at batch 1 image by image (the dynamic batch is real, not only declared)."""
    import numpy as np

    try:
        original = _session(model)
    except Exception as exc:  # ORT's Fail / InvalidGraph / NotImplemented
        raise EdgeCNNError(f"{source}: ONNX Runtime cannot load the given file: "
                           f"{_ort_message(exc)}") from exc
    try:
        imported = _session(result)
    except Exception as exc:
        raise _load_failure(source, sig, result, exc) from exc
    rng = np.random.default_rng(0)
    x = rng.standard_normal((_CHECK_BATCH, sig.in_chans, size, size)).astype(np.float32)
    feed_batch = sig.batch if isinstance(sig.batch, int) else 1
    reference = _run(original, sig.input_name, np.repeat(x[:1], feed_batch, axis=0), source,
                     "the given file")[:1]
    singles = []
    for i in range(_CHECK_BATCH):
        try:
            singles.append(imported.run(None, {INPUT_NAME: x[i:i + 1]})[0])
        except Exception as exc:  # ORT's own error types
            raise EdgeCNNError(f"{source}: ONNX Runtime cannot run the imported graph at batch "
                               f"1: {_ort_message(exc)}") from exc
    scale = max(1.0, float(np.abs(reference).max()))
    diff = float(np.abs(singles[0] - reference).max()) if singles[0].shape == reference.shape \
        else math.inf
    if not diff / scale < _TOLERANCE:
        converted = _default_opset(result, source) != sig.opset
        conversion = (f" (its opset was converted from {sig.opset}: the converter changed the "
                      "result)") if converted else ""
        raise EdgeCNNError(f"{source}: the imported graph computes another output than the "
                           f"given file (max |diff| {diff:.3g} at output scale {scale:.3g})"
                           f"{conversion}")
    try:
        batched = imported.run(None, {INPUT_NAME: x})[0]
    except Exception as exc:
        raise _batch_error(source, sig, result, str(exc)) from exc
    expected = np.concatenate(singles)
    if batched.shape != expected.shape:
        raise _batch_error(source, sig, result, f"its output at batch {_CHECK_BATCH} has shape "
                           f"{list(batched.shape)}, not {list(expected.shape)}")
    diff = float(np.abs(batched - expected).max())
    if not diff / scale < _TOLERANCE:
        raise _batch_error(source, sig, result, f"at batch {_CHECK_BATCH} the images' outputs "
                           f"differ from their batch-1 outputs by {diff:.3g}")


def _session(model: onnx.ModelProto) -> Any:
    from edgecnn._optional import require

    ort = require("onnxruntime", "importing an ONNX model")
    options = ort.SessionOptions()
    # Fatal only: ORT would log (to stderr) the warnings of old opsets and every failure this
    # module turns into its own message.
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _load_failure(source: Path, sig: OnnxSignature, result: onnx.ModelProto,
                  exc: BaseException) -> EdgeCNNError:
    """The given file loaded and the imported graph does not: the batch made dynamic (shapes
    that no longer agree) when the same graph at its old fixed batch loads, else the opset."""
    if isinstance(sig.batch, int):
        fixed = type(result)()
        fixed.CopyFrom(result)
        _set_shape(fixed.graph.input[0], [sig.batch, sig.in_chans, *_spatial(fixed)])
        _set_shape(fixed.graph.output[0], [sig.batch, sig.num_classes])
        del fixed.graph.value_info[:]
        try:
            _session(fixed)
        except Exception:
            pass
        else:
            return _batch_error(source, sig, result, str(exc))
    return EdgeCNNError(f"{source}: ONNX Runtime cannot load the imported graph (opset "
                        f"{_default_opset(result, source)}): {_ort_message(exc)}")


def _spatial(model: onnx.ModelProto) -> list[int]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [dims[2].dim_value, dims[3].dim_value]


def _ort_message(exc: BaseException) -> str:
    """ORT's first line, without its '[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : ' prefix."""
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", first_line(exc))


def _run(session: Any, name: str, x: np.ndarray, source: Path, what: str) -> np.ndarray:
    try:
        return session.run(None, {name: x})[0]
    except Exception as exc:
        raise EdgeCNNError(f"{source}: ONNX Runtime cannot run {what} on a "
                           f"{list(x.shape)} input: {_ort_message(exc)}") from exc


def _batch_error(source: Path, sig: OnnxSignature, result: onnx.ModelProto,
                 message: str) -> EdgeCNNError:
    """Why the graph does not run at another batch: the node that fixes it, named."""
    failed = re.search(r"running (\w+) node\. Name:'([^']*)'", message)
    nodes = list(result.graph.node)
    index = next((i for i, n in enumerate(nodes) if failed and n.name == failed.group(2)),
                 len(nodes))
    pinned = _batch_pinning_nodes(result, sig.batch)
    culprit = next((n for i, n in pinned if i <= index), None)
    if culprit is not None:
        node = f"node {culprit.name or '(unnamed)'!r} ({culprit.op_type} to a constant shape)"
    elif failed:
        node = f"node {failed.group(2)!r} ({failed.group(1)})"
    else:
        node = "a node of the graph"
    status = re.search(r"Status Message: (.*)", message)
    if failed:
        detail = (f"at batch {_CHECK_BATCH}, its {failed.group(1)} node {failed.group(2)!r} "
                  f"fails: {(status.group(1) if status else '').strip()[:200]}")
    else:
        detail = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "",
                        message.strip().splitlines()[0] if message.strip() else "")[:300]
    if isinstance(sig.batch, int):
        head = (f"{source}: the graph's batch is fixed at {sig.batch} by {node}, so it cannot "
                "be made dynamic")
    else:
        head = (f"{source}: the graph declares a dynamic batch ({sig.batch!r}) but does not run "
                f"at batch {_CHECK_BATCH}: {node} fixes it")
    return EdgeCNNError(f"{head} ({detail}); export it again with a dynamic batch (torch: "
                        "dynamic_axes={'input': {0: 'batch'}} or dynamic_shapes, and "
                        "reshape with x.flatten(1) / x.view(x.size(0), -1), not a constant)")


def _batch_pinning_nodes(model: onnx.ModelProto, batch: int | str) -> list[tuple[int, Any]]:
    """Reshape/Expand nodes to a constant shape that starts with the source's fixed batch."""
    from onnx import numpy_helper

    if not isinstance(batch, int):
        return []
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    found = []
    for i, node in enumerate(graph.node):
        if node.op_type in ("Reshape", "Expand") and len(node.input) > 1 and (
                node.input[1] in constants):
            shape = numpy_helper.to_array(constants[node.input[1]]).reshape(-1)
            if len(shape) and int(shape[0]) == batch:
                found.append((i, node))
    return found


# --- helpers --------------------------------------------------------------------------------



def _dims_text(dims: Any) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"

