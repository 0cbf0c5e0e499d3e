"""`cnncalc import MODEL.onnx`: an ONNX graph as cnncalc layers (the `onnx` package; no torch to read).

Shapes come from ONNX shape inference at the graph's input (or `--input`, batch 1). Each node
becomes one layer: Conv, ConvTranspose, Gemm, BatchNormalization, the activations, pools,
Add/Mul/Concat, Flatten/Reshape, Transpose, global means. A node with parameters is named after
its weight (`layer1.0.conv1.weight` → `layer1.0.conv1`); other nodes after the module torch's
exporter recorded in the node's metadata (`namespace`), else the node's own name; that metadata
also gives the module instances a node ran in, so repeated sub-modules become blocks, as for
PyTorch models. Any other op is refused, every one listed. The spec is then proved: every shape
against inference, the parameter elements against the graph's initializers, and (with torch) the
outputs of the exported module holding the graph's weights against ONNX's reference evaluator.
"""
from __future__ import annotations

import os
import re
from math import prod
from typing import Any

from cnncalc.errors import CnnError
from cnncalc.interop.spec_writer import Found, analyse_written, write_spec, wrong
from cnncalc.safe import visible

MAX_LISTED = 20
MAX_RUN_BYTES = 2 * 2**30  #: the outputs are compared only below this memory
MAX_REFERENCE_MACS = 300_000_000  #: larger graphs are not run through onnx's (slow, numpy) reference evaluator
ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "Gelu": "gelu"}
CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


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
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise CnnError.single(f"import: {path} is not an ONNX model ({type(exc).__name__})") from None
    reader = _Reader(model, input_shape, path)
    found, outputs = reader.read()
    header = [f"written by cnncalc import from {os.path.basename(path)} at {'x'.join(map(str, reader.shape))}; "
              + ("proved against the ONNX graph (shapes, parameter elements, outputs)" if prove else
                 "checked against the ONNX graph (shapes, parameter elements; outputs not compared)")]
    text = write_spec(found, name, reader.shape, header, outputs)
    notes = reader.check(text, found, prove)
    return text, notes


class _Unsupported(Exception):
    pass


