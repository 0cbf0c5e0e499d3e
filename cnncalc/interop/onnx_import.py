"""`cnncalc import MODEL.onnx`: an ONNX graph as cnncalc layers (the `onnx` package; no torch to read).

Shapes come from ONNX shape inference at the graph's input (or `--input`, batch 1). Each node
becomes one layer, read by the layer class that states its op (`Layer.onnx_ops`: Conv,
ConvTranspose, Gemm, BatchNormalization, the activations, pools, Add/Mul/Concat,
Flatten/Reshape, Transpose, global means). A node with parameters is named after
its weight (`layer1.0.conv1.weight` → `layer1.0.conv1`); other nodes after the module torch's
exporter recorded in the node's metadata (`namespace`), else the node's own name; that metadata
also gives the module instances a node ran in, so repeated sub-modules become blocks, as for
PyTorch models. Any other op is refused, every one listed. The spec is then proved: every shape
against inference, the parameter elements against the graph's initializers, and (with torch) the
outputs of the exported module holding the graph's weights against ONNX's reference evaluator.

Hostile files: nothing is evaluated before every node is known to be a layer or one of a few
shape-arithmetic ops (`CONST_OPS`; a `Loop`, `If`, `Scan` or any node holding a sub-graph is
refused, with every other unknown op, before anything runs); the reference run is given a
memory budget twice over (the sizes shape inference gives every tensor, checked first; then an
address-space limit on the child process it runs in) and a time budget (`RUN_SECONDS`). What is
wrong in the file itself (an initializer whose data does not match its declared size or type, an
attribute of the wrong type, an axis out of range, a dimension that is not positive, a node with
no op type) is said to be the file's, with the node or tensor it is in, exit 1.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from math import prod
from typing import Any

from cnncalc.errors import CnnError
from cnncalc.interop.spec_writer import Found, analyse_written, write_spec, wrong
from cnncalc.layers import REGISTRY
from cnncalc.layers.routes import Malformed, OnnxForm, OnnxNode, Unsupported, onnx_forms
from cnncalc.safe import visible

MAX_LISTED = 20
MAX_RUN_BYTES = 2 * 2**30  #: the outputs are compared only below this memory
MAX_REFERENCE_MACS = 300_000_000  #: larger graphs are not run through onnx's (slow, numpy) reference evaluator
CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
RUN_SECONDS = 60  #: the reference run's time budget (a child process, ended when it runs past)
RUN_ADDRESS_SPACE = MAX_RUN_BYTES + 2**30  #: its memory budget: the run's own plus the interpreter, numpy and onnx
MAX_DIM = 2**40  #: the largest dimension a spec holds
MAX_INITIALIZER_ELEMENTS = 2**31  #: an initializer declared larger is refused before it is read
#: op type → the OnnxForm a layer class states for it (its `onnx_ops`)
FORMS: dict[str, OnnxForm] = {op: form for form in onnx_forms(REGISTRY.values()) for op in form.ops}
#: ops cnncalc reads as layers
LAYER_OPS = frozenset(FORMS)
#: ops that may also appear, on constants only (the shapes and casts exporters write); nothing that
#: loops, branches or makes a tensor larger than its inputs
CONST_OPS = frozenset({"Constant", "Shape", "Gather", "Cast", "Slice", "Sub", "Div"})
#: the attribute types ONNX defines for what the layers read (AttributeProto: 1 FLOAT, 2 INT, 3 STRING, 7 INTS)
ATTRIBUTE_TYPES = {"group": 2, "strides": 7, "pads": 7, "dilations": 7, "auto_pad": 3, "kernel_shape": 7,
                   "output_padding": 7, "alpha": 1, "beta": 1, "transA": 2, "transB": 2, "epsilon": 1,
                   "approximate": 3, "axis": 2, "ceil_mode": 2, "count_include_pad": 2, "axes": 7, "keepdims": 2,
                   "perm": 7}


def import_onnx(path: str, input_shape: tuple[int, ...] | None, name: str,
                prove: bool = True) -> tuple[str, list[str]]:
    """The spec text of the ONNX graph at `path`, and notes for the user. Every shape is checked
    against ONNX shape inference and the parameter elements against the initializers; with `prove`
    (the default) the outputs are also compared with onnx's reference evaluator."""
    try:
        import onnx
    except ImportError:
        raise CnnError.single("import of ONNX needs the onnx extra: pip install 'cnncalc[onnx]'") from None
    if not os.path.isfile(path):
        raise CnnError.single(f"import: no such file: {path}", exit_code=2)
    try:
        model = onnx.load(path, load_external_data=False)  # never a file the model names
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise CnnError.single(f"import: {path} is not an ONNX model ({type(exc).__name__})") from None
    _load_external(model, path, onnx)
    reader = _Reader(model, input_shape, path)
    found, outputs = reader.read()
    if not found:  # every node folded into constants: the output does not read the input (#25 fuzzing)
        raise CnnError.single("import: the graph's output does not depend on its input through any layer "
                              "(nothing to import) in the ONNX file", file=path)
    header = [f"written by cnncalc import from {os.path.basename(path)} at {'x'.join(map(str, reader.shape))}; "
              + ("proved against the ONNX graph (shapes, parameter elements, outputs)" if prove else
                 "checked against the ONNX graph (shapes, parameter elements; outputs not compared)")]
    text = write_spec(found, name, reader.shape, header, outputs)
    notes = reader.check(text, found, prove)
    return text, notes


