"""Small faithful torch modules for layer kinds torch.nn lacks, and the probe's stand-ins.
Imported only through :func:`cnncalc.backend.kit`."""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def recorded(cls):
    """Keep each instance's constructor arguments (`_export_args`), so `cnncalc export` can
    write the call that rebuilds it."""
    init = cls.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807
        init(self, *args, **kwargs)
        self._export_args = (args, kwargs)

    cls.__init__ = __init__
    return cls


def padded_init(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias, pads, mode="zeros"):
    """The conv (its class's base: nn.Conv1d/2d/3d) with no padding of its own, and the pads to
    apply first: pads = ((before, after) per spatial axis, first axis first), mode as a spec's
    padding_mode."""
    super(type(self), self).__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)
    self.flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last axis first
    self.mode = _MODES[mode]


def pad_then_conv(self, x):
    """F.pad with the module's stored pads (last axis first) and mode, then its convolution with no
    padding of its own (timm's Conv2dSame: pad_same, then F.conv2d)."""
    return self._conv_forward(F.pad(x, self.flat, mode=self.mode), self.weight, self.bias)


@recorded
class BlurPool2d(nn.Module):
    """timm's BlurPool2d (same arguments, attributes and forward): pad (pad_mode), then a fixed
    depthwise binomial filter `filt` (a buffer kept out of the state_dict) at the stride."""

    def __init__(self, channels, filt_size=3, stride=2, pad_mode="reflect"):
        super().__init__()
        self.channels, self.filt_size, self.stride, self.pad_mode = channels, filt_size, stride, pad_mode
        self.padding = [((stride - 1) + (filt_size - 1)) // 2] * 4
        row = [1]
        for _ in range(filt_size - 1):  # binomial coefficients C(filt_size - 1, k)
            row = [a + b for a, b in zip([0] + row, row + [0])]
        coeffs = torch.tensor(row, dtype=torch.float32) / 2 ** (filt_size - 1)
        self.register_buffer("filt", (coeffs[:, None] * coeffs[None, :])[None, None, :, :].repeat(channels, 1, 1, 1),
                             persistent=False)

    def forward(self, x):
        x = F.pad(x, self.padding, mode=self.pad_mode)
        return F.conv2d(x, self.get_buffer("filt"), stride=self.stride, groups=self.channels)


@recorded
class Scale(nn.Module):
    """y = factor·x; with `learnable` a parameter `scale` of shape (1,) (initialised to factor)
    times x, and with `bias` plus a parameter `bias` of shape (1,): timm's LearnableAffineBlock."""

    def __init__(self, factor=1.0, learnable=False, bias=False):
        super().__init__()
        self.factor = factor
        self.scale = nn.Parameter(torch.tensor([float(factor)])) if learnable else None
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None

    def forward(self, x):
        if self.scale is None:
            return x * self.factor
        return self.scale * x + self.bias if self.bias is not None else self.scale * x


@recorded
class StdConv2d(nn.Conv2d):
    """timm's StdConv2d and ScaledStdConv2d (attributes eps, scale, gain as timm's): the weight
    standardised per output channel in forward (F.batch_norm in training mode over each filter),
    with `scaled` times gain·γ/√fan_in; pads = ((before, after) per spatial axis) padded first
    where uneven (timm's Same variants: pad_same, then the conv)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, eps, scaled,
                 gamma, pads=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.eps = eps
        self.scale = gamma * self.weight[0].numel() ** -0.5  # gamma * 1 / sqrt(fan-in)
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1)) if scaled else None
        self.flat = [p for pair in reversed(pads) for p in pair] if pads else []  # F.pad: the last axis first

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None,
            weight=(self.gain * self.scale).view(-1) if self.gain is not None else None,
            training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        if self.flat:
            x = F.pad(x, self.flat)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


@recorded
class PaddedConv1d(nn.Conv1d):
    """A Conv1d padding unevenly first: pads = ((before, after),), mode as a spec's padding_mode.
    One module, so its weight and bias keep a plain conv's state_dict keys."""

    __init__ = padded_init
    forward = pad_then_conv


@recorded
class PaddedConv2d(nn.Conv2d):
    """A Conv2d padding unevenly first (TensorFlow's strided 'same', timm's Conv2dSame, or
    [[top, bottom], [left, right]]): pads = ((top, bottom), (left, right)), mode as a spec's
    padding_mode. One module, so its weight and bias keep a plain conv's state_dict keys."""

    __init__ = padded_init
    forward = pad_then_conv


@recorded
class PaddedConv3d(nn.Conv3d):
    """A Conv3d padding unevenly first: pads = ((before, after) per axis, depth first), mode as a
    spec's padding_mode. One module, so its weight and bias keep a plain conv's state_dict keys."""

    __init__ = padded_init
    forward = pad_then_conv


def Named(**modules: nn.Module) -> nn.Sequential:  # noqa: N802 - reads like a class
    """A Sequential whose children keep the given names (so weights are 'depthwise.weight', …)."""
    return nn.Sequential(OrderedDict(modules))


class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mul(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Sub(nn.Module):
    def forward(self, a, b):
        return a - b


@recorded
class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's global response normalisation, timm 1.0's GlobalResponseNorm as written there
    (same arguments, attributes, parameter names and shapes (C,), the same operators, so that
    what autograd keeps is timm's): x + addcmul(β, γ, x·N), N = ‖x‖₂ over the positions / (its
    mean over the channels + eps)."""

    def __init__(self, dim, eps=1e-6, channels_last=True):
        super().__init__()
        self.eps = eps
        self.spatial_dim, self.channel_dim = ((1, 2), -1) if channels_last else ((2, 3), 1)
        self.wb_shape = (1, 1, 1, -1) if channels_last else (1, -1, 1, 1)
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x_g = x.norm(p=2, dim=self.spatial_dim, keepdim=True)
        x_n = x_g / (x_g.mean(dim=self.channel_dim, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(self.wb_shape), self.weight.view(self.wb_shape), x * x_n)


@recorded
class Clamp(nn.Module):
    """torch.clamp(x, min, max) as a module (either bound None); in place: x.clamp_."""

    def __init__(self, min=None, max=None, inplace=False):  # noqa: A002 - torch.clamp's names
        super().__init__()
        self.min, self.max, self.inplace = min, max, inplace

    def forward(self, x):
        return x.clamp_(self.min, self.max) if self.inplace else torch.clamp(x, self.min, self.max)


@recorded
class Concat(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, self.dim)


@recorded
class LocallyConnected2d(nn.Module):
    """Unshared convolution via unfold: a separate (C_out × C_in·∏K) filter at each position."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, out_size, bias=True):
        super().__init__()
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.out_size = tuple(out_size)
        positions = self.out_size[0] * self.out_size[1]
        k = c_in * kernel[0] * kernel[1]
        self.weight = nn.Parameter(torch.randn(positions, c_out, k) / k ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out, *self.out_size)) if bias else None

    def forward(self, x):
        cols = F.unfold(x, self.kernel, self.dilation, self.padding, self.stride)  # (N, K, L)
        out = torch.bmm(cols.permute(2, 0, 1), self.weight.transpose(1, 2))       # (L, N, C_out)
        out = out.permute(1, 2, 0).reshape(x.shape[0], -1, *self.out_size)
        return out + self.bias if self.bias is not None else out


@recorded
class TiledConv2d(nn.Module):
    """Tiled convolution: output position (y, x) uses filter bank (y mod T_h, x mod T_w)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, tile, bias=True):
        super().__init__()
        self.kernel, self.stride, self.padding, self.dilation, self.tile = kernel, stride, padding, dilation, tile
        k = c_in * kernel[0] * kernel[1]
        self.weight = nn.Parameter(torch.randn(*tile, c_out, k) / k ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def forward(self, x):
        n = x.shape[0]
        h, w = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in
                zip(x.shape[2:], self.padding, self.dilation, self.kernel, self.stride)]
        cols = F.unfold(x, self.kernel, self.dilation, self.padding, self.stride).reshape(n, -1, h, w)
        out = x.new_zeros(n, self.weight.shape[2], h, w)
        for a in range(min(self.tile[0], h)):
            for b in range(min(self.tile[1], w)):
                sub = cols[:, :, a::self.tile[0], b::self.tile[1]]
                res = torch.matmul(self.weight[a, b], sub.reshape(n, sub.shape[1], -1))
                out[:, :, a::self.tile[0], b::self.tile[1]] = res.reshape(n, -1, *sub.shape[2:])
        return out + self.bias.view(1, -1, 1, 1) if self.bias is not None else out


@recorded
class DeformConv2d(nn.Module):
    """Deformable convolution (DCNv1, or DCNv2 with `modulated`) in pure torch, with
    torchvision.ops.deform_conv2d's semantics: offsets laid out as (offset_groups, ∏K, (dy, dx)),
    bilinear sampling with zeros outside the input; the offset branch is a conv2d."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, groups=1, offset_groups=1,
                 bias=True, modulated=False):
        super().__init__()
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.groups, self.offset_groups, self.modulated = groups, offset_groups, modulated
        k = kernel[0] * kernel[1]
        self.weight = nn.Parameter(torch.randn(c_out, c_in // groups, *kernel) / (c_in // groups * k) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.offset = nn.Conv2d(c_in, (3 if modulated else 2) * offset_groups * k, kernel, stride, padding, dilation)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)  # type: ignore[arg-type]

    def split(self, x):
        o = self.offset(x)
        k = self.kernel[0] * self.kernel[1]
        n_off = 2 * self.offset_groups * k
        mask = torch.sigmoid(o[:, n_off:]) if self.modulated else None
        return o[:, :n_off], mask

    def forward(self, x):
        offset, mask = self.split(x)
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             mask, self.groups, self.offset_groups)


def deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask, groups, offset_groups):
    """Functional deformable convolution; columns by bilinear gathering, then one matmul per group."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    k = kh * kw
    ho, wo = offset.shape[2:]
    og = offset_groups
    dev, dt = x.device, x.dtype
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev), torch.arange(kw, device=dev), indexing="ij")
    oy = torch.arange(ho, device=dev) * stride[0] - padding[0]
    ox = torch.arange(wo, device=dev) * stride[1] - padding[1]
    base_y = (oy.view(1, ho, 1) + (ky.reshape(k, 1, 1) * dilation[0])).to(dt)   # (K, Ho, 1)
    base_x = (ox.view(1, 1, wo) + (kx.reshape(k, 1, 1) * dilation[1])).to(dt)   # (K, 1, Wo)
    off = offset.view(n, og, k, 2, ho, wo)
    py = base_y + off[:, :, :, 0]                                                 # (N, og, K, Ho, Wo)
    px = base_x + off[:, :, :, 1]
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    inside = (py > -1) & (py < h) & (px > -1) & (px < w)
    flat = x.view(n, og, c // og, h * w)
    cols = x.new_zeros(n, og, c // og, k * ho * wo)
    for dy, dx, wt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx), (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yi, xi = y0 + dy, x0 + dx
        valid = inside & (yi >= 0) & (yi <= h - 1) & (xi >= 0) & (xi <= w - 1)
        idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().view(n, og, 1, -1).expand(-1, -1, c // og, -1)
        cols = cols + torch.gather(flat, 3, idx) * (wt * valid).view(n, og, 1, -1)
    cols = cols.view(n, og, c // og, k, ho * wo)
    if mask is not None:
        cols = cols * mask.view(n, og, 1, k, ho * wo)
    cols = cols.reshape(n, groups, (c // groups) * k, ho * wo)
    out = torch.matmul(weight.view(groups, -1, (c // groups) * k), cols)          # (N, g, C_out/g, L)
    out = out.reshape(n, -1, ho, wo)
    return out + bias.view(1, -1, 1, 1) if bias is not None else out


# ---- the receptive-field probe's stand-ins ---------------------------------------------------
def window_sum(x, kernel, stride, dilation):
    """Σ over each window, one axis at a time (windows are products of per-axis ranges): the
    sum of K strided slices per axis. No im2col workspace: memory of one output per axis."""
    for a, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
        dim = 2 + a
        out = (x.shape[dim] - d * (k - 1) - 1) // s + 1
        acc = None
        for j in range(k):
            part = x.narrow(dim, j * d, (out - 1) * s + 1)[(slice(None),) * dim + (slice(None, None, s),)]
            acc = part if acc is None else acc + part
        x = acc
    return x


class WindowSum(nn.Module):
    """The sum over a sliding window's windows (the probe's stand-in of convolutions and
    pooling): the very same windows (padding, dilation, ceil_mode's extra last window), so
    every element of a window gets gradient. `windows`: one cnncalc.arith.Window per axis."""

    def __init__(self, windows):
        super().__init__()
        self.k = tuple(w.kernel for w in windows)
        self.s = tuple(w.stride for w in windows)
        self.d = tuple(w.dilation for w in windows)
        pads = [(w.pad_lo, w.pad_hi + max(0, (w.out - 1) * w.stride + w.span - w.padded)) for w in windows]
        self.flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last axis first

    def forward(self, x):
        return window_sum(F.pad(x, self.flat), self.k, self.s, self.d)


class ScatterSum(nn.Module):
    """A transposed convolution's reach, per channel: the input spread out with S−1 zeros
    between neighbours, padded by D·(K−1) − P (plus output_padding at the end), then summed
    over dilated windows of K taps — the very positions the real layer's taps reach."""

    def __init__(self, kernel, stride, padding, output_padding, dilation):
        super().__init__()
        self.k, self.s, self.d = tuple(kernel), tuple(stride), tuple(dilation)
        pads = [(d * (k - 1) - p, d * (k - 1) - p + op)
                for k, p, op, d in zip(kernel, padding, output_padding, dilation)]
        self.flat = [p for pair in reversed(pads) for p in pair]

    def forward(self, x):
        spread = x.new_zeros((*x.shape[:2], *((n - 1) * s + 1 for n, s in zip(x.shape[2:], self.s))))
        every = (slice(None), slice(None), *(slice(None, None, s) for s in self.s))
        spread[every] = x
        return window_sum(F.pad(spread, self.flat), self.k, (1,) * len(self.k), self.d)


@recorded
class MaxPoolIndices(nn.Module):
    """nn.MaxPool1d/2d/3d with return_indices: its values, carrying the int64 index of each
    maximum as `.unpool_indices` (a MaxUnpool reads them: spec inputs [x, POOL]); every other
    reader sees the values. The indices live as long as the values tensor."""

    def __init__(self, dims, kernel_size, stride, padding, dilation, ceil_mode):
        super().__init__()
        self.pool = getattr(nn, f"MaxPool{dims}d")(kernel_size, stride, padding, dilation, return_indices=True,
                                                   ceil_mode=ceil_mode)

    def forward(self, x):
        values, indices = self.pool(x)
        values.unpool_indices = indices
        return values


@recorded
class MaxUnpool(nn.Module):
    """nn.MaxUnpool1d/2d/3d at a fixed output size, reading the indices a MaxPoolIndices
    attached to its values (`pool`)."""

    def __init__(self, dims, kernel_size, stride, padding, output_size):
        super().__init__()
        self.unpool = getattr(nn, f"MaxUnpool{dims}d")(kernel_size, stride, padding)
        self.output_size = list(output_size)

    def forward(self, x, pool):
        return self.unpool(x, pool.unpool_indices, self.output_size)


class UnpoolReach(nn.Module):
    """The probe's stand-in of max unpooling: each output sums x over every pool window that
    covers it (windows i·S − P + t·D, t < K: a transposed window), cut or padded to the output
    size. geometry: (K, S, P, D) per axis."""

    def __init__(self, geometry, sizes):
        super().__init__()
        kernel, stride, padding, dilation = zip(*geometry)
        self.k, self.s, self.d, self.sizes = kernel, stride, dilation, tuple(sizes)
        self.pads = [d * (k - 1) - p for k, s, p, d in geometry]

    def forward(self, x, pool=None):
        spread = x.new_zeros((*x.shape[:2], *((n - 1) * s + 1 for n, s in zip(x.shape[2:], self.s))))
        every = (slice(None), slice(None), *(slice(None, None, s) for s in self.s))
        spread[every] = x
        natural = [(n - 1) * s + 1 + 2 * pad - d * (k - 1)  # its size before the cut
                   for n, s, k, d, pad in zip(x.shape[2:], self.s, self.k, self.d, self.pads)]
        flat = [v for pad, n, o in reversed(list(zip(self.pads, natural, self.sizes))) for v in (pad, pad + o - n)]
        return window_sum(F.pad(spread, flat), self.k, (1,) * len(self.k), self.d)


@recorded
class AxisMean(nn.Module):
    """The mean along one axis, spread back over it: every position reads the whole axis."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.mean(self.dim, keepdim=True).expand_as(x)


@recorded
class SumLast(nn.Module):
    """Linear's reach: every output feature reads the whole last axis."""

    def __init__(self, features: int):
        super().__init__()
        self.features = features

    def forward(self, x):
        return x.sum(-1, keepdim=True).expand(*x.shape[:-1], self.features)


@recorded
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, …) map (torchvision's LayerNorm2d)."""

    def forward(self, x):
        x = x.movedim(1, -1)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).movedim(-1, 1)


