"""Fuzz the constructs added since round two (issue #25, "done when"): expressions with
functions, when/args/defaults/names, chunk/split/views, ONNX graphs built with onnx.helper from
random and malformed parts, torch model files with awkward names and prints. Every input must
end in a result (which then renders in every format) or located problems; an escape is any
other exception, "bug in cnncalc", an exit code other than 0/1/2, an output line starting with
`::`, or an input taking over 20 s.

    nice python benchmarks/fuzz_constructs.py                    # 100,000 inputs, the default split
    python benchmarks/fuzz_constructs.py --scale 0.01 --seed 7   # a quick run
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnncalc  # noqa: E402

SPLIT = {"expressions": 32_000, "when_args_names": 32_000, "views": 33_800, "onnx": 2_000, "torch": 200}
NAMES = ["a", "b.c", "x_1", "features.0.1", "é", "a\nb", "::error::x", "[red]r[/red]", "a\u202eb", "training",
         "forward", "__class__", "0", "F", "in", "input", "k" * 80, "$n", "${n}"]
ATOMS = ["1", "2", "3", "4", "8", "n", "c", "w",
         "0", "1", "-1", "2", "3", "0.5", "1e308", "1e999", "-1e999", "99999999999", "4611686018427387905", "n", "w",
         "c", "true", "false", "in.channels", "input.height", "missing", "1/0", "(2)", "-(-3)"]
FUNCS = ["min", "max", "round", "floor", "ceil", "int", "float", "abs", "make_divisible"]
OPS = ["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">=", "and", "or"]


def expr(r: random.Random, depth: int = 0) -> str:
    roll = r.random()
    if depth > 3 or roll < 0.3:
        return r.choice(ATOMS)
    if roll < 0.55:
        return f"{r.choice(FUNCS)}({', '.join(expr(r, depth + 1) for _ in range(r.randint(0, 3)))})"
    if roll < 0.75:
        return f"({expr(r, depth + 1)}) {r.choice(OPS)} ({expr(r, depth + 1)})"
    if roll < 0.85:
        return f"{expr(r, depth + 1)} if {expr(r, depth + 1)} else {expr(r, depth + 1)}"
    return r.choice(["-", "not ", ""]) + expr(r, depth + 1)


def value(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.5:
        return json.dumps("${" + expr(r) + "}")
    if roll < 0.93:
        return r.choice(["1", "2", "3", "4", "8", "$n", "$c", "$w"])
    return r.choice(["0", "-1", "1.5", "null", "[3, 3]", "true", "'x'", "9" * 50])


def expressions(r: random.Random) -> str:
    field = r.choice(["stride", "padding", "groups", "dilation"])
    lines = ["args: {n: " + value(r) + ", w: " + value(r) + ", c: " + value(r) + "}", "input: 3x16x16", "layers:",
             f"  - {{type: conv2d, out_channels: {value(r)}, kernel_size: {value(r)}, {field}: {value(r)}}}"]
    for _ in range(r.randint(0, 3)):
        lines.append(r.choice([f"  - {{type: relu, when: {value(r)}}}",
                               f"  - {{type: maxpool2d, kernel_size: {value(r)}, stride: {value(r)}}}",
                               f"  - {{type: upsample, scale_factor: {value(r)}}}",
                               f"  - {{type: conv2d, out_channels: {value(r)}, kernel_size: 1, padding: {value(r)}}}"]))
    return "\n".join(lines) + "\n"


def name(r: random.Random) -> str:
    return json.dumps(r.choice(NAMES))


def when_args_names(r: random.Random) -> str:
    lines = [f"name: {name(r)}", f"args: {{n: {value(r)}, c: {value(r)}, w: {value(r)}}}", "input: 3x8x8"]
    if r.random() < 0.5:
        lines.append(f"defaults: {{{r.choice(['conv2d', 'batchnorm2d', 'relu', 'nope', '$n'])}: "
                     f"{{{r.choice(['eps', 'bias', 'kernel_size', 'x'])}: {value(r)}}}}}")
    lines += ["blocks:", "  b:", f"    args: {{c: {value(r)}, n: {value(r)}, k: {value(r)}}}", "    layers:",
              f"      - {{type: conv2d, out_channels: {value(r)}, kernel_size: {value(r)}, name: {name(r)}, "
              f"when: {value(r)}}}",
              f"      - {{type: {r.choice(['relu', 'batchnorm2d', '$t', 'add'])}, name: {name(r)}}}",
              "  e:", "    layers:", f"      - {{block: {r.choice(['b', 'e', '$blk'])}, args: {{c: {value(r)}}}}}",
              "layers:"]
    for _ in range(r.randint(1, 4)):
        lines.append(r.choice([
            f"  - {{block: b, name: {name(r)}, repeat: {value(r)}, args: {{c: {value(r)}}}}}",
            f"  - {{block: b, repeat: {r.randint(0, 4)}, each: {{c: [{value(r)}, {value(r)}]}}, when: {value(r)}}}",
            f"  - {{type: relu, name: {name(r)}, inputs: [{name(r)}]}}",
            f"  - {{block: e, when: {value(r)}}}",
            f"  - {{type: conv2d, out_channels: {value(r)}, kernel_size: 1, name: {name(r)}, when: {value(r)}}}"]))
    return "\n".join(lines) + "\n"


def views(r: random.Random) -> str:
    c, h, w = r.choice([1, 2, 4, 6, 8]), r.choice([1, 2, 3, 4]), r.choice([1, 2, 4, 5])
    lines = [f"input: {c}x{h}x{w}", f"batch: {r.randint(1, 3)}", "layers:"]
    made = ["input"]
    for i in range(r.randint(1, 7)):
        src = r.choice(made + [made[-1]] * 3)
        roll = r.choice(["permute", "transpose", "view", "reshape", "flatten", "unflatten", "chunk", "split",
                         "narrow", "relu", "conv", "add", "concat", "layernorm", "linear"])
        nm = f"l{i}"
        spec = {
            "permute": f"type: permute, dims: {[0] + r.sample([1, 2, 3], 3) if r.random() < 0.8 else [0, 2, 1]}",
            "transpose": f"type: transpose, dim0: {r.randint(-3, 3)}, dim1: {r.randint(-3, 3)}",
            "view": f"type: view, shape: {r.choice([[-1], [c, -1], [-1, w], [h * w, -1], [2, -1], [c, h, w], [w, h, c]])}",
            "reshape": f"type: reshape, shape: {r.choice([[-1], [c, -1], [-1, w], [w, h, c], [3, -1]])}",
            "flatten": f"type: flatten, start_dim: {r.randint(-3, 3)}",
            "unflatten": f"type: unflatten, dim: {r.randint(-2, 2)}, sizes: {r.choice([[c, -1], [-1, 2], [c, h, w]])}",
            "chunk": f"type: chunk, chunks: {r.randint(1, 4)}",
            "split": f"type: split, sizes: {r.choice([[1, 1], [c // 2 or 1, c - (c // 2 or 1)], [c], [c], [0, c]])}",
            "narrow": f"type: narrow, start: {r.randint(0, c - 1)}, length: {r.randint(1, c)}",
            "relu": "type: relu",
            "conv": f"type: conv2d, out_channels: {r.choice([1, 2, 4, c])}, kernel_size: 1",
            "add": f"type: add, inputs: [{src}, {r.choice(made)}]",
            "concat": f"type: concat, inputs: [{src}, {r.choice(made)}]",
            "layernorm": f"type: layernorm, normalized_shape: {r.choice([c, w, h])}",
            "linear": f"type: linear, out_features: {r.randint(1, 4)}",
        }[roll]
        if "inputs" not in spec:
            spec += f", inputs: [{src}]"
        lines.append(f"  - {{name: {nm}, {spec}}}")
        made.append(nm)
        if roll in ("chunk", "split"):
            made += [f"{nm}.0", f"{nm}.1"]
    return "\n".join(lines) + "\n"


class Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ANN001
    raise Hang()


def spec_case(text: str) -> str | None:
    """None when it ends cleanly, else what escaped."""
    from io import StringIO

    from rich.console import Console

    from cnncalc.render.formats import to_csv, to_json, to_markdown
    from cnncalc.render.terminal import print_table

    try:
        report = cnncalc.analyze(cnncalc.parse_spec(text, "fuzz.yaml"))
    except cnncalc.CnnError as exc:
        bad = [p for p in exc.problems if p.file != "fuzz.yaml" or "bug in cnncalc" in p.message
               or any(line.startswith("::") for line in str(p).splitlines()[1:])]
        return None if exc.problems and not bad else f"unlocated: {bad[:1]}"
    json.loads(to_json(report))
    to_csv(report)
    to_markdown(report)
    out = StringIO()
    print_table(report, Console(file=out, width=120))
    if any(line.startswith("::") for line in out.getvalue().splitlines()):
        return "a line starting with ::"
    return None


def cli_case(args: list[str]) -> str | None:
    from typer.testing import CliRunner

    from cnncalc.cli.app import app

    out = CliRunner().invoke(app, args)
    if out.exception is not None and not isinstance(out.exception, SystemExit):
        return f"{type(out.exception).__name__}: {out.exception}"
    if out.exit_code not in (0, 1, 2):
        return f"exit {out.exit_code}"
    text = out.output
    if "Traceback" in text or "bug in cnncalc" in text:
        return text[-300:]
    if any(line.startswith("::") for line in text.splitlines()):
        return "a line starting with ::"
    return None


def process_case(args: list[str], timeout: int) -> str | None:
    """The real CLI in a child (what a model writes to fds 1 and 2 must stay out of its output)."""
    import subprocess

    try:
        done = subprocess.run([sys.executable, "-m", "cnncalc", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"over {timeout} s"
    text = done.stdout + done.stderr
    if done.returncode not in (0, 1, 2):
        return f"exit {done.returncode}: {text[-300:]}"
    if "Traceback" in text or "bug in cnncalc" in text:
        return text[-300:]
    if any(line.startswith("::") for line in text.splitlines()):
        return "a line starting with ::"
    return None


def onnx_file(r: random.Random, path: str) -> list[str]:
    import numpy as np
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    ops = ["Relu", "Conv", "Softmax", "Gelu", "ReduceMean", "Concat", "Transpose", "Add", "Shape", "Clip", "MaxPool",
           "Flatten", "Gemm", "BatchNormalization", "Reshape", "Split", "Slice", "Mul", "Loop", "", "Mystery",
           "GlobalAveragePool", "Sigmoid", "Identity", "Constant"]
    shape = [r.choice([1, 1, 2, -1, 0])] + [r.choice([1, 2, 3, 4, 8, -1]) for _ in range(r.randint(1, 4))]
    names, nodes, inits = ["x"], [], []
    for k in range(r.randint(1, 6)):
        op = r.choice(ops)
        ins = [r.choice(names + ["w", "missing", "", "x"]) for _ in range(r.randint(0, 3))]
        attrs = {}
        for _ in range(r.randint(0, 3)):
            key = r.choice(["axis", "axes", "perm", "approximate", "group", "kernel_shape", "pads", "strides", "alpha",
                            "epsilon", "keepdims", "split"])
            attrs[key] = r.choice([r.randint(-3, 5), 2**40, [r.randint(-2, 4) for _ in range(r.randint(0, 4))], "none",
                                   "tanh", "x\n::error::y", r.uniform(-2, 2)])
        try:
            nodes.append(h.make_node(op, ins, [f"t{k}"], name=r.choice(["", "n", "a\nb", "::warning::z"]), **attrs))
        except Exception:  # noqa: BLE001 - a part onnx.helper cannot make
            continue
        names.append(f"t{k}")
    for _ in range(r.randint(0, 2)):
        dims = [r.randint(0, 4) for _ in range(r.randint(1, 4))]
        t = nh.from_array(np.zeros(dims, np.float32), "w")
        if r.random() < 0.2:
            t.data_type = r.choice([0, 8, 99])
        if r.random() < 0.1:
            del t.dims[:]
            t.dims.extend([10**5, 10**5])
            t.raw_data = b""
        inits.append(t)
    nodes.append(h.make_node("Identity", [names[-1]], ["y"]))
    graph = h.make_graph(nodes, r.choice(["g", "g\n::error::x"]), [h.make_tensor_value_info("x", T.FLOAT, shape)],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", r.choice([11, 13, 17, 20]))])
    data = model.SerializeToString()
    if r.random() < 0.1:  # a damaged file
        cut = r.randint(0, len(data))
        data = data[:cut] + bytes([r.randint(0, 255)]) + data[cut + 1:]
    with open(path, "wb") as fh:
        fh.write(data)
    return ["import", path] + (["--input", "3x8x8"] if r.random() < 0.3 else [])


TORCH_NAMES = ["conv", "training", "forward", "_modules", "keys", "F", "é", "a_b", "layer0", "weight", "__dict__x"]
TORCH_BODIES = ["print('hello')", "print('::error::x')", "import sys; sys.stdout.write('x\\n')",
                "import os; os.write(1, b'fd1\\n')", "import os; os.write(2, b'::add-mask::x\\n')",
                "import sys; print('x', file=sys.__stdout__)", "pass", "import sys; sys.exit(0)",
                "raise ValueError('model broke\\n::error::x')", "x = x * 1"]


def torch_file(r: random.Random, path: str) -> list[str]:
    attrs = r.sample(TORCH_NAMES, r.randint(1, 3))
    cls = r.choice(["Net", "Net_\u00e9"])
    lines = ["import torch", "from torch import nn", "", f"class {cls}(nn.Module):", "    def __init__(self):",
             "        super().__init__()", f"        {r.choice(TORCH_BODIES)}"]
    chans = 3
    made = []
    for a in attrs:
        if a in ("training", "forward", "_modules", "keys", "weight", "__dict__x"):
            lines.append(f"        setattr(self, {a!r} + '_', nn.ReLU())")
            made.append(f"getattr(self, {a!r} + '_')")
        else:
            out = r.choice([2, 4, 8])
            lines.append(f"        self.{a} = nn.Conv2d({chans}, {out}, {r.choice([1, 3])}, padding=1)")
            made.append(f"self.{a}")
            chans = out
    lines += ["", "    def forward(self, x):", f"        {r.choice(TORCH_BODIES)}"]
    for m in made:
        lines.append(f"        x = {m}(x)")
    if r.random() < 0.3:
        lines.append(r.choice(["        x = x.permute(0, 2, 3, 1).contiguous().view(x.shape[0], -1)",
                               "        x = x.flatten(1)", "        x = torch.chunk(x, 2, dim=1)[0]"]))
    lines.append("        return x")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return ["import", f"{path}:{cls}", "--input", r.choice(["3x8x8", "3x4x4", "1x8x8"])]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=25)
    ap.add_argument("--only", nargs="*", default=list(SPLIT))
    ap.add_argument("--timeout", type=int, default=20)
    ap.add_argument("--progress", type=int, default=1000, help="print partial totals every N inputs (0: never)")
    args = ap.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    escapes: list[tuple[str, int, str, str]] = []
    total = 0
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.only:
            n = max(1, int(SPLIT[kind] * args.scale))
            r = random.Random(f"{args.seed}-{kind}")
            counts: Counter = Counter()
            slowest = 0.0
            t0 = time.perf_counter()
            for i in range(n):
                what = ""
                t = time.perf_counter()
                signal.alarm(args.timeout)
                try:
                    if kind in ("expressions", "when_args_names", "views"):
                        what = {"expressions": expressions, "when_args_names": when_args_names, "views": views}[kind](r)
                        bad = spec_case(what)
                    elif kind == "onnx":
                        cmd = onnx_file(r, os.path.join(tmp, f"m{i % 7}.onnx"))
                        what = " ".join(cmd)
                        bad = cli_case(cmd)
                    else:
                        cmd = torch_file(r, os.path.join(tmp, f"net_{i}.py"))
                        with open(cmd[1].split(":")[0]) as fh:
                            what = fh.read()
                        bad = process_case(cmd, args.timeout)
                except Hang:
                    bad = f"over {args.timeout} s"
                except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
                    bad = f"{type(exc).__name__}: {exc}"
                finally:
                    signal.alarm(0)
                slowest = max(slowest, time.perf_counter() - t)
                counts["escape" if bad else "clean"] += 1
                if bad:
                    escapes.append((kind, i, bad[:300], what[:2000]))
                    print(f"--- escape {kind} #{i}: {bad[:300]}\n{what[:2000]}", flush=True)
                if args.progress and (i + 1) % args.progress == 0:  # partial totals, for a run cut short
                    print(f"  {kind:<16}{i + 1:>8,}/{n:,} inputs {time.perf_counter() - t0:>8.1f} s  "
                          f"slowest {slowest:.2f} s  escapes {counts['escape']}  load {os.getloadavg()[0]:.2f}",
                          flush=True)
            total += n
            print(f"{kind:<16}{n:>8,} inputs {time.perf_counter() - t0:>8.1f} s  slowest {slowest:.2f} s  "
                  f"escapes {counts['escape']}  load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"total {total:,} inputs in {time.perf_counter() - t_all:.0f} s; {len(escapes)} escapes")
    for kind, i, bad, what in escapes[:40]:
        print(f"--- {kind} #{i}: {bad}\n{what}")
    return 1 if escapes else 0


if __name__ == "__main__":
    raise SystemExit(main())
