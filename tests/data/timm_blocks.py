"""Faithful copies of timm's and torchvision's module code (timm 1.0.x: timm/layers/norm_act.py,
conv2d_same.py, padding.py, norm.py, layer_scale.py, std_conv.py; timm/models/ghostnet.py, convnext.py; torchvision's
segmentation heads' dict output), so `cnncalc import` is tested on the real patterns without
timm installed. The class bodies are timm's own (decorators, jit flags and the
device/dtype plumbing left out); the small models at the end wire them as timm's models do."""
import math
import sys
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn


# ---- timm/layers/padding.py ------------------------------------------------------------------
def get_same_padding(x: int, kernel_size: int, stride: int, dilation: int):
    if isinstance(x, torch.Tensor):
        return torch.clamp(((x / stride).ceil() - 1) * stride + (kernel_size - 1) * dilation + 1 - x, min=0)
    else:
        return max((math.ceil(x / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - x, 0)


def pad_same(x, kernel_size: List[int], stride: List[int], dilation: List[int] = (1, 1), value: float = 0):
    ih, iw = x.size()[-2:]
    pad_h = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)
    return x


def is_static_pad(kernel_size: int, stride: int = 1, dilation: int = 1, **_):
    return stride == 1 and (dilation * (kernel_size - 1)) % 2 == 0


def get_padding(kernel_size: int, stride: int = 1, dilation: int = 1, **_):
    padding = ((stride - 1) + dilation * (kernel_size - 1)) // 2
    return padding


def get_padding_value(padding, kernel_size, **kwargs) -> Tuple[Tuple, bool]:
    dynamic = False
    if isinstance(padding, str):
        padding = padding.lower()
        if padding == 'same':
            if is_static_pad(kernel_size, **kwargs):
                padding = get_padding(kernel_size, **kwargs)
            else:
                padding = 0
                dynamic = True
        elif padding == 'valid':
            padding = 0
        else:
            padding = get_padding(kernel_size, **kwargs)
    return padding, dynamic


# ---- timm/layers/conv2d_same.py --------------------------------------------------------------
def conv2d_same(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1):
    x = pad_same(x, weight.shape[-2:], stride, dilation)
    return F.conv2d(x, weight, bias, stride, (0, 0), dilation, groups)


class Conv2dSame(nn.Conv2d):
    """ Tensorflow like 'SAME' convolution wrapper for 2D convolutions
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x):
        return conv2d_same(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def create_conv2d_pad(in_chs, out_chs, kernel_size, **kwargs):
    padding = kwargs.pop('padding', '')
    kwargs.setdefault('bias', False)
    padding, is_dynamic = get_padding_value(padding, kernel_size, **kwargs)
    if is_dynamic:
        return Conv2dSame(in_chs, out_chs, kernel_size, **kwargs)
    else:
        return nn.Conv2d(in_chs, out_chs, kernel_size, padding=padding, **kwargs)


def create_conv2d(in_channels, out_channels, kernel_size, **kwargs):
    depthwise = kwargs.pop('depthwise', False)
    groups = in_channels if depthwise else kwargs.pop('groups', 1)
    return create_conv2d_pad(in_channels, out_channels, kernel_size, groups=groups, **kwargs)


# ---- timm/layers/norm_act.py -----------------------------------------------------------------
def _create_act(act_layer, act_kwargs=None, inplace=False, apply_act=True):
    act_kwargs = act_kwargs or {}
    act_kwargs.setdefault('inplace', inplace)
    act = None
    if apply_act:
        act = act_layer(**act_kwargs)  # timm: create_act_layer, which gives nn.ReLU / nn.SiLU / … here
    return nn.Identity() if act is None else act


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm + Activation"""
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 apply_act=True, act_layer=nn.ReLU, act_kwargs=None, inplace=True, drop_layer=None):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)
        self.drop = drop_layer() if drop_layer is not None else nn.Identity()
        self.act = _create_act(act_layer, act_kwargs=act_kwargs, inplace=inplace, apply_act=apply_act)

    def forward(self, x):
        # cut & paste of torch.nn.BatchNorm2d.forward impl to avoid issues with torchscript and tracing
        assert x.ndim == 4, f'expected 4D input (got {x.ndim}D input)'  # timm: _assert
        if self.momentum is None:
            exponential_average_factor = 0.0
        else:
            exponential_average_factor = self.momentum

        if self.training and self.track_running_stats:
            if self.num_batches_tracked is not None:  # type: ignore[has-type]
                self.num_batches_tracked.add_(1)  # type: ignore[has-type]
                if self.momentum is None:  # use cumulative moving average
                    exponential_average_factor = 1.0 / float(self.num_batches_tracked)
                else:  # use exponential moving average
                    exponential_average_factor = self.momentum
        if self.training:
            bn_training = True
        else:
            bn_training = (self.running_mean is None) and (self.running_var is None)
        x = F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            bn_training,
            exponential_average_factor,
            self.eps,
        )
        x = self.drop(x)
        x = self.act(x)
        return x


# ---- timm/layers/norm.py ---------------------------------------------------------------------
class LayerNorm2d(nn.LayerNorm):
    """ LayerNorm for channels of '2D' spatial NCHW tensors """

    def __init__(self, num_channels, eps=1e-6, affine=True, **kwargs):
        super().__init__(num_channels, eps=eps, elementwise_affine=affine, **kwargs)
        self._fast_norm = False  # timm: is_fast_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 3, 1, 2)
        return x


# ---- timm/models/ghostnet.py -----------------------------------------------------------------
class GhostModule(nn.Module):
    def __init__(self, in_chs, out_chs, kernel_size=1, ratio=2, dw_size=3, stride=1, act_layer=nn.ReLU):
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / ratio)
        new_chs = init_chs * (ratio - 1)

        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_chs, init_chs, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_chs),
            act_layer(inplace=True),
        )

        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_chs, new_chs, dw_size, 1, dw_size//2, groups=init_chs, bias=False),
            nn.BatchNorm2d(new_chs),
            act_layer(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, :self.out_chs, :, :]


# ---- timm/models/convnext.py (ConvNeXtBlock, conv_mlp=False path) -----------------------------
class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop1(x)
        x = self.norm(x)
        x = self.fc2(x)
        x = self.drop2(x)
        return x


class ConvNeXtBlock(nn.Module):
    def __init__(self, in_chs, ls_init_value=1e-6):
        super().__init__()
        self.use_conv_mlp = False
        self.conv_dw = create_conv2d(in_chs, in_chs, kernel_size=7, stride=1, dilation=1, depthwise=True, bias=True)
        self.norm = nn.LayerNorm(in_chs, eps=1e-6)
        self.mlp = Mlp(in_chs, 4 * in_chs)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(in_chs)) if ls_init_value is not None else None
        self.shortcut = nn.Identity()
        self.drop_path = nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        if self.use_conv_mlp:
            x = self.norm(x)
            x = self.mlp(x)
        else:
            x = x.permute(0, 2, 3, 1)
            x = self.norm(x)
            x = self.mlp(x)
            x = x.permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))

        x = self.drop_path(x) + self.shortcut(shortcut)
        return x


# ---- timm/layers/layer_scale.py ------------------------------------------------------------------
class LayerScale(nn.Module):
    """ LayerScale on tensors with channels in last-dim.
    """
    def __init__(
            self,
            dim: int,
            init_values: float = 1e-5,
            inplace: bool = False,
    ) -> None:
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.gamma) if self.inplace else x * self.gamma


