"""The one door to PyTorch: build the spec as an nn.Module, prove the analysis, time it.

Everything torch-related is imported lazily inside these functions, so importing this
module is cheap and `analyze`/`validate` never pay for torch.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil, gcd
from types import SimpleNamespace
from typing import Any

from .analyzer import Report, analyze
from .arith import DTYPE_BYTES, fmt_num
from .errors import CnnError
from .layers import Ctx
from .spec import Network


def kit() -> SimpleNamespace:
    """torch, nn, F and cnncalc's own modules, for the layer builders."""
    try:
        import torch
    except ImportError:
        raise CnnError.single("PyTorch is not installed: pip install 'cnncalc[torch]' (or pip install torch)") from None
    import torch.nn.functional as F
    from torch import nn

    from . import torch_modules

    return SimpleNamespace(torch=torch, nn=nn, F=F, ext=torch_modules)


# ---- building --------------------------------------------------------------------------------
def contexts(report: Report) -> list[Ctx]:
    shapes = {"input": report.input_shape}
    out = []
    for row in report.layers:
        ctx = Ctx([shapes[i] for i in row.inputs], row.output_shape)
        shapes[row.name] = row.output_shape
        out.append(ctx)
    return out


def build_model(report: Report, t: SimpleNamespace | None = None):
    """The network as an nn.Module that runs the layers in file order (branches, merges, sharing)."""
    t = t or kit()
    net: Network = report.network
    modules: dict[str, Any] = {}
    for row, ctx in zip(report.layers, contexts(report)):
        layer = net.nodes[row.index].layer
        try:
            modules[row.name] = modules[row.shared_with] if row.shared_with else layer.build(ctx, t)
        except (RuntimeError, ValueError, TypeError) as exc:  # torch refuses what the analysis accepted
            raise CnnError([net.source.problem(f"torch cannot build this layer: {exc}".splitlines()[0][:300],
                                               net.nodes[row.index].path, row.name)]) from None
        if not layer.trainable:
            for p in modules[row.name].parameters():
                p.requires_grad_(False)
    return _graph_class(t)(report, modules)


def _graph_class(t):
    nn = t.nn

    class Graph(nn.Module):
        """Executes the layers in file order; `record` collects every layer's output shape."""

        def __init__(self, report: Report, modules: dict[str, Any]):
            super().__init__()
            self.rows = [(r.name, list(r.inputs)) for r in report.layers]
            self.layers = nn.ModuleDict({f"l{i}": modules[r.name] for i, r in enumerate(report.layers)})
            self.outputs = list(report.outputs)
            last: dict[str, int] = {}
            for i, (_, ins) in enumerate(self.rows):
                for n in ins:
                    last[n] = i
            for n in self.outputs:
                last[n] = len(self.rows)
            self.last = last
            self.hook = None  # called as hook(index, module, inputs) -> output, for per-layer counting

        def forward(self, x, stop: int | None = None):
            values = {"input": x}
            for i, (name, ins) in enumerate(self.rows):
                module = self.layers[f"l{i}"]
                args = [values[n] for n in ins]
                values[name] = self.hook(i, module, args) if self.hook else module(*args)
                if stop is not None and i == stop:
                    return values[name]
                for n in ins:
                    if self.last.get(n, -1) <= i:
                        values.pop(n, None)
            outs = [values[n] for n in self.outputs]
            return outs[0] if len(outs) == 1 else tuple(outs)

    return Graph