class _Reader:
    def __init__(self, model: Any, input_shape: tuple[int, ...] | None, path: str):
        import onnx
        from onnx import numpy_helper

        self.onnx, self.path = onnx, path
        graph = model.graph
        self.arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
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
        self.shape = input_shape
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        for d in fixed.graph.input:
            if d.name == self.input:
                del d.type.tensor_type.shape.dim[:]
                for v in (1, *input_shape):
                    d.type.tensor_type.shape.dim.add().dim_value = v
        del fixed.graph.value_info[:]
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
        for v in [*self.model.graph.value_info, *self.model.graph.output]:
            sizes = [int(d.dim_value) if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim]
            if sizes and all(sizes):
                self.shapes[v.name] = tuple(sizes)
        self.consts: dict[str, Any] = dict(self.arrays)
        self.names: dict[str, str] = {self.input: "input"}  # tensor → layer name
        self.taken: set[str] = {"input"}
        self.found: list[Found] = []
        self.state: dict[str, dict[str, Any]] = {}   # layer → its weights under torch's names
        self.used: set[str] = set()                   # initializers the layers hold
        self.weight_of: dict[str, str] = {}           # weight initializer → first layer holding it
        self.problems: list[str] = []

    # ---- reading ---------------------------------------------------------------------------------
    def read(self) -> tuple[list[Found], list[str]]:
        for node in self.model.graph.node:
            try:
                self.node(node)
            except _Unsupported as exc:
                self.problems.append(visible(f"{exc} ({node.op_type} node '{node.name}')"))
            except (KeyError, IndexError, TypeError, ValueError) as exc:  # a node missing what its op needs
                self.problems.append(visible(f"a malformed node ({type(exc).__name__}: {exc}) ({node.op_type} node "
                                             f"'{node.name}')"[:300]))
        if self.problems:
            shown = self.problems[:MAX_LISTED] + ([f"… and {len(self.problems) - MAX_LISTED} more"]
                                                  if len(self.problems) > MAX_LISTED else [])
            raise CnnError.single("import: these ONNX operations have no cnncalc layer type, so the graph cannot be "
                                  "written as a spec:\n  " + "\n  ".join(shown))
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
        out = node.output[0]
        if op in ("Identity", "Dropout"):
            self.names[out] = self.names[tensors[0]]
            return
        entry, weights = self.layer(node, op, a, ins)
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
        scopes = _scopes(node)[0]
        self.found.append(Found(name, entry, [self.names[t] for t in tensors], scopes, self.shapes[out], share))

    def layer(self, node: Any, op: str, a: dict[str, Any], ins: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The spec entry of one node and its weights under torch's state_dict names."""
        x = self.shapes.get(ins[0], ())
        dims = len(x) - 2
        if op in ("Conv", "ConvTranspose"):
            w = self.weight(ins[1])
            pads = list(a.get("pads", [0] * 2 * dims))
            if pads[:dims] != pads[dims:] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise _Unsupported("asymmetric or automatic padding")
            transpose = op == "ConvTranspose"
            entry = {"type": f"conv{'_transpose' if transpose else ''}{dims}d",
                     "out_channels": int(w.shape[1] * a.get("group", 1) if transpose else w.shape[0]),
                     "kernel_size": _one(list(w.shape[2:])), "stride": _one(a.get("strides", [1] * dims)),
                     "padding": _one(pads[:dims]), "dilation": _one(a.get("dilations", [1] * dims)),
                     "groups": a.get("group", 1)}
            if transpose:
                entry["output_padding"] = _one(a.get("output_padding", [0] * dims))
            if len(ins) < 3:
                entry["bias"] = False
            return _lean(entry), {"weight": w, **({"bias": self.weight(ins[2])} if len(ins) > 2 else {})}
        if op == "Gemm":
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                raise _Unsupported("Gemm with alpha, beta or transA")
            w = self.weight(ins[1])
            w = w if a.get("transB", 0) else w.T
            entry = {"type": "linear", "out_features": int(w.shape[0]), **({} if len(ins) > 2 else {"bias": False})}
            return entry, {"weight": w, **({"bias": self.weight(ins[2])} if len(ins) > 2 else {})}
        if op == "BatchNormalization":
            import numpy as np

            entry = _lean({"type": f"batchnorm{dims if dims in (1, 2, 3) else 1}d", "eps": _f32(a.get("epsilon", 1e-5))})
            return entry, {"weight": self.weight(ins[1]), "bias": self.weight(ins[2]),
                           "running_mean": self.weight(ins[3]), "running_var": self.weight(ins[4]),
                           "num_batches_tracked": np.array(0)}
        if op in ACTIVATIONS:
            tanh = op == "Gelu" and a.get("approximate", b"none") != b"none"
            extra = {"approximate": a["approximate"].decode()} if tanh else {}
            return {"type": ACTIVATIONS[op], **extra}, {}
        if op == "LeakyRelu":
            return _lean({"type": "leaky_relu", "negative_slope": _f32(a.get("alpha", 0.01))}), {}
        if op == "Clip":
            lo, hi = (self.consts.get(i) if i else None for i in (ins[1:3] + ["", ""])[:2])
            if lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0:
                return {"type": "relu6"}, {}
            raise _Unsupported("Clip other than to [0, 6]")
        if op == "Softmax":
            return {"type": "softmax", "dim": a.get("axis", -1)}, {}
        if op in ("MaxPool", "AveragePool"):
            k = list(a["kernel_shape"])
            pads = list(a.get("pads", [0] * 2 * dims))
            if pads[:dims] != pads[dims:]:
                raise _Unsupported("asymmetric padding")
            entry = {"type": f"{'max' if op == 'MaxPool' else 'avg'}pool{dims}d", "kernel_size": _one(k),
                     "stride": _one(a.get("strides", [1] * dims)), "padding": _one(pads[:dims]),
                     "ceil_mode": bool(a.get("ceil_mode", 0))}
            if op == "MaxPool":
                entry["dilation"] = _one(a.get("dilations", [1] * dims))
            else:
                entry["count_include_pad"] = bool(a.get("count_include_pad", 0))
            return _lean(entry), {}
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            return {"type": "global_avgpool" if op == "GlobalAveragePool" else "global_maxpool"}, {}
        if op == "ReduceMean":
            axes = a.get("axes") if "axes" in a else (self.consts.get(ins[1]) if len(ins) > 1 else None)
            rank = len(x)
            if axes is None or {int(v) % rank for v in list(axes)} != set(range(2, rank)):
                raise _Unsupported("a mean over axes other than all the spatial ones")
            return {"type": "global_avgpool", **({} if a.get("keepdims", 1) else {"keepdims": False})}, {}
        if op in ("Add", "Mul"):
            if len([i for i in ins if i not in self.consts]) != 2:
                raise _Unsupported(f"{op} with a constant")
            return {"type": op.lower()}, {}
        if op == "Concat":
            return _lean({"type": "concat", "dim": a["axis"]}), {}
        if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
            y = self.shapes.get(node.output[0])
            if y is None or y[0] != x[0]:
                raise _Unsupported("a reshape of the batch axis")
            if len(x) > 2 and y == (x[0], prod(x[1:])):
                return {"type": "flatten"}, {}
            return {"type": "reshape", "shape": list(y[1:])}, {}
        if op == "Transpose":
            return {"type": "permute", "dims": list(a["perm"])}, {}
        raise _Unsupported(f"{op}")

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
        return {i for n in self.model.graph.node for i in n.input[1:] if i in self.arrays and n.op_type in
                ("Reshape", "Clip", "ReduceMean", "Squeeze", "Unsqueeze")}

    def compare_outputs(self, report: Any, fail: Any) -> list[str]:
        import numpy as np
        from onnx.reference import ReferenceEvaluator

        from cnncalc.backend.kit import kit
        from cnncalc.interop.torch_import import run_exported

        try:
            kit()
        except CnnError:
            return ["outputs not compared: torch is not installed (shapes and parameters were)"]
        x = np.random.default_rng(0).standard_normal((1, *self.shape)).astype(np.float32)
        state = {f"{layer}.{k}": v for layer, ws in self.state.items() for k, v in ws.items()}
        try:
            want = ReferenceEvaluator(self.model).run(None, {self.input: x})
            got = run_exported(report, state, x)
        except Exception as exc:  # noqa: BLE001 - either side failing is the spec not matching
            raise fail(f"running it fails: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        for w, g in zip(want, got):
            if w.shape != g.shape or not np.allclose(w, g, rtol=1e-3, atol=1e-4 * float(np.abs(w).max()) + 1e-5):
                raise fail("the outputs differ")
        return []


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


def _one(v: list[int]) -> Any:
    v = [int(x) for x in v]
    return v[0] if len(set(v)) == 1 else v


def _lean(entry: dict[str, Any]) -> dict[str, Any]:
    from cnncalc.layers import REGISTRY

    return REGISTRY[entry["type"]].lean(entry)