class LayerScale2d(nn.Module):
    """ LayerScale for tensors with torch 2D NCHW layout.
    """
    def __init__(
            self,
            dim: int,
            init_values: float = 1e-5,
            inplace: bool = False,
    ):
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        gamma = self.gamma.view(1, -1, 1, 1)
        return x.mul_(gamma) if self.inplace else x * gamma


# ---- timm/layers/std_conv.py ----------------------------------------------------------------------
class StdConv2d(nn.Conv2d):
    """Conv2d with Weight Standardization. Used for BiT ResNet-V2 models.

    Paper: `Micro-Batch Training with Batch-Channel Normalization and Weight Standardization` -
        https://arxiv.org/abs/1903.10520v2
    """
    def __init__(
            self,
            in_channel: int,
            out_channels: int,
            kernel_size,
            stride=1,
            padding=None,
            dilation=1,
            groups: int = 1,
            bias: bool = False,
            eps: float = 1e-6,
    ):
        if padding is None:
            padding = get_padding(kernel_size, stride, dilation)
        super().__init__(
            in_channel, out_channels, kernel_size, stride=stride,
            padding=padding, dilation=dilation, groups=groups, bias=bias)
        self.eps = eps

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,  # running_mean
            None,  # running_var
            training=True,
            momentum=0.,
            eps=self.eps,
        ).reshape_as(self.weight)
        x = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return x


class ScaledStdConv2d(nn.Conv2d):
    """Conv2d layer with Scaled Weight Standardization.

    Paper: `Characterizing signal propagation to close the performance gap in unnormalized ResNets` -
        https://arxiv.org/abs/2101.08692

    NOTE: the operations used in this impl differ slightly from the DeepMind Haiku impl. The impact is minor.
    """

    def __init__(
            self,
            in_channels: int,
            out_channels: int,
            kernel_size,
            stride=1,
            padding=None,
            dilation=1,
            groups: int = 1,
            bias: bool = True,
            gamma: float = 1.0,
            eps: float = 1e-6,
            gain_init: float = 1.0,
    ):
        if padding is None:
            padding = get_padding(kernel_size, stride, dilation)
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
            groups=groups, bias=bias)
        self.scale = gamma * self.weight[0].numel() ** -0.5  # gamma * 1 / sqrt(fan-in)
        self.eps = eps
        self.gain_init = gain_init

        self.gain = nn.Parameter(torch.empty((self.out_channels, 1, 1, 1)))

        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Only initialize gain if it exists (for the second call)
        if hasattr(self, 'gain'):
            torch.nn.init.constant_(self.gain, self.gain_init)
            # Also reset parent parameters if needed
            super().reset_parameters()
        # On first call (from super().__init__), do nothing

    def forward(self, x):
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,  # running_mean
            None,  # running_var
            weight=(self.gain * self.scale).view(-1),
            training=True,
            momentum=0.,
            eps=self.eps,
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