@recorded
class LayerScale(nn.Module):
    """y = γ·x with γ of shape (C, 1, …) (ConvNeXt's layer_scale)."""

    def __init__(self, channels: int, spatial: int, init_value: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,) + (1,) * spatial, float(init_value)))

    def forward(self, x):
        return self.weight * x


@recorded
class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: drop whole samples (row) or the batch while training."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise


@recorded
class Narrow(nn.Module):
    """x.narrow(dim, start, length): a view."""

    def __init__(self, dim: int, start: int, length: int):
        super().__init__()
        self.dim, self.start, self.length = dim, start, length

    def forward(self, x):
        return x.narrow(self.dim, self.start, self.length)


@recorded
class SelfAttention(nn.Module):
    """Multi-head self-attention over the positions of an (N, C, …) map, with
    nn.MultiheadAttention's parameters (in_proj C → 3C, out_proj C → C), computed as the
    math of scaled_dot_product_attention (two batched matmuls around a softmax), which
    FlopCounterMode counts on every device (its CPU flash kernel is not counted)."""

    def __init__(self, channels: int, heads: int, bias: bool = True):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * channels, channels))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * channels)) if bias else None
        self.out_proj = nn.Linear(channels, channels, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x):
        n, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)                                   # (N, L, C)
        q, k, v = F.linear(tokens, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        heads = (self.heads, c // self.heads)
        q, k, v = (q.unflatten(-1, heads).transpose(1, 2), k.unflatten(-1, heads).transpose(1, 2),
                   v.unflatten(-1, heads).transpose(1, 2))
        weights = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)  # (N, heads, L, L)
        out = (weights @ v).transpose(1, 2).reshape(n, -1, c)
        return self.out_proj(out).transpose(1, 2).reshape(x.shape)


class WholeSum(nn.Module):
    """Probe stand-in of a layer whose every output reads the whole input: the sum of all
    positions, broadcast back."""

    def forward(self, x):
        return x.sum(dim=tuple(range(2, x.ndim)), keepdim=True).expand_as(x)


@recorded
class Permute(nn.Module):
    """x.permute(dims): a view."""

    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(self.dims)


@recorded
class Reshape(nn.Module):
    """x.reshape(N, *shape)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


RESCALE_RANGE = (1e-50, 1e50)  #: a tensor whose largest magnitude leaves this range is rescaled to 1


def _unit_max(x):
    """x divided by its largest magnitude when that lies outside RESCALE_RANGE (a positive
    finite number), else x as it is (a view: dividing every tensor would cost a third more)."""
    m = float(x.detach().abs().amax()) if x.numel() else 0.0
    if 0.0 < m < float("inf") and not RESCALE_RANGE[0] <= m <= RESCALE_RANGE[1]:
        return x / m
    return x.view_as(x)


class _Rescale(torch.autograd.Function):
    """Forward: the value divided by its largest magnitude; backward: the incoming gradient
    divided by its own largest magnitude — each only when that magnitude has left
    RESCALE_RANGE (10^±50), so no value or gradient exceeds 10^50 times one stand-in's growth
    (a mul of three inputs: 10^150, far from float64's 10^308) nor sinks towards its 10^−308.
    Division by a positive finite number never turns a non-zero into zero nor a zero into a
    non-zero (short of a spread of 10^258 within one tensor), so every gradient keeps its
    support exactly."""

    @staticmethod
    def forward(ctx, x):
        return _unit_max(x)

    @staticmethod
    def backward(ctx, g):
        return _unit_max(g)


class Rescaled(nn.Module):
    """A probe stand-in whose output (and the gradient flowing back into it) is rescaled to
    a largest magnitude of 1 (`_Rescale`): squeeze-and-excitation gates multiply a branch by
    its own pooled values, which squares the numbers at each gate and overflows float64
    after about 8 gates; rescaled, they cannot overflow, and the supports — all the probe
    reads — are unchanged."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *xs):
        out = self.inner(*xs)
        return _Rescale.apply(out) if torch.is_tensor(out) and out.is_floating_point() else out


@recorded
class MatMul(nn.Module):
    """a @ b (torch.matmul)."""

    def forward(self, a, b):
        return a @ b


def _bias_index(kind, h, w, stride):
    """The table entry each (query, key) pair of an h×w grid reads (queries every stride-th row
    and column): 'abs' |Δy|·w + |Δx| (LeViT), 'relative' (Δy + h − 1)·(2w − 1) + Δx + w − 1 (Swin)."""
    keys = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    queries = torch.stack(torch.meshgrid(torch.arange(0, h, stride), torch.arange(0, w, stride),
                                         indexing="ij")).flatten(1)
    d = queries[:, :, None] - keys[:, None, :]  # 2, Q, K
    if kind == "abs":
        return d[0].abs() * w + d[1].abs()
    return (d[0] + h - 1) * (2 * w - 1) + d[1] + w - 1


@recorded
class AttentionBias(nn.Module):
    """x + a learnable bias per head and relative position, gathered from a table by a fixed
    index: kind 'abs' as LeViT's and EfficientFormer's attention (table (heads, h·w), index
    buffer `attention_bias_idxs`), 'relative' as Swin's and MaxViT's RelPosBias (table
    ((2h − 1)·(2w − 1), heads), index `relative_position_index`, not in the state_dict)."""

    def __init__(self, heads, kind, resolution, stride=1):
        super().__init__()
        h, w = resolution
        self.kind, self.resolution, self.stride = kind, [h, w], stride
        index = _bias_index(kind, h, w, stride)
        if kind == "abs":
            self.attention_biases = nn.Parameter(torch.zeros(heads, h * w))
            self.register_buffer("attention_bias_idxs", index)
        else:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * h - 1) * (2 * w - 1), heads))
            self.register_buffer("relative_position_index", index.reshape(-1), persistent=False)
            self.queries = index.shape[0]
        nn.init.trunc_normal_(self.attention_biases if kind == "abs" else self.relative_position_bias_table, std=0.02)

    def forward(self, x):
        if self.kind == "abs":
            return x + self.attention_biases[:, self.get_buffer("attention_bias_idxs")]
        bias = self.relative_position_bias_table[self.get_buffer("relative_position_index")]
        return x + bias.view(self.queries, -1, bias.shape[-1]).permute(2, 0, 1)