_Unsupported = Unsupported


class _Reader:
    def __init__(self, model: Any, input_shape: tuple[int, ...] | None, path: str):
        import onnx
        from onnx import numpy_helper

        self.onnx, self.path = onnx, path
        graph = model.graph
        self.arrays = {i.name: _array(i, path, onnx, numpy_helper) for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.arrays]
        if len(inputs) != 1:
            raise CnnError.single(f"import: {path} has {len(inputs)} inputs; a spec has one")
        self.input = inputs[0].name
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        if input_shape is None:
            if len(dims) < 2 or any(d is None for d in dims[1:]):
                raise CnnError.single(f"import: the input of {path} has no fixed size ({dims}); give --input CxHxW",
                                      exit_code=2)
            input_shape = tuple(int(d or 0) for d in dims[1:])
            if not all(0 < d <= MAX_DIM for d in input_shape):
                raise _malformed(path, f"the input '{inputs[0].name}' has the size {list(input_shape)}: every "
                                       f"dimension of a network's input is 1 to 2^40")
        elif dims:  # --input given: the graph's axes and fixed channel count still hold (#24)
            declared = "x".join("?" if d is None else str(d) for d in dims)
            given = "x".join(map(str, input_shape))
            if len(dims) != len(input_shape) + 1:
                raise CnnError.single(f"import: --input {given} has {len(input_shape)} axes, but the input "
                                      f"'{visible(inputs[0].name)[:80]}' of the ONNX graph is {declared} (batch and "
                                      f"{len(dims) - 1} axes)", file=path, exit_code=2)
            if dims[1] is not None and dims[1] != input_shape[0]:
                raise CnnError.single(f"import: --input {given} has {input_shape[0]} channels, but the input "
                                      f"'{visible(inputs[0].name)[:80]}' of the ONNX graph is {declared} "
                                      f"({dims[1]} channels)", file=path, exit_code=2)
        self.shape = input_shape
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        for d in fixed.graph.input:
            if d.name == self.input:
                del d.type.tensor_type.shape.dim[:]
                for v in (1, *input_shape):
                    d.type.tensor_type.shape.dim.add().dim_value = v
        del fixed.graph.value_info[:]
        fixed.graph.value_info.extend(_unpool_shapes(fixed.graph, onnx))
        del fixed.graph.output[:]
        fixed.graph.output.extend(model.graph.output)
        for o in fixed.graph.output:
            o.type.tensor_type.ClearField("shape")
        try:
            self.model = onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
        except Exception as exc:  # noqa: BLE001 - an input the graph does not take
            raise CnnError.single(f"import: ONNX shape inference fails at input {'x'.join(map(str, input_shape))}: "
                                  f"{str(exc).splitlines()[0][:300]}") from None
        self.shapes: dict[str, tuple[int, ...]] = {self.input: (1, *input_shape)}
        self.elements: dict[str, int] = {self.input: prod((1, *input_shape))}  # every tensor whose size is known
        for v in [*self.model.graph.value_info, *self.model.graph.output]:
            dims_known = [d.HasField("dim_value") for d in v.type.tensor_type.shape.dim]
            sizes = [int(d.dim_value) if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim]
            if v.type.tensor_type.HasField("shape") and all(dims_known) and all(n >= 0 for n in sizes):
                self.elements[v.name] = prod(sizes)
            if sizes and all(0 < n <= MAX_DIM for n in sizes):
                self.shapes[v.name] = tuple(sizes)
        self.consts: dict[str, Any] = dict(self.arrays)
        self.names: dict[str, str] = {self.input: "input"}  # tensor → layer name
        self.taken: set[str] = {"input"}
        self.found: list[Found] = []
        self.state: dict[str, dict[str, Any]] = {}   # layer → its weights under torch's names
        self.used: set[str] = set()                   # initializers the layers hold
        self.weight_of: dict[str, str] = {}           # weight initializer → first layer holding it
        self.problems: list[str] = []
        self.indices: dict[str, tuple[str, Any]] = {}  # a MaxPool's indices → (its layer, its input's shape)

    # ---- reading ---------------------------------------------------------------------------------
    def screen(self) -> set[int]:
        """Before anything is read or run: every node is a layer op or shape arithmetic (a
        sub-graph is never run), with attributes of the types ONNX defines; the nodes refused."""
        refused = set()
        for k, node in enumerate(self.model.graph.node):
            where = f"({visible(node.op_type)[:60]} node '{visible(node.name)[:100]}')"
            if not node.op_type:
                raise _malformed(self.path, f"node {k} ('{visible(node.name)[:100]}') has no op type")
            if node.domain not in ("", "ai.onnx"):
                self.problems.append(f"an op of the domain '{visible(node.domain)[:60]}' {where}")
                refused.add(k)
            elif any(a.type in (5, 10) or a.g.node or a.graphs for a in node.attribute):  # GRAPH, GRAPHS
                self.problems.append(f"a node holding a sub-graph (control flow is never run) {where}")
                refused.add(k)
            elif node.op_type not in LAYER_OPS | CONST_OPS:
                self.problems.append(f"{visible(node.op_type)[:60]} {where}")
                refused.add(k)
            for a in node.attribute:
                want = ATTRIBUTE_TYPES.get(a.name)
                if node.op_type in LAYER_OPS and want is not None and a.type != want:
                    raise _malformed(self.path, f"the attribute '{a.name}' of {where[1:-1]} has the type "
                                                f"{_ATTRIBUTE_NAMES.get(a.type, a.type)}, not "
                                                f"{_ATTRIBUTE_NAMES[want]}")
        return refused

    def read(self) -> tuple[list[Found], list[str]]:
        refused = self.screen()
        for k, node in enumerate(self.model.graph.node):
            if k in refused:
                continue
            try:
                self.node(node)
            except _Unsupported as exc:
                self.problems.append(visible(f"{exc} ({node.op_type} node '{node.name}')"))
            except _Malformed as exc:
                raise _malformed(self.path, f"{exc} ({visible(node.op_type)[:60]} node '{visible(node.name)[:100]}')") from None
            except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
                raise _malformed(self.path, f"{visible(node.op_type)[:60]} node '{visible(node.name)[:100]}' is "
                                            f"missing what its op needs ({type(exc).__name__}: "
                                            f"{visible(str(exc))[:200]})") from None
        if self.problems:
            shown = self.problems[:MAX_LISTED] + ([f"… and {len(self.problems) - MAX_LISTED} more"]
                                                  if len(self.problems) > MAX_LISTED else [])
            raise CnnError.single("import: these ONNX operations have no cnncalc layer type, so the graph cannot be "
                                  "written as a spec:\n  " + "\n  ".join(shown))
        held = [o.name for o in self.model.graph.output if o.name in self.indices]
        if held:
            raise CnnError.single("import: these ONNX operations have no cnncalc layer type, so the graph cannot be "
                                  f"written as a spec:\n  the graph's output {visible(held[0])[:100]}, the indices of "
                                  f"MaxPool {visible(self.indices[held[0]][0])} (only a MaxUnpool reads them)")
        outputs = [self.names[o.name] for o in self.model.graph.output if o.name in self.names]
        return self.found, outputs

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def node(self, node: Any) -> None:
        op, a = node.op_type, self.attrs(node)
        if op == "Constant":
            self.consts[node.output[0]] = self.onnx.numpy_helper.to_array(a["value"]) if "value" in a else None
            return
        ins = [i for i in node.input if i]
        if all(i in self.consts for i in ins):  # arithmetic on constants (shapes, casts): a constant, not a layer
            self.consts.update({o: None for o in node.output})
            return
        tensors = [i for i in ins if i not in self.consts]
        if any(t not in self.names for t in tensors):
            return  # after a refused op: not listed again
        self.indices_read(node, op, ins)
        out = node.output[0]
        entry, weights = self.layer(node, op, a, ins)
        indices = node.output[1] if op == "MaxPool" and len(node.output) > 1 and node.output[1] else None
        if indices and entry is not None:
            if int(a.get("storage_order", 0)) != 0:
                raise _Unsupported("MaxPool indices in column-major order (storage_order 1; torch's are row-major)")
            entry["return_indices"] = True
        if entry is None:  # its input itself (Identity, Dropout at inference)
            self.names[out] = self.names[tensors[0]]
            return
        if out not in self.shapes:
            raise _Unsupported("an output whose shape inference does not give")
        holder = ins[1] if weights else None  # the weight: names the layer; a second reader shares it
        name = self.name_of(node, holder)
        share = self.weight_of.get(holder) if holder else None
        if holder and share is None:
            self.weight_of[holder] = name
        if weights and share is None:
            self.state[name] = weights
            self.used.update(w for w in ins if w in self.arrays)
        self.names[out] = name
        if indices:  # read only by a MaxUnpool (indices_read), as the pool: its second input
            self.names[indices] = name
            self.indices[indices] = (name, self.shapes.get(tensors[0]))
        scopes = _scopes(node)[0]
        self.found.append(Found(name, entry, [self.names[t] for t in tensors], scopes, self.shapes[out], share))

    def indices_read(self, node: Any, op: str, ins: list[str]) -> None:
        """A MaxPool's indices are read only as I of a MaxUnpool whose output has that pool's input
        shape: there ONNX's flat index over N·C·H·W, n·C·H·W + c·H·W + h·W + w, names the position
        torch's per-plane h·W + w does in plane (n, c)."""
        second = ins[1] if op == "MaxUnpool" and len(ins) > 1 else None
        for i in ins:
            if i in self.indices and i != second:
                raise _Unsupported(f"{op} reading the indices of MaxPool {self.indices[i][0]} (only a MaxUnpool "
                                   "reads them, as its second input I)")
        if second is None:
            return
        if second not in self.indices:
            raise _Unsupported("MaxUnpool reading indices that no MaxPool of the graph returned")
        pool, source = self.indices[second]
        out = self.shapes.get(node.output[0])
        if out is None or source is None or tuple(out) != tuple(source):
            raise _Unsupported(f"MaxUnpool to {'×'.join(map(str, out or ()))} from the indices of MaxPool {pool} of a "
                               f"{'×'.join(map(str, source or ()))} input: ONNX's indices count positions of the "
                               "whole N·C·H·W tensor, torch's of each channel plane, the same positions only where "
                               "the output has the pool's input shape")

    def layer(self, node: Any, op: str, a: dict[str, Any],
              ins: list[str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The spec entry of one node (None: its input itself) and its weights under torch's
        state_dict names, from the OnnxForm a layer class states for the op."""
        import numpy as np

        form = FORMS.get(op)
        if form is None:
            raise _Unsupported(f"{op}")
        view = OnnxNode(op, a, ins, self.shapes.get(ins[0], ()), self.shapes.get(node.output[0]),
                        {i: self.consts[i] for i in ins if i in self.consts}, self.weight, _f32, lambda: np.array(0))
        return form.read(view)

    def weight(self, name: str) -> Any:
        if name not in self.arrays:
            raise _Unsupported(f"a weight '{name}' that is computed, not stored")
        return self.arrays[name]

    def name_of(self, node: Any, holder: str | None) -> str:
        base = None
        if holder and holder.endswith(".weight"):
            base = holder[: -len(".weight")]
        if base is None:
            base = _scopes(node)[1]
        if base is None:
            base = node.name or node.op_type.lower()
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", base).strip(".") or node.op_type.lower()
        if not re.match(r"^[A-Za-z0-9_]", base):
            base = "n" + base
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    # ---- proving ---------------------------------------------------------------------------------
    def check(self, text: str, found: list[Found], prove: bool = True) -> list[str]:
        def fail(why: str) -> CnnError:
            return wrong(self.path, why)

        report = analyse_written(text, found, self.path, "ONNX")
        held = sum(int(self.arrays[n].size) for n in self.used)
        tracked = sum(1 for r in report.layers if "num_batches_tracked" in r.buffer_shapes and not r.shared_with)
        ours = report.totals["params"] + report.totals["buffers"] - tracked  # ONNX keeps no num_batches_tracked
        if ours != held:
            raise fail(f"parameter elements: cnncalc {ours:,}, the graph's initializers {held:,}")
        notes = [f"left out: initializer {n} (read by no layer)" for n in self.arrays
                 if n not in self.used and n not in self.consts_read()][:MAX_LISTED]
        if not prove:
            return notes + ["outputs not compared (prove=False): shapes and parameter elements were"]
        if report.totals["macs"] > MAX_REFERENCE_MACS:
            return notes + [f"outputs not compared: {report.totals['macs']:,} MACs is beyond onnx's reference "
                            "evaluator (shapes and parameters were)"]
        if 3 * report.totals["inference_memory_bytes"] > MAX_RUN_BYTES:  # the evaluator, the module and the input
            return notes + [f"outputs not compared: running it needs about "
                            f"{3 * report.totals['inference_memory_bytes'] / 2**30:.1f} GiB (shapes and parameters were)"]
        return notes + self.compare_outputs(report, fail)

    def consts_read(self) -> set[str]:
        return {i for n in self.model.graph.node for i in n.input[1:] if i in self.arrays and n.op_type in FORMS
                and FORMS[n.op_type].reads_constants}

    def reference_run(self, x: Any) -> Any:
        """The graph's outputs from onnx's reference evaluator, run in a child process with
        `RUN_SECONDS` and `RUN_ADDRESS_SPACE`; a note (str) when it ran past either. A graph the
        evaluator itself cannot run is the file's fault."""
        import numpy as np

        with tempfile.TemporaryDirectory(prefix="cnncalc-onnx-") as tmp:
            files = [os.path.join(tmp, n) for n in ("model.onnx", "x.npy", "input.json", "out.npz")]
            with open(files[0], "wb") as fh:
                fh.write(self.model.SerializeToString())
            np.save(files[1], x)
            with open(files[2], "w") as fh:
                json.dump(self.input, fh)
            env = {**os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
            try:
                run = subprocess.run([sys.executable, "-c", _REFERENCE_RUN, *files], capture_output=True, env=env,
                                     timeout=RUN_SECONDS, preexec_fn=_limit_memory, check=False)  # noqa: S603
            except subprocess.TimeoutExpired:
                return (f"outputs not compared: onnx's reference evaluator ran past {RUN_SECONDS} s (shapes and "
                        "parameters were)")
            err = run.stderr.decode("utf-8", "replace").strip().splitlines()
            if run.returncode == 3 or run.returncode < 0 or any("MemoryError" in line for line in err[-3:]):
                return (f"outputs not compared: onnx's reference evaluator needs more than "
                        f"{RUN_ADDRESS_SPACE / 2**30:.0f} GiB (shapes and parameters were)")
            if run.returncode != 0:
                raise _malformed(self.path, "onnx's own reference evaluator cannot run the graph at input "
                                            f"{'x'.join(map(str, self.shape))} ({visible(err[-1] if err else '')[:200]})")
            with np.load(files[3]) as out:
                return [out[f"arr_{k}"] for k in range(len(out.files))]

    def compare_outputs(self, report: Any, fail: Any) -> list[str]:
        import numpy as np

        from cnncalc.backend.kit import kit
        from cnncalc.interop.torch_import import run_exported

        try:
            kit()
        except CnnError:
            return ["outputs not compared: torch is not installed (shapes and parameters were)"]
        x = np.random.default_rng(0).standard_normal((1, *self.shape)).astype(np.float32)
        state = {f"{layer}.{k}": v for layer, ws in self.state.items() for k, v in ws.items()}
        tensors = [o for n in self.model.graph.node for o in n.output if o]
        if any(o not in self.elements for o in tensors):
            return ["outputs not compared: shape inference does not give the size of every tensor in the graph, so "
                    "its reference run has no memory bound (shapes and parameters were)"]
        need = 4 * (sum(self.elements[o] for o in tensors) + sum(int(v.size) for v in self.arrays.values()))
        if need > MAX_RUN_BYTES:
            return [f"outputs not compared: the reference run holds about {need / 2**30:.1f} GiB of tensors "
                    "(shapes and parameters were)"]
        want = self.reference_run(x)
        if isinstance(want, str):
            return [want]
        try:
            got = run_exported(report, state, x)
        except Exception as exc:  # noqa: BLE001 - the exported module failing is the spec not matching
            raise fail(f"running it fails: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        for w, g in zip(want, got):
            if w.shape != g.shape or not np.allclose(w, g, rtol=1e-3, atol=1e-4 * float(np.abs(w).max()) + 1e-5):
                raise fail("the outputs differ")
        return []


def _unpool_shapes(graph: Any, onnx: Any) -> list[Any]:
    """The output shape of each MaxUnpool whose output_shape is a stored constant (an initializer
    or a Constant node): ONNX's shape inference gives only its rank, so the tensors after it had no
    shapes. At most 8 entries, each a positive size, else left to inference."""
    stored = {i.name: i for i in graph.initializer}
    stored.update({n.output[0]: a.t for n in graph.node if n.op_type == "Constant" and n.output
                   for a in n.attribute if a.name == "value" and a.type == 4})  # TENSOR
    out = []
    for n in graph.node:
        t = stored.get(n.input[2]) if n.op_type == "MaxUnpool" and len(n.input) > 2 and n.output else None
        if t is None or len(t.dims) != 1 or not 0 < t.dims[0] <= 8 or t.data_type != 7:  # INT64
            continue
        try:
            sizes = [int(v) for v in onnx.numpy_helper.to_array(t)]
        except Exception:  # noqa: BLE001 - data not matching its declaration: left to inference (and the reader)
            continue
        if all(0 < v <= MAX_DIM for v in sizes):
            info = onnx.ValueInfoProto(name=n.output[0])
            for v in sizes:
                info.type.tensor_type.shape.dim.add().dim_value = v
            out.append(info)
    return out


def _scopes(node: Any) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """From torch's exporter's `namespace` metadata (': Net/layer1: …Sequential/layer1.0: Bottleneck/
    layer1.0.relu: …ReLU/relu_3: aten.relu.default'): the module instances the node ran in
    (outermost first, leaving out the root and the node's own module) and its name: the node's
    own module path, or the module it ran in and the op."""
    text = next((p.value for p in node.metadata_props if p.key == "namespace"), None)
    if not text:
        return (), None
    segments = [s.split(": ", 1) for s in text.split("/")]
    if any(len(s) != 2 for s in segments) or len(segments) < 2:
        return (), None
    modules = [(path.strip(), cls.strip()) for path, cls in segments[:-1]][1:]
    op = re.sub(r"_\d+$", "", segments[-1][0].strip())
    short = [(p, c.rsplit(".", 1)[-1]) for p, c in modules]
    if modules and modules[-1][1].startswith("torch.nn.") and short[-1][1] not in CONTAINERS:
        return tuple(short[:-1]), modules[-1][0]
    return tuple(short), (f"{modules[-1][0]}.{op}" if modules else op)


def _f32(v: float) -> float:
    """A float32 attribute as written in the source (1e-05, not 9.999999747378752e-06)."""
    import numpy as np

    return float(str(np.float32(v)))


_Malformed = Malformed


def _malformed(path: str, why: str) -> CnnError:
    """What is wrong in the file itself, blamed on it (exit 1)."""
    return CnnError.single(f"import: {visible(why)} in the ONNX file", file=path)


_ATTRIBUTE_NAMES = {0: "UNDEFINED", 1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH", 6: "FLOATS",
                    7: "INTS", 8: "STRINGS", 9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS",
                    13: "TYPE_PROTO", 14: "TYPE_PROTOS"}


def _array(tensor: Any, path: str, onnx: Any, numpy_helper: Any) -> Any:
    """An initializer as a numpy array, its declared type and size checked against its data first."""
    what = f"the initializer '{visible(tensor.name)[:100]}'"
    if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
        raise _malformed(path, f"{what} keeps its data in another file, which cnncalc does not read")
    if tensor.data_type == onnx.TensorProto.UNDEFINED:
        raise _malformed(path, f"{what} has no data type (UNDEFINED)")
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:  # noqa: BLE001 - UNDEFINED or a number ONNX does not define
        raise _malformed(path, f"{what} has the data type {tensor.data_type}, which ONNX does not define") from None
    if dtype.kind not in "biuf":
        raise _malformed(path, f"{what} has the data type {tensor.data_type}, not a number type")
    if any(d < 0 for d in tensor.dims):
        raise _malformed(path, f"{what} has a negative dimension ({list(tensor.dims)[:8]})")
    count = prod(int(d) for d in tensor.dims)
    if count > MAX_INITIALIZER_ELEMENTS:
        raise _malformed(path, f"{what} is declared with {count:,} elements (at most {MAX_INITIALIZER_ELEMENTS:,})")
    if tensor.HasField("raw_data") and len(tensor.raw_data) != count * dtype.itemsize:
        raise _malformed(path, f"{what} is declared with {count:,} elements but holds {len(tensor.raw_data):,} bytes")
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # noqa: BLE001 - data that does not match its declaration
        raise _malformed(path, f"{what} does not hold the {count:,} elements it declares "
                               f"({type(exc).__name__})") from None


def _load_external(model: Any, path: str, onnx: Any) -> None:
    """The initializers kept beside the file (torch's exporter writes `NAME.onnx.data`), read only
    from a plain file in the model's own folder, within that file's size, each checked first."""
    from onnx.external_data_helper import load_external_data_for_model

    folder = os.path.dirname(os.path.abspath(path))
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for t in external:
        what = f"the initializer '{visible(t.name)[:100]}'"
        info = {e.key: e.value for e in t.external_data}
        where = info.get("location", "")
        target = os.path.join(folder, where)
        if (not where or os.path.isabs(where) or os.path.basename(where) != where or where in (".", "..")
                or os.path.realpath(target) != os.path.join(os.path.realpath(folder), where)
                or not os.path.isfile(target)):
            raise _malformed(path, f"{what} keeps its data in '{visible(where)[:100]}', which is not a file beside "
                                   "the model (cnncalc reads no other)")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except Exception:  # noqa: BLE001 - a number that is not one, or a type ONNX does not define
            raise _malformed(path, f"{what} has an unreadable offset, length or data type") from None
        count = prod(int(d) for d in t.dims) if all(d >= 0 for d in t.dims) else -1
        size = os.path.getsize(target)
        if not 0 <= count <= MAX_INITIALIZER_ELEMENTS or offset < 0 or offset + count * itemsize > size \
                or length not in (-1, count * itemsize):
            raise _malformed(path, f"{what} is declared with {count:,} elements at byte {offset:,} of "
                                   f"'{visible(where)[:100]}' ({size:,} bytes), which does not hold them")
    if external:
        try:
            load_external_data_for_model(model, folder)
        except Exception as exc:  # noqa: BLE001 - a data file that changed or cannot be read
            raise _malformed(path, f"the data beside the model cannot be read ({type(exc).__name__})") from None


def _limit_memory() -> None:  # pragma: no cover - runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (RUN_ADDRESS_SPACE, RUN_ADDRESS_SPACE))


#: the child that runs onnx's reference evaluator (argv: model, input, input name, outputs);
#: exit 3 when it runs out of memory
_REFERENCE_RUN = """
import json, sys
import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
try:
    model = onnx.load(sys.argv[1], load_external_data=False)
    with open(sys.argv[3]) as fh:
        name = json.load(fh)
    out = ReferenceEvaluator(model).run(None, {name: np.load(sys.argv[2])})
    np.savez(sys.argv[4], *[np.asarray(o) for o in out])
except MemoryError:
    sys.exit(3)
"""