# ---- small models wiring them as timm does ---------------------------------------------------
class EfficientStem(nn.Module):
    """timm's EfficientNet stem and a depthwise-separable block: conv → BatchNormAct2d (SiLU)."""

    def __init__(self, pad_type=''):
        super().__init__()
        self.conv_stem = create_conv2d(3, 16, 3, stride=2, padding=pad_type)
        self.bn1 = BatchNormAct2d(16, act_layer=nn.SiLU)
        self.conv_dw = create_conv2d(16, 16, 3, stride=1, padding=pad_type, depthwise=True)
        self.bn2 = BatchNormAct2d(16, act_layer=nn.SiLU, drop_layer=lambda: nn.Dropout(0.1))
        self.conv_pw = create_conv2d(16, 24, 1, padding=pad_type)
        self.bn3 = BatchNormAct2d(24, apply_act=False)
        self.conv_down = create_conv2d(24, 32, 5, stride=2, padding=pad_type, depthwise=False)
        self.bn4 = BatchNormAct2d(32, act_layer=nn.ReLU6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        x = self.bn1(self.conv_stem(x))
        x = self.bn3(self.conv_pw(self.bn2(self.conv_dw(x))))
        x = self.bn4(self.conv_down(x))
        return self.classifier(self.pool(x).flatten(1))


def tf_efficient_stem():
    """The tf_ variant: every conv with TensorFlow's 'same' padding (Conv2dSame where strided)."""
    return EfficientStem('same')


class GhostNetLite(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.ghost1 = GhostModule(16, 24)  # init_chs 12, 12 new: 24 kept of 24
        self.ghost2 = GhostModule(24, 30, ratio=4)  # init_chs 8, 24 new: 30 of 32 kept
        self.head = nn.Linear(30, 10)

    def forward(self, x):
        x = self.ghost2(self.ghost1(self.stem(x)))
        return self.head(x.mean((2, 3)))


class ConvNeXtLite(nn.Module):
    def __init__(self, ls_init_value=1e-6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 4, 4), LayerNorm2d(32))
        self.stages = nn.Sequential(nn.Sequential(*[ConvNeXtBlock(32, ls_init_value) for _ in range(2)]),
                                    nn.Sequential(LayerNorm2d(32), nn.Conv2d(32, 48, 2, 2),
                                                  ConvNeXtBlock(48, ls_init_value)))

    def forward(self, x):
        return self.stages(self.stem(x))


def convnext_without_layer_scale():
    return ConvNeXtLite(None)


class SegHead(nn.Module):
    """torchvision's segmentation models' return: OrderedDict(out=…, aux=…), each upsampled."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU())
        self.classifier = nn.Conv2d(16, 5, 1)
        self.aux_classifier = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        input_shape = x.shape[-2:]
        features = self.backbone(x)
        result = OrderedDict()
        x = self.classifier(features)
        x = F.interpolate(x, size=input_shape, mode="bilinear", align_corners=False)
        result["out"] = x
        x = self.aux_classifier(features)
        x = F.interpolate(x, size=input_shape, mode="bilinear", align_corners=False)
        result["aux"] = x
        return result


class ListOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 3, 2, 1)

    def forward(self, x):
        y = self.a(x)
        return [y, self.b(y)]


class WithAux(nn.Module):
    """googlenet/inception_v3's aux heads: modules with weights that eval's forward never calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.aux1 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.conv(x)
        if self.training:
            x = x + self.aux1(x).sum()
        return self.fc(x.mean((2, 3)))


class SplitNegative(nn.Module):
    """Res2Net's `spx[-1]`: a negative index into torch.split's pieces."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 1)
        self.convs = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1) for _ in range(2)])

    def forward(self, x):
        spx = torch.split(self.conv(x), 4, 1)
        out = [self.convs[0](spx[0]), self.convs[1](spx[1]), spx[-1]]
        return torch.cat(out, 1)


class RefusedThenContiguous(nn.Module):
    """A refused op whose result is made contiguous (ResNeSt, HaloNet)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return torch.cumsum(self.conv(x), 1).contiguous()


class Exits(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        sys.exit(0)


class ScaledBlocks(nn.Module):
    """Convs each followed by timm's LayerScale2d (NCHW, as MetaFormer-style stages use it), or by
    its channels-last LayerScale between two permutes (no layer type reads a scale on the last axis)."""

    def __init__(self, channels_last=False, n=3):
        super().__init__()
        self.channels_last = channels_last
        self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1) for i in range(n)])
        self.ls = nn.ModuleList([(LayerScale if channels_last else LayerScale2d)(8, init_values=0.1) for _ in range(n)])

    def forward(self, x):
        for conv, ls in zip(self.convs, self.ls):
            x = conv(x)
            x = ls(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if self.channels_last else ls(x)
        return x


class NFStem(nn.Module):
    """NF-ResNet's / NFNet's way: ScaledStdConv2d convs with activations and no norm layer (timm's
    nfnet.py stem and a bottleneck's convs), then BiT's StdConv2d."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(ScaledStdConv2d(3, 16, 3, stride=2), nn.GELU(), ScaledStdConv2d(16, 32, 3),
                                  nn.GELU())
        self.conv1 = ScaledStdConv2d(32, 32, 1)
        self.conv2 = StdConv2d(32, 32, 3)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv2(F.relu(self.conv1(self.stem(x))))
        return self.head(x.mean((2, 3)))


# ---- timm/layers/linear.py (timm 1.0.x), verbatim: an nn.Linear whose forward is F.linear ------
class Linear(nn.Linear):
    r"""Applies a linear transformation to the incoming data: :math:`y = xA^T + b`

    Wraps torch.nn.Linear to support AMP + torchscript usage by manually casting
    weight & bias to input.dtype to work around an issue w/ torch.addmm in this use case.
    """
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            bias = self.bias.to(dtype=input.dtype) if self.bias is not None else None
            return F.linear(input, self.weight.to(dtype=input.dtype), bias=bias)
        else:
            return F.linear(input, self.weight, self.bias)


class LinearHead(nn.Module):
    """MobileNetV3 / GhostNet / LCNet's head as timm writes it: pool, 1×1 conv, flatten, timm's Linear."""

    def __init__(self, linear=Linear):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(8, 16, 1)
        self.act2 = nn.Hardswish()
        self.flatten = nn.Flatten(1)
        self.classifier = linear(16, 10)

    def forward(self, x):
        x = self.global_pool(self.conv_stem(x))
        return self.classifier(self.flatten(self.act2(self.conv_head(x))))


# ---- timm/models/mobileone.py's MobileOneBlock forward (train-time branches), its sum started at 0 ----
class MobileOneLite(nn.Module):
    def __init__(self, identity=True, scale=True, branches=2):
        super().__init__()
        self.identity = nn.BatchNorm2d(8) if identity else None
        self.conv_scale = nn.Conv2d(8, 8, 1) if scale else None
        self.conv_kxk = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1) for _ in range(branches)])
        self.num_conv_branches = branches
        self.act = nn.ReLU()

    def forward(self, x):
        identity_out = 0
        if self.identity is not None:
            identity_out = self.identity(x)
        scale_out = 0
        if self.conv_scale is not None:
            scale_out = self.conv_scale(x)
        out = scale_out + identity_out
        for ix in range(self.num_conv_branches):
            out += self.conv_kxk[ix](x)
        return self.act(out)


class MobileOneStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1, self.b2, self.b3 = MobileOneLite(), MobileOneLite(identity=False), MobileOneLite(scale=False)

    def forward(self, x):
        return self.b3(self.b2(self.b1(self.stem(x))))


# ---- timm/layers/eca.py: EcaModule (its forward verbatim; the mlp variant and create_act_layer left out) ----
class EcaModule(nn.Module):
    def __init__(self, channels=None, kernel_size=3, gamma=2, beta=1):
        super().__init__()
        if channels is not None:
            t = int(abs(math.log(channels, 2) + beta) / gamma)
            kernel_size = max(t if t % 2 else t + 1, 3)
        assert kernel_size % 2 == 1
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=padding, bias=False)
        self.act = None
        self.conv2 = None
        self.gate = nn.Sigmoid()

    def forward(self, x):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)  # view for 1d conv
        y = self.conv(y)
        if self.conv2 is not None:
            y = self.act(y)
            y = self.conv2(y)
        y = self.gate(y).view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


class EcaNet(nn.Module):
    """ecaresnet's pattern: a conv, then ECA gating its output (x * y.expand_as(x))."""

    def __init__(self, expand_other=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.se = EcaModule(16)
        self.expand_other = expand_other

    def forward(self, x):
        x = self.se(self.conv(x))
        if self.expand_other:  # an expand read by something that does not broadcast: still refused
            return torch.cat([x, x.mean((2, 3), keepdim=True).expand_as(x)], 1)
        return x


# ---- timm/layers/helpers.py, trace_utils.py ------------------------------------------------------
def make_divisible(v, divisor=8, min_value=None, round_limit=.9):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    # Make sure that round down does not go down by more than 10%.
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


from torch import _assert  # noqa: E402 - timm/layers/trace_utils.py: torch's, which fx traces


# ---- timm/layers/split_attn.py (ResNeSt), forwards verbatim -------------------------------------------
class RadixSoftmax(nn.Module):
    def __init__(self, radix: int, cardinality: int):
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality

    def forward(self, x):
        batch = x.size(0)
        if self.radix > 1:
            x = x.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
            x = F.softmax(x, dim=1)
            x = x.reshape(batch, -1)
        else:
            x = torch.sigmoid(x)
        return x


class SplitAttn(nn.Module):
    """Split-Attention (aka Splat)"""
    def __init__(self, in_channels, out_channels=None, kernel_size=3, stride=1, padding=None, dilation=1, groups=1,
                 bias=False, radix=2, rd_ratio=0.25, rd_channels=None, rd_divisor=8, act_layer=nn.ReLU,
                 norm_layer=None, drop_layer=None, **kwargs):
        super().__init__()
        out_channels = out_channels or in_channels
        self.radix = radix
        mid_chs = out_channels * radix
        if rd_channels is None:
            attn_chs = make_divisible(in_channels * radix * rd_ratio, min_value=32, divisor=rd_divisor)
        else:
            attn_chs = rd_channels * radix

        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, mid_chs, kernel_size, stride, padding, dilation, groups=groups * radix,
                              bias=bias, **kwargs)
        self.bn0 = norm_layer(mid_chs) if norm_layer else nn.Identity()
        self.drop = drop_layer() if drop_layer is not None else nn.Identity()
        self.act0 = act_layer(inplace=True)
        self.fc1 = nn.Conv2d(out_channels, attn_chs, 1, groups=groups)
        self.bn1 = norm_layer(attn_chs) if norm_layer else nn.Identity()
        self.act1 = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(attn_chs, mid_chs, 1, groups=groups)
        self.rsoftmax = RadixSoftmax(radix, groups)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn0(x)
        x = self.drop(x)
        x = self.act0(x)

        B, RC, H, W = x.shape
        if self.radix > 1:
            x = x.reshape((B, self.radix, RC // self.radix, H, W))
            x_gap = x.sum(dim=1)
        else:
            x_gap = x
        x_gap = x_gap.mean((2, 3), keepdim=True)
        x_gap = self.fc1(x_gap)
        x_gap = self.bn1(x_gap)
        x_gap = self.act1(x_gap)
        x_attn = self.fc2(x_gap)

        x_attn = self.rsoftmax(x_attn).view(B, -1, 1, 1)
        if self.radix > 1:
            out = (x * x_attn.reshape((B, self.radix, RC // self.radix, 1, 1))).sum(dim=1)
        else:
            out = x * x_attn
        return out.contiguous()


# ---- timm/layers/selective_kernel.py (SK-ResNet), forwards verbatim; timm's ConvNormAct as conv, BN, ReLU ----
class SelectiveKernelAttn(nn.Module):
    def __init__(self, channels, num_paths=2, attn_channels=32, act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.num_paths = num_paths
        self.fc_reduce = nn.Conv2d(channels, attn_channels, kernel_size=1, bias=False)
        self.bn = norm_layer(attn_channels)
        self.act = act_layer(inplace=True)
        self.fc_select = nn.Conv2d(attn_channels, channels * num_paths, kernel_size=1, bias=False)

    def forward(self, x):
        _assert(x.shape[1] == self.num_paths, '')
        x = x.sum(1).mean((2, 3), keepdim=True)
        x = self.fc_reduce(x)
        x = self.bn(x)
        x = self.act(x)
        x = self.fc_select(x)
        B, C, H, W = x.shape
        x = x.view(B, self.num_paths, C // self.num_paths, H, W)
        x = torch.softmax(x, dim=1)
        return x


def _conv_norm_act(in_channels, out_channels, kernel_size, dilation, stride=1, groups=1):
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride, get_padding(kernel_size, stride, dilation),
                       dilation, groups, bias=False),
        bn=nn.BatchNorm2d(out_channels), act=nn.ReLU(inplace=True)))


class SelectiveKernel(nn.Module):
    def __init__(self, in_channels, out_channels=None, kernel_size=None, stride=1, dilation=1, groups=1,
                 rd_ratio=1. / 16, rd_channels=None, rd_divisor=8, keep_3x3=True, split_input=True):
        super().__init__()
        out_channels = out_channels or in_channels
        kernel_size = kernel_size or [3, 5]  # default to one 3x3 and one 5x5 branch. 5x5 -> 3x3 + dilation
        if not isinstance(kernel_size, list):
            kernel_size = [kernel_size] * 2
        if keep_3x3:
            dilation = [dilation * (k - 1) // 2 for k in kernel_size]
            kernel_size = [3] * len(kernel_size)
        else:
            dilation = [dilation] * len(kernel_size)
        self.num_paths = len(kernel_size)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.split_input = split_input
        if self.split_input:
            assert in_channels % self.num_paths == 0
            in_channels = in_channels // self.num_paths
        groups = min(out_channels, groups)
        self.paths = nn.ModuleList([
            _conv_norm_act(in_channels, out_channels, kernel_size=k, dilation=d, stride=stride, groups=groups)
            for k, d in zip(kernel_size, dilation)])
        attn_channels = rd_channels or make_divisible(out_channels * rd_ratio, divisor=rd_divisor)
        self.attn = SelectiveKernelAttn(out_channels, self.num_paths, attn_channels)

    def forward(self, x):
        if self.split_input:
            x_split = torch.split(x, self.in_channels // self.num_paths, 1)
            x_paths = [op(x_split[i]) for i, op in enumerate(self.paths)]
        else:
            x_paths = [op(x) for op in self.paths]
        x = torch.stack(x_paths, dim=1)
        x_attn = self.attn(x)
        x = x * x_attn
        x = torch.sum(x, dim=1)
        return x


class SplitNets(nn.Module):
    """ResNeSt's and SK-ResNet's blocks after a stem conv (radix/paths 2; SK with three paths too)."""

    def __init__(self, paths=2, radix=2):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.splat = SplitAttn(16, 16, radix=radix, norm_layer=nn.BatchNorm2d)
        self.sk = SelectiveKernel(16, 24, kernel_size=[3] * paths if paths != 2 else None, split_input=paths == 2)

    def forward(self, x):
        return self.sk(self.splat(self.stem(x)))


class SumOver(nn.Module):
    """Sums import has no layers for (over the batch; a dtype), a `sum` layer (a spatial axis), and
    one written as narrows added, kept (keepdim)."""

    def __init__(self, how):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.how = how

    def forward(self, x):
        x = self.conv(x)
        if self.how == "spatial":
            return x.sum(2)
        if self.how == "dtype":
            return x.sum(1, dtype=torch.float64)
        if self.how == "batch":
            return x.sum(0)
        if self.how == "stack0":
            return torch.stack([x, x], 0)
        return x.sum(1, keepdim=True) + torch.stack([x, x], dim=1).sum(1)


# ---- timm/layers/std_conv.py: the Same variants (TF 'same' padding computed in forward) -------------
class StdConv2dSame(nn.Conv2d):
    def __init__(self, in_channel, out_channels, kernel_size, stride=1, padding='SAME', dilation=1, groups=1,
                 bias=False, eps=1e-6):
        padding, is_dynamic = get_padding_value(padding, kernel_size, stride=stride, dilation=dilation)
        super().__init__(in_channel, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        self.same_pad = is_dynamic
        self.eps = eps

    def forward(self, x):
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None,
            training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        x = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return x


class ScaledStdConv2dSame(nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding='SAME', dilation=1, groups=1,
                 bias=True, gamma=1.0, eps=1e-6, gain_init=1.0):
        padding, is_dynamic = get_padding_value(padding, kernel_size, stride=stride, dilation=dilation)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.same_pad = is_dynamic
        self.eps = eps
        self.gain_init = gain_init
        self.gain = nn.Parameter(torch.empty((self.out_channels, 1, 1, 1)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if hasattr(self, 'gain'):
            torch.nn.init.constant_(self.gain, self.gain_init)
            super().reset_parameters()

    def forward(self, x):
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None,
            weight=(self.gain * self.scale).view(-1),
            training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class StdConvs(nn.Module):
    """NF-ResNet / NFNet / BiT convs: scaled with NF-ResNet's relu gamma, plain, TF-same strided (uneven), scaled same."""

    def __init__(self):
        super().__init__()
        self.a = ScaledStdConv2d(3, 8, 3, stride=2, gamma=1.7139588594436646, eps=1e-5)
        self.b = StdConv2d(8, 8, 3, groups=2)
        self.c = StdConv2dSame(8, 6, 3, stride=2)
        self.d = ScaledStdConv2dSame(6, 4, 1, bias=False)

    def forward(self, x):
        return self.d(F.relu(self.c(self.b(F.relu(self.a(x))))))


# ---- timm/models/hgnet.py: LearnableAffineBlock (HGNetV2), verbatim --------------------------------------
class LearnableAffineBlock(nn.Module):
    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([scale_value]), requires_grad=True)
        self.bias = nn.Parameter(torch.tensor([bias_value]), requires_grad=True)

    def forward(self, x):
        return self.scale * x + self.bias


class HGConvLab(nn.Module):
    """HGNetV2's ConvBNAct with use_lab: conv, BN, ReLU, then the learnable affine."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.lab = LearnableAffineBlock(scale_value=1.5, bias_value=0.25)

    def forward(self, x):
        return self.lab(self.act(self.bn(self.conv(x))))


# ---- timm/models/nfnet.py: GammaAct and NormFreeBlock's forward (constant α, β, attn_gain; skipinit) -----
class GammaAct(nn.Module):
    def __init__(self, act_type='relu', gamma: float = 1.0, inplace: bool = False):
        super().__init__()
        self.act_fn = {'relu': F.relu, 'gelu': lambda x, inplace=False: F.gelu(x)}[act_type]  # timm: get_act_fn
        self.gamma = gamma
        self.inplace = inplace

    def forward(self, x):
        return self.act_fn(x, inplace=self.inplace).mul_(self.gamma)


class NormFreeBlockLite(nn.Module):
    """NormFreeBlock's forward as timm writes it (its convs ScaledStdConv2d; SE as the attn_last)."""

    def __init__(self, c=8, alpha=0.2, beta=1.0, skipinit=True, gamma_act=True):
        super().__init__()
        self.alpha, self.beta, self.attn_gain = alpha, beta, 2.0
        act = (lambda inplace=False: GammaAct('gelu', 1.7015043497085571, inplace)) if gamma_act else \
            (lambda inplace=False: nn.ReLU(inplace))
        self.act1, self.act2, self.act3 = act(), act(inplace=True), act()
        self.downsample = None
        self.conv1 = ScaledStdConv2d(c, c, 1)
        self.conv2 = ScaledStdConv2d(c, c, 3, groups=2)
        self.conv2b, self.attn = None, None
        self.conv3 = ScaledStdConv2d(c, c, 1, gain_init=1. if skipinit else 0.)
        self.attn_last = SqueezeExcite(c)
        self.drop_path = nn.Identity()
        self.skipinit_gain = nn.Parameter(torch.tensor(0.)) if skipinit else None

    def forward(self, x):
        out = self.act1(x) * self.beta

        # shortcut branch
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(out)

        # residual branch
        out = self.conv1(out)
        out = self.conv2(self.act2(out))
        if self.conv2b is not None:
            out = self.conv2b(self.act2b(out))
        if self.attn is not None:
            out = self.attn_gain * self.attn(out)
        out = self.conv3(self.act3(out))
        if self.attn_last is not None:
            out = self.attn_gain * self.attn_last(out)
        out = self.drop_path(out)

        if self.skipinit_gain is not None:
            out.mul_(self.skipinit_gain)
        out = out * self.alpha + shortcut
        return out


class SqueezeExcite(nn.Module):
    """timm's SEModule (the block's attn_last): pool, 1×1 conv, ReLU, 1×1 conv, sigmoid gate."""

    def __init__(self, c):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Conv2d(c, 4, 1), nn.ReLU(inplace=True), nn.Conv2d(4, c, 1)

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        return x * self.fc2(self.act(self.fc1(x_se))).sigmoid()


class NFNetLite(nn.Module):
    def __init__(self, skipinit=True, gamma_act=True):
        super().__init__()
        self.stem = ScaledStdConv2d(3, 8, 3, stride=2)
        self.block = NormFreeBlockLite(skipinit=skipinit, gamma_act=gamma_act)
        if skipinit:
            with torch.no_grad():
                self.block.skipinit_gain.fill_(0.75)  # trained: not its init, so the proof sees it applied

    def forward(self, x):
        return self.block(self.stem(x))


# ---- timm/layers/activations.py: GELU (an nn.Module, not torch's, whose forward is F.gelu), verbatim ----
class GELU(nn.Module):
    """Applies the Gaussian Error Linear Units function (w/ dummy inplace arg)
    """
    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.gelu(input)


class GELUTanh(nn.Module):
    """Applies the Gaussian Error Linear Units function (w/ dummy inplace arg)
    """
    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.gelu(input, approximate='tanh')


# ---- timm/layers/blur_pool.py: BlurPool2d (TResNet's anti-aliasing), verbatim less device/dtype ----------
class BlurPool2d(nn.Module):
    def __init__(self, channels=None, filt_size: int = 3, stride: int = 2, pad_mode: str = 'reflect') -> None:
        super().__init__()
        assert filt_size > 1
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.pad_mode = pad_mode
        self.padding = [get_padding(filt_size, stride, dilation=1)] * 4

        # Register empty buffer with correct shape
        filt_shape = (channels or 1, 1, filt_size, filt_size)
        self.register_buffer('filt', torch.empty(filt_shape), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._init_buffers()

    def _init_buffers(self) -> None:
        coeffs = torch.tensor(
            [math.comb(self.filt_size - 1, k) for k in range(self.filt_size)],
            device='cpu',
            dtype=torch.float32,
        ) / (2 ** (self.filt_size - 1))  # normalise so coefficients sum to 1
        blur_filter = (coeffs[:, None] * coeffs[None, :])[None, None, :, :]
        if self.channels is not None:
            blur_filter = blur_filter.repeat(self.channels, 1, 1, 1)
        self.filt.copy_(blur_filter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, mode=self.pad_mode)
        if self.channels is None:
            channels = x.shape[1]
            weight = self.filt.expand(channels, 1, self.filt_size, self.filt_size)
        else:
            channels = self.channels
            weight = self.filt
        return F.conv2d(x, weight, stride=self.stride, groups=channels)


class TResNetAA(nn.Module):
    """TResNet's anti-aliased stride: a 3×3 conv, then BlurPool2d (filt 3 and 5, stride 2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.aa = BlurPool2d(8, filt_size=3, stride=2)
        self.aa5 = BlurPool2d(8, filt_size=5, stride=2, pad_mode='constant')

    def forward(self, x):
        return self.aa5(self.aa(self.conv(x)))


# ---- timm/layers/grid.py, lambda_layer.py (LambdaNet) -----------------------------------------------
def ndgrid(*tensors) -> Tuple[torch.Tensor, ...]:
    return torch.meshgrid(*tensors, indexing='ij')


class LambdaLayer(nn.Module):
    """timm's LambdaLayer with the local lambda convolution (r set, as lambda_resnet26t)."""
    def __init__(self, dim, dim_out=None, feat_size=None, stride=1, num_heads=4, dim_head=16, r=9,
                 qk_ratio=1.0, qkv_bias=False):
        super().__init__()
        dim_out = dim_out or dim
        assert dim_out % num_heads == 0, ' should be divided by num_heads'
        self.dim_qk = dim_head or make_divisible(dim_out * qk_ratio, divisor=8) // num_heads
        self.num_heads = num_heads
        self.dim_v = dim_out // num_heads

        self.qkv = nn.Conv2d(
            dim,
            num_heads * self.dim_qk + self.dim_qk + self.dim_v,
            kernel_size=1,
            bias=qkv_bias,
        )
        self.norm_q = nn.BatchNorm2d(num_heads * self.dim_qk)
        self.norm_v = nn.BatchNorm2d(self.dim_v)

        assert r is not None
        self.conv_lambda = nn.Conv3d(1, self.dim_qk, (r, r, 1), padding=(r // 2, r // 2, 0))
        self.pos_emb = None
        self.rel_pos_indices = None

        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()

    def forward(self, x):
        B, C, H, W = x.shape
        M = H * W
        qkv = self.qkv(x)
        q, k, v = torch.split(qkv, [
            self.num_heads * self.dim_qk, self.dim_qk, self.dim_v], dim=1)
        q = self.norm_q(q).reshape(B, self.num_heads, self.dim_qk, M).transpose(-1, -2)  # B, num_heads, M, K
        v = self.norm_v(v).reshape(B, self.dim_v, M).transpose(-1, -2)  # B, M, V
        k = F.softmax(k.reshape(B, self.dim_qk, M), dim=-1)  # B, K, M

        content_lam = k @ v  # B, K, V
        content_out = q @ content_lam.unsqueeze(1)  # B, num_heads, M, V

        if self.pos_emb is None:
            position_lam = self.conv_lambda(v.reshape(B, 1, H, W, self.dim_v))  # B, H, W, V, K
            position_lam = position_lam.reshape(B, 1, self.dim_qk, H * W, self.dim_v).transpose(2, 3)  # B, 1, M, K, V
        position_out = (q.unsqueeze(-2) @ position_lam).squeeze(-2)  # B, num_heads, M, V

        out = (content_out + position_out).transpose(-1, -2).reshape(B, C, H, W)  # B, C (num_heads * V), H, W
        out = self.pool(out)
        return out


class LambdaNetLite(nn.Module):
    """A stem conv, then a lambda layer with stride 2 (as LambdaNet's bottlenecks hold it)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.lam = LambdaLayer(16, 16, stride=2, num_heads=4, dim_head=4, r=3)

    def forward(self, x):
        return self.lam(self.conv(x))


# ---- timm/models/efficientformer.py ------------------------------------------------------------------
class EfficientFormerAttention(torch.nn.Module):
    """timm's efficientformer.Attention (the bias table indexed by a persistent buffer)."""
    attention_bias_cache: Dict[str, torch.Tensor]

    def __init__(self, dim=384, key_dim=32, num_heads=8, attn_ratio=4, resolution=7):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.key_attn_dim = key_dim * num_heads
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        self.attn_ratio = attn_ratio

        self.qkv = nn.Linear(dim, self.key_attn_dim * 2 + self.val_attn_dim)
        self.proj = nn.Linear(self.val_attn_dim, dim)

        resolution = (resolution, resolution) if isinstance(resolution, int) else resolution
        pos = torch.stack(ndgrid(
            torch.arange(resolution[0], dtype=torch.long),
            torch.arange(resolution[1], dtype=torch.long)
        )).flatten(1)
        rel_pos = (pos[..., :, None] - pos[..., None, :]).abs()
        rel_pos = (rel_pos[0] * resolution[1]) + rel_pos[1]
        self.attention_biases = torch.nn.Parameter(torch.zeros(num_heads, resolution[0] * resolution[1]))
        self.register_buffer('attention_bias_idxs', rel_pos)
        self.attention_bias_cache = {}  # per-device attention_biases cache (data-parallel compat)

    @torch.no_grad()
    def train(self, mode=True):
        super().train(mode)
        if self.attention_bias_cache:
            self.attention_bias_cache = {}  # clear ab cache

    def get_attention_biases(self, device: torch.device) -> torch.Tensor:
        if torch.jit.is_tracing() or self.training:
            return self.attention_biases[:, self.attention_bias_idxs]
        else:
            device_key = str(device)
            if device_key not in self.attention_bias_cache:
                self.attention_bias_cache[device_key] = self.attention_biases[:, self.attention_bias_idxs]
            return self.attention_bias_cache[device_key]

    def forward(self, x):  # x (B,N,C)
        B, N, C = x.shape
        qkv = self.qkv(x)
        qkv = qkv.reshape(B, N, self.num_heads, -1).permute(0, 2, 1, 3)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.val_dim], dim=3)

        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn + self.get_attention_biases(x.device)

        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, self.val_attn_dim)
        x = self.proj(x)
        return x


class Flat(nn.Module):

    def __init__(self, ):
        super().__init__()

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        return x


class EfficientFormerLite(nn.Module):
    """A conv stem to a 4×3 map, Flat, then a MetaBlock1d as timm's (norm, attention, layer scale on
    the tokens' last axis, residual), the token mean and the distilled head's average."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.flat = Flat()
        self.norm1 = nn.LayerNorm(16)
        self.token_mixer = EfficientFormerAttention(16, key_dim=4, num_heads=2, attn_ratio=2, resolution=(4, 3))
        self.ls1 = LayerScale(16)
        self.head = nn.Linear(16, 5)
        self.head_dist = nn.Linear(16, 5)

    def forward(self, x):
        x = self.flat(self.stem(x))
        x = x + self.ls1(self.token_mixer(self.norm1(x)))
        x = x.mean(dim=1)
        x, x_dist = self.head(x), self.head_dist(x)
        return (x + x_dist) / 2


# ---- timm/models/levit.py -----------------------------------------------------------------------------
class LinearNorm(nn.Module):
    def __init__(self, in_features, out_features, bn_weight_init=1):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x):
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class Downsample(nn.Module):
    def __init__(self, stride, resolution, use_pool=False):
        super().__init__()
        self.stride = stride
        self.resolution = (resolution, resolution) if isinstance(resolution, int) else resolution
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False) if use_pool else None

    def forward(self, x):
        B, N, C = x.shape
        x = x.view(B, self.resolution[0], self.resolution[1], C)
        if self.pool is not None:
            x = self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        else:
            x = x[:, ::self.stride, ::self.stride]
        return x.reshape(B, -1, C)


class LevitAttentionDownsample(nn.Module):
    """timm's levit.AttentionDownsample (use_conv False): queries every stride-th token, the bias
    table indexed by a non-persistent buffer."""
    attention_bias_cache: Dict[str, torch.Tensor]

    def __init__(self, in_dim, out_dim, key_dim, num_heads=8, attn_ratio=2.0, stride=2, resolution=14,
                 act_layer=nn.SiLU):
        super().__init__()
        resolution = (resolution, resolution) if isinstance(resolution, int) else resolution

        self.stride = stride
        self.resolution = resolution
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.key_attn_dim = key_dim * num_heads
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * self.num_heads
        self.scale = key_dim ** -0.5

        ln_layer = LinearNorm
        self.kv = ln_layer(in_dim, self.val_attn_dim + self.key_attn_dim)
        self.q = nn.Sequential(OrderedDict([
            ('down', Downsample(stride=stride, resolution=resolution)),
            ('ln', ln_layer(in_dim, self.key_attn_dim))
        ]))
        self.proj = nn.Sequential(OrderedDict([
            ('act', act_layer()),
            ('ln', ln_layer(self.val_attn_dim, out_dim))
        ]))

        N_k = resolution[0] * resolution[1]
        N_q = -(-resolution[0] // stride) * -(-resolution[1] // stride)  # ceiling division
        self.attention_biases = nn.Parameter(torch.empty(num_heads, N_k))
        self.register_buffer('attention_bias_idxs', torch.empty((N_q, N_k), dtype=torch.long), persistent=False)
        self.attention_bias_cache = {}
        nn.init.zeros_(self.attention_biases)
        self.attention_bias_idxs.copy_(self._compute_attention_bias_idxs())

    @torch.no_grad()
    def train(self, mode=True):
        super().train(mode)
        if self.attention_bias_cache:
            self.attention_bias_cache = {}  # clear ab cache

    def _compute_attention_bias_idxs(self, device=None):
        """Compute relative position indices for attention bias."""
        k_pos = torch.stack(ndgrid(
            torch.arange(self.resolution[0], device=device, dtype=torch.long),
            torch.arange(self.resolution[1], device=device, dtype=torch.long),
        )).flatten(1)
        q_pos = torch.stack(ndgrid(
            torch.arange(0, self.resolution[0], step=self.stride, device=device, dtype=torch.long),
            torch.arange(0, self.resolution[1], step=self.stride, device=device, dtype=torch.long),
        )).flatten(1)
        rel_pos = (q_pos[..., :, None] - k_pos[..., None, :]).abs()
        rel_pos = (rel_pos[0] * self.resolution[1]) + rel_pos[1]
        return rel_pos

    def get_attention_biases(self, device: torch.device) -> torch.Tensor:
        if torch.jit.is_tracing() or self.training:
            return self.attention_biases[:, self.attention_bias_idxs]
        else:
            device_key = str(device)
            if device_key not in self.attention_bias_cache:
                self.attention_bias_cache[device_key] = self.attention_biases[:, self.attention_bias_idxs]
            return self.attention_bias_cache[device_key]

    def forward(self, x):
        B, N, C = x.shape
        k, v = self.kv(x).view(B, N, self.num_heads, -1).split([self.key_dim, self.val_dim], dim=3)
        k = k.permute(0, 2, 3, 1)  # BHCN
        v = v.permute(0, 2, 1, 3)  # BHNC
        q = self.q(x).view(B, -1, self.num_heads, self.key_dim).permute(0, 2, 1, 3)

        attn = q @ k * self.scale + self.get_attention_biases(x.device)
        attn = attn.softmax(dim=-1)

        x = (attn @ v).transpose(1, 2).reshape(B, -1, self.val_attn_dim)
        x = self.proj(x)
        return x


class LevitLite(nn.Module):
    """A conv stem to a 5×5 map (odd: the strided queries round up), tokens, then LeViT's
    downsampling attention and a LinearNorm."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down = LevitAttentionDownsample(8, 12, key_dim=4, num_heads=2, attn_ratio=2, stride=2, resolution=5)
        self.mlp = LinearNorm(12, 6)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)
        return self.mlp(self.down(x))


# ---- timm/models/mobilevit.py (MobileViTv2), timm/layers/norm.py GroupNorm1, mlp.py ConvMlp ------------
class GroupNorm1(nn.GroupNorm):
    """ Group Normalization with 1 group.
    Input: tensor in shape [B, C, *]
    """

    def __init__(self, num_channels: int, **kwargs):
        super().__init__(1, num_channels, **kwargs)
        self._fast_norm = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class ConvMlp(nn.Module):
    """ MLP using 1x1 convs that keeps spatial dims (for 2D NCHW tensors)
    """
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.ReLU, norm_layer=None,
                 bias=True, drop=0.):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        bias = (bias, bias)

        self.fc1 = nn.Conv2d(in_features, hidden_features, kernel_size=1, bias=bias[0])
        self.norm = norm_layer(hidden_features) if norm_layer else nn.Identity()
        self.act = act_layer()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Conv2d(hidden_features, out_features, kernel_size=1, bias=bias[1])

    def forward(self, x):
        x = self.fc1(x)
        x = self.norm(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        return x


class LinearSelfAttention(nn.Module):
    """timm's LinearSelfAttention (its self-attention path; the cross-attention one is left out)."""

    def __init__(self, embed_dim, attn_drop=0.0, proj_drop=0.0, bias=True):
        super().__init__()
        self.embed_dim = embed_dim

        self.qkv_proj = nn.Conv2d(
            in_channels=embed_dim,
            out_channels=1 + (2 * embed_dim),
            bias=bias,
            kernel_size=1,
        )
        self.attn_drop = nn.Dropout(attn_drop)
        self.out_proj = nn.Conv2d(
            in_channels=embed_dim,
            out_channels=embed_dim,
            bias=bias,
            kernel_size=1,
        )
        self.out_drop = nn.Dropout(proj_drop)

    def _forward_self_attn(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, P, N] --> [B, h + 2d, P, N]
        qkv = self.qkv_proj(x)

        # Project x into query, key and value
        # Query --> [B, 1, P, N]
        # value, key --> [B, d, P, N]
        query, key, value = qkv.split([1, self.embed_dim, self.embed_dim], dim=1)

        # apply softmax along N dimension
        context_scores = F.softmax(query, dim=-1)
        context_scores = self.attn_drop(context_scores)

        # Compute context vector
        # [B, d, P, N] x [B, 1, P, N] -> [B, d, P, N] --> [B, d, P, 1]
        context_vector = (key * context_scores).sum(dim=-1, keepdim=True)

        # combine context vector with values
        # [B, d, P, N] * [B, d, P, 1] --> [B, d, P, N]
        out = F.relu(value) * context_vector.expand_as(value)
        out = self.out_proj(out)
        out = self.out_drop(out)
        return out

    def forward(self, x: torch.Tensor, x_prev=None) -> torch.Tensor:
        if x_prev is None:
            return self._forward_self_attn(x)
        raise NotImplementedError('cross-attention is not copied')


class LinearTransformerBlock(nn.Module):
    def __init__(self, embed_dim, mlp_ratio=2.0, drop=0.0, attn_drop=0.0, drop_path=0.0, act_layer=None,
                 norm_layer=None):
        super().__init__()
        act_layer = act_layer or nn.SiLU
        norm_layer = norm_layer or GroupNorm1

        self.norm1 = norm_layer(embed_dim)
        self.attn = LinearSelfAttention(embed_dim=embed_dim, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path1 = nn.Identity()

        self.norm2 = norm_layer(embed_dim)
        self.mlp = ConvMlp(
            in_features=embed_dim,
            hidden_features=int(embed_dim * mlp_ratio),
            act_layer=act_layer,
            drop=drop)
        self.drop_path2 = nn.Identity()

    def forward(self, x: torch.Tensor, x_prev=None) -> torch.Tensor:
        if x_prev is None:
            # self-attention
            x = x + self.drop_path1(self.attn(self.norm1(x)))
        else:
            # cross-attention
            res = x
            x = self.norm1(x)  # norm
            x = self.attn(x, x_prev)  # attn
            x = self.drop_path1(x) + res  # residual

        # Feed forward network
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x


class MobileVitV2Block(nn.Module):
    """timm's MobileVitV2Block (conv_norm_act written as conv, batch norm, SiLU; coreml_exportable False):
    its forward reads the input's sizes and branches on them, which torch.fx cannot trace symbolically."""

    def __init__(self, in_chs, out_chs=None, kernel_size=3, mlp_ratio=2.0, transformer_dim=None,
                 transformer_depth=2, patch_size=8):
        super().__init__()
        out_chs = out_chs or in_chs
        transformer_dim = transformer_dim or make_divisible(in_chs)

        self.conv_kxk = nn.Sequential(nn.Conv2d(in_chs, in_chs, kernel_size, padding=kernel_size // 2, groups=in_chs,
                                                bias=False), nn.BatchNorm2d(in_chs), nn.SiLU())
        self.conv_1x1 = nn.Conv2d(in_chs, transformer_dim, kernel_size=1, bias=False)

        self.transformer = nn.Sequential(*[
            LinearTransformerBlock(transformer_dim, mlp_ratio=mlp_ratio, act_layer=nn.SiLU, norm_layer=GroupNorm1)
            for _ in range(transformer_depth)
        ])
        self.norm = GroupNorm1(transformer_dim)

        self.conv_proj = nn.Sequential(nn.Conv2d(transformer_dim, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs))

        self.patch_size = (patch_size, patch_size)
        self.patch_area = self.patch_size[0] * self.patch_size[1]
        self.coreml_exportable = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        patch_h, patch_w = self.patch_size
        new_h, new_w = math.ceil(H / patch_h) * patch_h, math.ceil(W / patch_w) * patch_w
        num_patch_h, num_patch_w = new_h // patch_h, new_w // patch_w  # n_h, n_w
        num_patches = num_patch_h * num_patch_w  # N
        if new_h != H or new_w != W:
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=True)

        # Local representation
        x = self.conv_kxk(x)
        x = self.conv_1x1(x)

        # Unfold (feature map -> patches), [B, C, H, W] -> [B, C, P, N]
        C = x.shape[1]
        if self.coreml_exportable:
            x = F.unfold(x, kernel_size=(patch_h, patch_w), stride=(patch_h, patch_w))
        else:
            x = x.reshape(B, C, num_patch_h, patch_h, num_patch_w, patch_w).permute(0, 1, 3, 5, 2, 4)
        x = x.reshape(B, C, -1, num_patches)

        # Global representations
        x = self.transformer(x)
        x = self.norm(x)

        # Fold (patches -> feature map), [B, C, P, N] --> [B, C, H, W]
        if self.coreml_exportable:
            x = x.reshape(B, C * patch_h * patch_w, num_patch_h, num_patch_w)
            x = F.pixel_shuffle(x, upscale_factor=patch_h)
        else:
            x = x.reshape(B, C, patch_h, patch_w, num_patch_h, num_patch_w).permute(0, 1, 4, 2, 5, 3)
            x = x.reshape(B, C, num_patch_h * patch_h, num_patch_w * patch_w)

        x = self.conv_proj(x)
        return x


class MobileVitV2Lite(nn.Module):
    """A stem conv, then a MobileViTv2 block with 2×2 patches (one transformer block)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = MobileVitV2Block(8, 8, transformer_dim=8, transformer_depth=1, patch_size=2)

    def forward(self, x):
        return self.block(self.stem(x))


# ---- timm/models/edgenext.py ----------------------------------------------------------------------------
class PositionalEncodingFourier(nn.Module):
    def __init__(self, hidden_dim=32, dim=768, temperature=10000.):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.scale = 2 * math.pi
        self.temperature = temperature
        self.hidden_dim = hidden_dim
        self.dim = dim

    def forward(self, shape: Tuple[int, int, int]):
        device = self.token_projection.weight.device
        dtype = self.token_projection.weight.dtype
        inv_mask = ~torch.zeros(shape).to(device=device, dtype=torch.bool)
        y_embed = inv_mask.cumsum(1, dtype=torch.float32)
        x_embed = inv_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale

        dim_t = torch.arange(self.hidden_dim, dtype=torch.int64, device=device).to(torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode='floor') / self.hidden_dim)

        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack(
            (pos_x[:, :, :, 0::2].sin(),
             pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack(
            (pos_y[:, :, :, 0::2].sin(),
             pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        pos = self.token_projection(pos.to(dtype))

        return pos


class CrossCovarianceAttn(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0., proj_drop=0.):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))

        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)

        # NOTE, this is NOT spatial attn, q, k, v are B, num_heads, C, L -->  C x C attn map
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v)

        x = x.permute(0, 3, 1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class EdgeNeXtXcaLite(nn.Module):
    """A conv stem, then the XCA half of timm's SplitTransposeBlock.forward as written there (tokens, the
    Fourier position encoding added, cross-covariance attention scaled by gamma_xca, back to a
    channels-last map, norm, gamma, permuted back)."""

    def __init__(self, dim=8, num_heads=2):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.pos_embd = PositionalEncodingFourier(hidden_dim=4, dim=dim)
        self.norm_xca = nn.LayerNorm(dim, eps=1e-6)
        self.gamma_xca = nn.Parameter(1e-6 * torch.ones(dim))
        self.xca = CrossCovarianceAttn(dim, num_heads=num_heads, qkv_bias=True)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))
        self.drop_path = nn.Identity()

    def forward(self, x):
        x = self.stem(x)
        B, C, H, W = x.shape
        x = x.reshape(B, C, H * W).permute(0, 2, 1)
        if self.pos_embd is not None:
            pos_encoding = self.pos_embd((B, H, W)).reshape(B, -1, x.shape[1]).permute(0, 2, 1)
            x = x + pos_encoding
        x = x + self.drop_path(self.gamma_xca * self.xca(self.norm_xca(x)))
        x = x.reshape(B, H, W, C)
        x = self.norm(x)
        if self.gamma is not None:
            x = self.gamma * x
        return x.permute(0, 3, 1, 2)


# ---- timm/layers/pos_embed_rel.py RelPosBias, timm/models/maxxvit.py Attention2d (CoAtNet) ------------
def gen_relative_position_index(q_size, k_size=None, class_token=False, device=None):
    assert k_size is None, 'Different q & k sizes not currently supported'  # FIXME

    coords = torch.stack(ndgrid(
        torch.arange(q_size[0], device=device),
        torch.arange(q_size[1], device=device),
    )).flatten(1)  # 2, Wh, Ww
    relative_coords = coords[:, :, None] - coords[:, None, :]  # 2, Wh*Ww, Wh*Ww
    relative_coords = relative_coords.permute(1, 2, 0)  # Qh*Qw, Kh*Kw, 2
    relative_coords[:, :, 0] += q_size[0] - 1  # shift to start from 0
    relative_coords[:, :, 1] += q_size[1] - 1
    relative_coords[:, :, 0] *= 2 * q_size[1] - 1
    relative_position_index = relative_coords.sum(-1)  # Wh*Ww, Wh*Ww
    return relative_position_index.contiguous()


class RelPosBias(nn.Module):
    """ Relative Position Bias
    Adapted from Swin-V1 relative position bias impl, modularized.
    """

    def __init__(self, window_size, num_heads, prefix_tokens=0):
        super().__init__()
        assert prefix_tokens == 0
        self.window_size = window_size
        self.window_area = window_size[0] * window_size[1]
        self.prefix_tokens = prefix_tokens
        self.bias_shape = (self.window_area + prefix_tokens,) * 2 + (num_heads,)

        num_relative_distance = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + 3 * prefix_tokens
        self.relative_position_bias_table = nn.Parameter(torch.zeros(num_relative_distance, num_heads))
        self.register_buffer(
            "relative_position_index",
            gen_relative_position_index(self.window_size).view(-1),
            persistent=False,
        )

    def get_bias(self) -> torch.Tensor:
        relative_position_bias = self.relative_position_bias_table[self.relative_position_index]
        # win_h * win_w, win_h * win_w, num_heads
        relative_position_bias = relative_position_bias.view(self.bias_shape).permute(2, 0, 1)
        return relative_position_bias.unsqueeze(0).contiguous()

    def forward(self, attn, shared_rel_pos=None):
        return attn + self.get_bias()


class MaxxVitAttention2d(nn.Module):
    """timm's maxxvit.Attention2d (head_first), its `fused_attn` given: True runs
    F.scaled_dot_product_attention with the bias as its mask (timm's default), False the attention as
    written out (TIMM_FUSED_ATTN=0)."""

    def __init__(self, dim, dim_out=None, dim_head=32, bias=True, expand_first=True, head_first=True,
                 window_size=(4, 4), fused_attn=False):
        super().__init__()
        dim_out = dim_out or dim
        dim_attn = dim_out if expand_first else dim
        self.num_heads = dim_attn // dim_head
        self.dim_head = dim_head
        self.head_first = head_first
        self.scale = dim_head ** -0.5
        self.fused_attn = fused_attn

        self.qkv = nn.Conv2d(dim, dim_attn * 3, 1, bias=bias)
        self.rel_pos = RelPosBias(window_size, num_heads=self.num_heads)
        self.attn_drop = nn.Dropout(0.)
        self.proj = nn.Conv2d(dim_attn, dim_out, 1, bias=bias)
        self.proj_drop = nn.Dropout(0.)

    def forward(self, x: torch.Tensor, shared_rel_pos=None) -> torch.Tensor:
        B, C, H, W = x.shape

        if self.head_first:
            q, k, v = self.qkv(x).view(B, self.num_heads, self.dim_head * 3, -1).chunk(3, dim=2)
        else:
            q, k, v = self.qkv(x).reshape(B, 3, self.num_heads, self.dim_head, -1).unbind(1)

        if self.fused_attn:
            attn_bias = None
            if self.rel_pos is not None:
                attn_bias = self.rel_pos.get_bias()
            elif shared_rel_pos is not None:
                attn_bias = shared_rel_pos

            x = torch.nn.functional.scaled_dot_product_attention(
                q.transpose(-1, -2).contiguous(),
                k.transpose(-1, -2).contiguous(),
                v.transpose(-1, -2).contiguous(),
                attn_mask=attn_bias,
                dropout_p=self.attn_drop.p if self.training else 0.,
            ).transpose(-1, -2).reshape(B, -1, H, W)
        else:
            q = q * self.scale
            attn = q.transpose(-2, -1) @ k
            if self.rel_pos is not None:
                attn = self.rel_pos(attn)
            elif shared_rel_pos is not None:
                attn = attn + shared_rel_pos
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = (v @ attn.transpose(-2, -1)).view(B, -1, H, W)

        x = self.proj(x)
        x = self.proj_drop(x)
        return x