@recorded
class SumAlong(nn.Module):
    """x.sum(dim, keepdim)."""

    def __init__(self, dim, keepdim=False):
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        return x.sum(self.dim, keepdim=self.keepdim)


@recorded
class Normalize(nn.Module):
    """F.normalize(x, dim=dim, eps=eps): unit L2 norm along dim."""

    def __init__(self, dim=1, eps=1e-12):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x):
        return F.normalize(x, dim=self.dim, eps=self.eps)


@recorded
class FourierPosEmbed(nn.Module):
    """x + the Fourier position encoding of an h×w grid projected by a 1×1 conv (timm's
    PositionalEncodingFourier, as EdgeNeXt adds it to its tokens (N, h·w, C))."""

    def __init__(self, channels, resolution, hidden_dim=32, temperature=10000.0):
        super().__init__()
        self.resolution, self.hidden_dim, self.temperature = list(resolution), hidden_dim, temperature
        self.token_projection = nn.Conv2d(hidden_dim * 2, channels, kernel_size=1)

    def forward(self, x):
        h, w = self.resolution
        inv_mask = ~torch.zeros((x.shape[0], h, w), dtype=torch.bool, device=x.device)
        y_embed = inv_mask.cumsum(1, dtype=torch.float32)
        x_embed = inv_mask.cumsum(2, dtype=torch.float32)
        y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * (2 * torch.pi)
        x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * (2 * torch.pi)
        dim_t = torch.arange(self.hidden_dim, dtype=torch.int64, device=x.device).to(torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode='floor') / self.hidden_dim)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        pos = self.token_projection(pos.to(self.token_projection.weight.dtype))
        return x + pos.reshape(x.shape[0], -1, x.shape[1]).permute(0, 2, 1)