# ---- device ----------------------------------------------------------------------------------
def pick_device(torch, requested: str) -> Any:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except RuntimeError:
        raise CnnError.single(f"unknown device '{requested}': use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise CnnError.single(f"cuda requested but not available ({why}, torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CnnError.single(f"{requested} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CnnError.single("mps requested but not available (needs Apple silicon and a torch built with MPS)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise CnnError.single(f"device '{requested}' is not supported: use auto, cpu, cuda, cuda:N or mps")
    return dev


def device_name(torch, dev) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


def available_memory(torch, dev) -> int | None:
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type == "mps":
        return int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def sync(torch, dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


# ---- checks ----------------------------------------------------------------------------------
@dataclass
class LayerCheck:
    """Analytic vs torch for one layer; a field of None was not measured."""

    name: str
    shape: tuple | None = None
    params: int | None = None
    trainable: int | None = None
    buffers: int | None = None
    flops: int | None = None
    rf: tuple | None = None          # (sizes, jumps) measured by the gradient probe
    rf_note: str | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "output_shape": list(self.shape) if self.shape else None,
                "params": self.params, "trainable_params": self.trainable, "buffers": self.buffers,
                "flops": self.flops,
                "receptive_field": None if self.rf is None else {"size": [_n(x) for x in self.rf[0]],
                                                                  "stride": [_n(x) for x in self.rf[1]]},
                "rf_note": self.rf_note}


def _n(x):
    x = Fraction(x)
    return int(x) if x.denominator == 1 else float(x)


@dataclass
class VerifyResult:
    device: str
    device_type: str
    dtype: str
    torch_version: str
    checks: list[LayerCheck]
    mismatches: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fused: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict:
        return {"ok": self.ok, "device": self.device, "device_type": self.device_type, "dtype": self.dtype,
                "torch_version": self.torch_version, "mismatches": self.mismatches,
                "layers": [c.to_json() for c in self.checks], "timing": self.timing, "memory": self.memory,
                "fused_bn": self.fused, "notes": self.notes}


def measure_counts(report: Report, model, x, t) -> list[LayerCheck]:
    """One forward pass: each layer's output shape, its own (not yet counted) params and
    buffers, and its FLOPs from torch.utils.flop_counter.FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    checks = [LayerCheck(r.name) for r in report.layers]
    seen: set[int] = set()
    for i, row in enumerate(report.layers):
        module = model.layers[f"l{i}"]
        own = [p for p in module.parameters() if id(p) not in seen]
        bufs = [b for b in module.buffers() if id(b) not in seen]
        seen.update(id(p) for p in own)
        seen.update(id(b) for b in bufs)
        checks[i].params = sum(p.numel() for p in own)
        checks[i].trainable = sum(p.numel() for p in own if p.requires_grad)
        checks[i].buffers = sum(b.numel() for b in bufs)

    def hook(i, module, args):
        with FlopCounterMode(display=False) as counter:
            try:
                out = module(*args)
            except (RuntimeError, ValueError, TypeError) as exc:  # a disagreement, reported as one
                row = report.layers[i]
                raise CnnError([report.network.source.problem(
                    f"torch rejects this layer at input {[tuple(a.shape) for a in args]}: {exc}".splitlines()[0][:300],
                    report.network.nodes[row.index].path, row.name)]) from None
        checks[i].flops = counter.get_total_flops()
        checks[i].shape = tuple(out.shape)
        return out

    model.hook = hook
    try:
        with t.torch.inference_mode():
            model(x)
    finally:
        model.hook = None
    return checks


def compare(report: Report, checks: list[LayerCheck]) -> list[str]:
    """Every disagreement as 'layer: what analytic=… torch=…'."""
    bad = []
    for row, c in zip(report.layers, checks):
        pairs = [("output shape", tuple(row.output_shape), c.shape), ("params", row.params, c.params),
                 ("trainable params", row.trainable_params, c.trainable), ("buffers", row.buffers, c.buffers),
                 ("FLOPs", row.flops, c.flops)]
        # an inexact field (holes from a transposed conv, sub-pixel jumps) is approximate only
        if c.rf is not None and row.receptive_field is not None and all(r.exact for r in row.receptive_field):
            pairs.append(("RF size", tuple(r.size for r in row.receptive_field), tuple(c.rf[0])))
            pairs.append(("RF stride", tuple(r.jump for r in row.receptive_field), tuple(c.rf[1])))
        for what, a, m in pairs:
            if m is not None and a != m:
                bad.append(f"{row.name}: {what} analytic={_fmt(a)} torch={_fmt(m)}")
    return bad


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt_num(x) if isinstance(x, Fraction) else str(x) for x in v) + ")"
    return f"{v:,}" if isinstance(v, int) else str(v)


# ---- receptive-field probe -------------------------------------------------------------------
def linearise(model, t) -> None:
    """Make every layer linear with positive weights: conv/linear weights 1/fan_in, biases 0,
    activations/norms/dropout → identity, max pooling → sum over the same windows, deformable
    offsets 0. A unit's input gradient is then non-zero exactly on its receptive field."""
    nn, torch = t.nn, t.torch
    identity = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
                nn.Tanh, nn.GELU, nn.Softmax, nn.LogSoftmax, nn.PReLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                nn.Dropout3d, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)

    def swap(parent):
        for name, child in list(parent.named_children()):
            if isinstance(child, identity):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
                setattr(parent, name, WindowSum(child))
            elif isinstance(child, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
                dims = int(type(child).__name__[-2])
                setattr(parent, name, getattr(nn, f"AdaptiveAvgPool{dims}d")(child.output_size))
            else:
                swap(child)

    swap(model)
    with torch.no_grad():
        for module in model.modules():
            for pname, p in module.named_parameters(recurse=False):
                if p.dim() >= 2:
                    p.fill_(1.0 / max(1, p[0].numel()))
                else:
                    p.zero_()
        for module in model.modules():  # after the fill above, which also reached the offset convs
            if isinstance(module, t.ext.DeformConv2d):
                module.offset.weight.zero_()


class WindowSum:
    """Factory for the probe's stand-in of max pooling: a ones-kernel depthwise conv over the
    very same windows (padding, dilation, ceil_mode), so every window element gets gradient."""

    def __new__(cls, pool):
        import torch
        import torch.nn.functional as F
        from torch import nn

        class _WindowSum(nn.Module):
            def __init__(self):
                super().__init__()
                self.dims = int(type(pool).__name__[-2])
                rep = (lambda v: (v,) * self.dims if isinstance(v, int) else tuple(v))
                self.k, self.s = rep(pool.kernel_size), rep(pool.stride)
                self.p, self.d, self.ceil = rep(pool.padding), rep(pool.dilation), pool.ceil_mode

            def forward(self, x):
                from .arith import pool_out

                pads = []
                for h, k, s, p, d in zip(x.shape[2:], self.k, self.s, self.p, self.d):
                    o = pool_out(h, k, s, p, d, self.ceil)
                    extra = max(0, (o - 1) * s + d * (k - 1) + 1 - (h + 2 * p))
                    pads.append((p, p + extra))
                flat = [v for pair in reversed(pads) for v in pair]
                x = F.pad(x, flat)
                c = x.shape[1]
                w = torch.ones(c, 1, *self.k, dtype=x.dtype, device=x.device)
                conv = getattr(F, f"conv{self.dims}d")
                return conv(x, w, None, self.s, 0, self.d, c)

        return _WindowSum()


def probeable(report: Report) -> list[int]:
    """Rows whose field is defined and independent of the input size (no adaptive pooling,
    resize-to-size or fixed normalized_shape on the way), so an enlarged input can show it."""
    net, blocked, out = report.network, set(), []
    for row in report.layers:
        if (row.receptive_field is None or net.nodes[row.index].layer.rf_size_dependent
                or any(i in blocked for i in row.inputs)):
            blocked.add(row.name)
        else:
            out.append(row.index)
    return out


def probe_rows(report: Report, limit: int = 40) -> list[int]:
    """Rows worth probing: those whose field changes, before anything size-dependent; if there
    are too many, the ones where the jump changes plus the last one."""
    rows = []
    for idx in probeable(report):
        row = report.layers[idx]
        prev = [report.layer(i).receptive_field for i in row.inputs if i != "input"]
        if not prev or any(p != row.receptive_field for p in prev):
            rows.append(idx)
    if len(rows) > limit:
        keep = [i for k, i in enumerate(rows) if k == len(rows) - 1 or
                [r.jump for r in report.layers[i].receptive_field] !=
                [r.jump for r in report.layers[rows[k + 1]].receptive_field]]
        rows = keep[-limit:]
    return rows


def probe_rf(report: Report, indices: list[int], t, device=None) -> dict[int, tuple | str]:
    """Measure (sizes, jumps) of the rows' fields by back-propagating from output units of a
    linearised float64 copy on an input large enough that the fields are not clipped."""
    torch = t.torch
    device = device or torch.device("cpu")
    net: Network = report.network
    results: dict[int, tuple | str] = {}
    periods = field_periods(report)
    budget = min(2 * 2**30, (available_memory(torch, device) or 2**33) // 4)
    for idx in indices:
        period = periods[idx]
        steps = 2 if period == 1 else 2 * period + 1  # after upsampling some units may see nothing
        geometry = _probe_geometry(report, net, idx, steps)
        if isinstance(geometry, str):
            results[idx] = geometry
            continue
        rep, centre = geometry
        need_bytes = 3 * rep.totals["inference_peak_activation_bytes"]  # forward + gradients, no weight grads
        if need_bytes > budget:
            results[idx] = (f"not probed: the probe needs about {need_bytes / 2**30:.1f} GiB "
                            f"(budget {budget / 2**30:.1f} GiB)")
            continue
        model = build_model(rep, t).to(device=device, dtype=torch.float64)
        linearise(model, t)
        model.requires_grad_(False)  # only the input gradient is wanted: autograd saves far less
        x = torch.ones(rep.input_shape, dtype=torch.float64, device=device, requires_grad=True)
        try:
            out = model(x, stop=idx)
        except RuntimeError as exc:  # out of memory on an unusual device: report, do not crash
            results[idx] = f"not probed: {str(exc).splitlines()[0][:120]}"
            continue
        prf = rep.layers[idx].receptive_field
        total = 0
        for b in range(steps):
            sel = (b, slice(None), *(c + b for c in centre))
            total = total + out[sel].sum()
        (grad,) = torch.autograd.grad(total, x)
        g = grad.abs().sum(dim=1)  # (steps, *spatial)
        sizes_m, jumps_m = [], []
        for a, r in enumerate(prf):
            other = tuple(d for d in range(1, g.dim()) if d != a + 1)
            prof = g.sum(dim=other) if other else g
            firsts: dict[int, int] = {}
            extents = [0]
            for b in range(steps):
                nz = torch.nonzero(prof[b] > 0).flatten()
                if len(nz):
                    firsts[b] = int(nz[0])
                    extents.append(int(nz[-1]) - int(nz[0]) + 1)
            b0 = min(firsts, default=0)
            sizes_m.append(max(extents))
            jumps_m.append(Fraction(firsts[b0 + period] - firsts[b0], period) if b0 + period in firsts else Fraction(0))
        results[idx] = (tuple(sizes_m), tuple(jumps_m))
    return results


def _probe_geometry(report: Report, net: Network, idx: int, steps: int):
    """An input size at which `steps` neighbouring output units near the centre have their
    whole (analytic) fields inside the input, and those units: (report at that size, first unit)."""
    row = report.layers[idx]
    quantum = max(1, max(int(ceil(r.jump)) for r in row.receptive_field))
    sub = Network(net.header, net.nodes[: idx + 1], [row.name], net.source)
    margin = 4
    for _ in range(4):
        need = [ceil(r.size) + ceil(r.jump) * (steps + 1) + margin for r in row.receptive_field]
        sizes = tuple(max(h, -(-n // quantum) * quantum) for h, n in zip(report.input_shape[2:], need))
        try:
            rep = analyze(sub, batch=steps, input_shape=(report.input_shape[1], *sizes), dtype="float64")
        except CnnError as exc:
            return f"not probed: the network does not fit a {'x'.join(map(str, sizes))} input ({exc.problems[0].message})"
        prf, out = rep.layers[idx].receptive_field, rep.layers[idx].output_shape[2:]
        centre = [min(max(0, int((Fraction(s, 2) - r.start) / r.jump) - steps // 2), o - steps)
                  for s, r, o in zip(sizes, prf, out)]
        # after upsampling, units sit on the grain lattice, up to a grain from start + u·jump
        inside = all(c >= 0 and r.start + c * r.jump - (r.size - 1) / 2 - r.grain >= 0
                     and r.start + (c + steps - 1) * r.jump + (r.size - 1) / 2 + r.grain <= s - 1
                     for c, r, s in zip(centre, prf, sizes))
        if inside:
            return rep, centre
        margin = 2 * margin + 2 * max(ceil(abs(r.start)) + ceil(r.jump) for r in prf)
    return "not probed: no input size keeps the probed fields unclipped"


def field_periods(report: Report) -> list[int]:
    """After upsampling (transposed conv, resize) neighbouring units' fields move unevenly:
    the pattern repeats every P units, P the product of the up-factors on the way (capped).
    The probe measures P + 1 units so that the average jump is exact."""
    period = {"input": 1}
    out = []
    for row in report.layers:
        p = 1
        for i in row.inputs:
            p = p * period.get(i, 1) // gcd(p, period.get(i, 1))
        before = [report.layer(i).receptive_field for i in row.inputs if i != "input"]
        if row.receptive_field and before and before[0]:
            up = 1  # one factor for all axes: the lcm of the per-axis up-factors
            for r_in, r_out in zip(before[0], row.receptive_field):
                d = (r_out.jump / r_in.jump).denominator
                up = up * d // gcd(up, d)
            p *= up
        p = min(p, 64)
        period[row.name] = p
        den = max((r.jump.denominator for r in row.receptive_field or ()), default=1)
        out.append(p * den // gcd(p, den))
    return out


# ---- batch-norm folding --------------------------------------------------------------------
def check_bn_folding(report: Report, t, dev) -> dict:
    """Fold every foldable batch norm into its conv in a copy of the model (random running
    statistics and affine parameters, eval mode) and check that outputs agree and that the
    folded model has the analytic fused parameter count."""
    torch = t.torch
    torch.manual_seed(0)
    model = build_model(report, t).eval().to(dev)
    index = {r.name: i for i, r in enumerate(report.layers)}
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # compare in true float32
    try:
        return _fold_and_compare(report, t, dev, model, index)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _fold_and_compare(report: Report, t, dev, model, index) -> dict:
    from .analyzer import bn_folds, fused_totals

    torch, nn = t.torch, t.nn
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-1, 1)
        x = torch.randn(report.input_shape, device=dev)
        before = model(x)
        for conv_row, bn_row in bn_folds(report):
            bn = model.layers[f"l{index[bn_row.name]}"]
            holder = model.layers[f"l{index[conv_row.name]}"]
            conv = [m for m in holder.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))][-1]
            scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
            shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
            conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
            conv.bias = nn.Parameter(bias * scale + shift)
            model.layers[f"l{index[bn_row.name]}"] = nn.Identity()
        after = model(x)
    outs = (before,) if not isinstance(before, tuple) else before
    outs2 = (after,) if not isinstance(after, tuple) else after
    err = max(float((a - b).abs().max() / (a.abs().max() + 1e-12)) for a, b in zip(outs, outs2))
    analytic = fused_totals(report)
    measured = sum(p.numel() for p in model.parameters())
    return {"folded": analytic["folded"], "analytic_params": analytic["params"], "torch_params": measured,
            "max_relative_output_difference": err, "ok": measured == analytic["params"] and err < 1e-4}


# ---- memory ----------------------------------------------------------------------------------
def measure_peak(model, x, t, dev) -> int | None:
    """Peak bytes allocated by one inference forward pass beyond what was live before it."""
    torch = t.torch
    if dev.type == "cuda":
        sync(torch, dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        with torch.inference_mode():
            out = model(x)
        sync(torch, dev)
        del out
        return torch.cuda.max_memory_allocated(dev) - base
    if dev.type == "cpu":
        from torch.profiler import ProfilerActivity, profile

        with _quiet_fds(), torch.inference_mode(), profile(activities=[ProfilerActivity.CPU],
                                                           profile_memory=True) as prof:
            model(x)
        cur = peak = 0
        for e in sorted(prof.events(), key=lambda e: e.time_range.start):
            cur += e.self_cpu_memory_usage  # allocations at their op, frees as '[memory]' events
            peak = max(peak, cur)
        return peak or None
    return None


@contextlib.contextmanager
def _quiet_fds():
    """Silence the profiler's native log lines (written straight to fds 1 and 2)."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)


# ---- timing ----------------------------------------------------------------------------------
def time_forward(model, x, t, dev, repeat: int, warmup: int, progress=None) -> list[float]:
    """Seconds per forward pass: warm-up, inference_mode, device sync, CUDA events on GPU."""
    torch = t.torch
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
            if progress:
                progress()
        sync(torch, dev)
        for _ in range(repeat):
            if dev.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1000)
            else:
                t0 = time.perf_counter()
                model(x)
                sync(torch, dev)
                times.append(time.perf_counter() - t0)
            if progress:
                progress()
    return times


def matmul_peak(t, dev, dtype) -> float:
    """This device's measured matmul FLOP/s in this dtype (a short calibration). On CUDA in
    float32 it runs in the math mode cuDNN convolutions use (TF32 when allowed), so the share
    of peak compares like with like."""
    torch = t.torch
    n = 8192 if dev.type == "cuda" else 4096 if dev.type == "mps" else 1024
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    tf32 = dev.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32 or saved
        times = time_forward(lambda x: a @ b, a, t, dev, repeat=5, warmup=2)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * n ** 3 / statistics.median(times)


def summarize(times: list[float], batch: int, flops: int, peak: float | None) -> dict:
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    med = statistics.median(times)
    return {"repeat": len(times), "median_s": med, "min_s": min(times), "p25_s": q[0], "p75_s": q[2],
            "samples_per_s": batch / med, "achieved_flops_per_s": flops / med,
            "peak_matmul_flops_per_s": peak, "share_of_peak": (flops / med) / peak if peak else None}


# ---- the whole verification --------------------------------------------------------------------
def verify_report(report: Report, device: str = "auto", dtype: str = "float32", repeat: int = 20,
                  warmup: int = 3, force: bool = False, compile: bool = False, channels_last: bool = False,
                  rf_probe: bool = True, progress: bool = False, fuse_bn: bool = False) -> VerifyResult:
    t = kit()
    torch = t.torch
    dev = pick_device(torch, device)
    tdtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
              "float64": torch.float64}[dtype]
    est = report.totals["params"] * DTYPE_BYTES[dtype] + report.totals["inference_peak_activation_bytes"] \
        * DTYPE_BYTES[dtype] // report.bytes_per_element
    avail = available_memory(torch, dev)
    if avail is not None and est * 1.2 > avail and not force:
        raise CnnError.single(f"the network needs about {est / 2**30:.2f} GiB on {dev.type} "
                              f"(params + peak activations) but only {avail / 2**30:.2f} GiB are free; "
                              "refusing (use --force to try anyway)")
    result = VerifyResult(device_name(torch, dev), dev.type, dtype, torch.__version__, [])
    if dev.type == "cpu" and dtype == "float16":
        result.notes.append("float16 on CPU is supported but slow (no native half kernels): time it on a GPU")
    bar = _Progress(progress, warmup + repeat)
    with bar:
        bar.say("building the network")
        torch.manual_seed(0)
        model = build_model(report, t).eval()
        # counts and shapes: float32 on the chosen device (counts do not depend on dtype)
        model = model.to(dev)
        x = torch.randn(report.input_shape, device=dev)
        bar.say("comparing shapes, params and FLOPs")
        result.checks = measure_counts(report, model, x, t)
        if rf_probe:
            bar.say("probing receptive fields")
            rows = probe_rows(report)
            probe_dev = dev if dev.type == "cuda" else torch.device("cpu")
            for idx, res in probe_rf(report, rows, t, probe_dev).items():
                if isinstance(res, str):
                    result.checks[idx].rf_note = res
                else:
                    result.checks[idx].rf = res
        result.mismatches = compare(report, result.checks)
        if fuse_bn:
            bar.say("folding batch norms")
            result.fused = check_bn_folding(report, t, dev)
            if not result.fused["ok"]:
                result.mismatches.append(
                    f"batch-norm folding: params analytic={result.fused['analytic_params']:,} "
                    f"torch={result.fused['torch_params']:,}, max relative output difference "
                    f"{result.fused['max_relative_output_difference']:.2e}")
        model = model.to(dtype=tdtype)
        x = x.to(tdtype)
        if channels_last and len(report.input_shape) == 4:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        bar.say("measuring memory")
        peak = _in_dtype(measure_peak, report, dtype, dev, model, x, t, dev)
        analytic = report.totals["inference_peak_activation_bytes"] * DTYPE_BYTES[dtype] // report.bytes_per_element
        result.memory = {"analytic_peak_activation_bytes": analytic, "measured_peak_bytes": peak,
                         "ratio_measured_to_analytic": (peak / analytic) if peak and analytic else None,
                         "method": {"cuda": "torch.cuda.max_memory_allocated", "cpu": "torch.profiler memory events"}
                         .get(dev.type, "not measured on this device")}
        bar.say("timing")
        times = _in_dtype(time_forward, report, dtype, dev, model, x, t, dev, repeat, warmup, bar.advance)
        peak_flops = matmul_peak(t, dev, tdtype)
        result.timing = summarize(times, report.input_shape[0], report.totals["flops"], peak_flops)
        result.timing.update({"warmup": warmup, "channels_last": channels_last})
        if compile:
            bar.say("compiling (torch.compile)")
            try:
                compiled = torch.compile(model)
                ctimes = time_forward(compiled, x, t, dev, repeat, max(warmup, 2))
                result.timing["compiled"] = summarize(ctimes, report.input_shape[0], report.totals["flops"], peak_flops)
            except Exception as exc:  # noqa: BLE001 - compile support varies by platform; report it
                result.notes.append(f"torch.compile failed on this platform: {type(exc).__name__}: {exc}"[:300])
    return result


def _in_dtype(fn, report: Report, dtype: str, dev, *args):
    """Run a timed/measured pass; a kernel this dtype lacks on this device is a plain error."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise CnnError.single(f"torch cannot run this network in {dtype} on {dev.type} ({type(exc).__name__}: "
                              f"{first}); the counts were checked in float32 — time it in another dtype or on "
                              "another device", file=report.file) from None


class _Progress:
    """A rich progress display on a terminal; silent otherwise."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                                     transient=True, console=None)
            self.progress.__enter__()
            self.task = self.progress.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=text)

    def advance(self) -> None:
        if self.progress:
            self.progress.advance(self.task)


def print_verify(report: Report, result: VerifyResult, console) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    from .render import add_rows, hbytes, human, shape_str

    ok, bad = "[green]✓[/green]", "[red]✗[/red]"
    table = Table(title=f"verify {report.name}: analytic | torch", title_justify="left")
    for col in ("name", "output shape", "", "params", "", "FLOPs", "", "RF size (probe)", ""):
        table.add_column(col, justify="right" if col in ("params", "FLOPs") else "left")

    def mark(a, m):
        return "–" if m is None else (ok if a == m else bad)

    def cells(row, c):
        rf_a = "×".join(fmt_num(r.size) for r in row.receptive_field) if row.receptive_field else "–"
        rf_m = "×".join(str(s) for s in c.rf[0]) if c.rf else ("" if not c.rf_note else "·")
        rf_ok = mark(tuple(r.size for r in row.receptive_field or ()), tuple(c.rf[0]) if c.rf else None)
        return (escape(row.name), f"{shape_str(row.output_shape)} | {shape_str(c.shape) if c.shape else '?'}",
                mark(tuple(row.output_shape), c.shape),
                f"{row.params:,} | {c.params:,}", mark(row.params, c.params),
                f"{human(row.flops)} | {human(c.flops or 0)}", mark(row.flops, c.flops),
                f"{rf_a} | {rf_m}" if c.rf else rf_a, rf_ok)

    add_rows(table, map(cells, report.layers, result.checks), markup=True)
    console.print(table)
    tm, mem = result.timing, result.memory
    lines = [f"device: {result.device} · dtype {result.dtype} · torch {result.torch_version}",
             f"forward: median {tm['median_s'] * 1e3:.3f} ms (p25 {tm['p25_s'] * 1e3:.3f}, p75 "
             f"{tm['p75_s'] * 1e3:.3f}, min {tm['min_s'] * 1e3:.3f}) over {tm['repeat']} runs after {tm['warmup']} warm-up",
             f"throughput: {tm['samples_per_s']:,.1f} samples/s · {human(tm['achieved_flops_per_s'])}FLOP/s"
             + (f" = {tm['share_of_peak']:.1%} of this device's measured matmul peak "
                f"({human(tm['peak_matmul_flops_per_s'])}FLOP/s)" if tm.get("share_of_peak") else "")]
    if "compiled" in tm:
        lines.append(f"torch.compile: median {tm['compiled']['median_s'] * 1e3:.3f} ms")
    if mem.get("measured_peak_bytes"):
        lines.append(f"memory: measured peak {hbytes(mem['measured_peak_bytes'])} vs analytic peak activations "
                     f"{hbytes(mem['analytic_peak_activation_bytes'])} (ratio {mem['ratio_measured_to_analytic']:.2f}, "
                     f"{mem['method']})")
    if result.fused:
        f = result.fused
        lines.append(f"batch norm folded into {f['folded']} convs: params {f['analytic_params']:,} analytic, "
                     f"{f['torch_params']:,} in torch; outputs differ by {f['max_relative_output_difference']:.1e} (relative)")
    lines += result.notes
    console.print(Panel("\n".join(lines), title="timing", expand=False))
    probed = sum(1 for c in result.checks if c.rf)
    console.print(f"{len(result.checks)} layers compared (shape, params, buffers, FLOPs); "
                  f"{probed} receptive fields probed.")
    if result.ok:
        console.print("[green]all analytic numbers agree with torch[/green]")
    else:
        for m in result.mismatches:
            console.print(f"[red]mismatch[/red] {m}", highlight=False)
