"""Per-layer cases: a tiny network whose last layer is the one under test, and that layer's
expected numbers written as hand arithmetic (never copied from cnncalc's output).

Each case: (id, input without batch, batch, layers, expected) with expected keys
shape (with batch), params, macs, and optionally ew (element-wise ops) and buffers.
"""
from __future__ import annotations

C = dict  # readability: C(type="conv2d", ...) is one layer

CASES = [
    # ---- convolution ----------------------------------------------------------------------
    ("conv2d", (3, 32, 32), 2, [C(type="conv2d", out_channels=8, kernel_size=3)],
     dict(shape=(2, 8, 30, 30), params=8 * 3 * 3 * 3 + 8, macs=2 * 8 * 30 * 30 * 3 * 3 * 3, ew=2 * 8 * 30 * 30)),
    ("conv2d-stride-pad-dilation", (4, 17, 17), 1,
     [C(type="conv2d", out_channels=16, kernel_size=3, stride=2, padding=2, dilation=2)],
     # ⌊(17 + 4 − 2·2 − 1)/2⌋ + 1 = 9
     dict(shape=(1, 16, 9, 9), params=16 * 4 * 9 + 16, macs=16 * 9 * 9 * 4 * 9)),
    ("conv2d-groups", (4, 10, 10), 1, [C(type="conv2d", out_channels=8, kernel_size=3, padding=1, groups=2)],
     dict(shape=(1, 8, 10, 10), params=8 * 2 * 9 + 8, macs=8 * 100 * 2 * 9)),
    ("conv2d-depthwise", (3, 8, 8), 1, [C(type="conv2d", out_channels=6, kernel_size=3, groups=3, bias=False)],
     dict(shape=(1, 6, 6, 6), params=6 * 1 * 9, macs=6 * 36 * 9, ew=0)),
    ("conv2d-asymmetric-reflect", (2, 9, 9), 1,
     [C(type="conv2d", out_channels=4, kernel_size=[3, 5], padding=[[1, 0], [2, 2]], padding_mode="reflect")],
     # H: 9 + 1 − 3 + 1 = 8;  W: 9 + 4 − 5 + 1 = 9
     dict(shape=(1, 4, 8, 9), params=4 * 2 * 15 + 4, macs=4 * 8 * 9 * 2 * 15)),
    ("conv2d-same-even-circular", (2, 8, 8), 1,
     [C(type="conv2d", out_channels=4, kernel_size=4, padding="same", padding_mode="circular")],
     dict(shape=(1, 4, 8, 8), params=4 * 2 * 16 + 4, macs=4 * 64 * 2 * 16)),
    ("conv2d-same-strided-tf", (2, 8, 7), 1,
     [C(type="conv2d", out_channels=4, kernel_size=3, stride=2, padding="same")],
     # TensorFlow's SAME: H' = ⌈8/2⌉ = 4 (pad (4−1)·2 + 3 − 8 = 1: 0 before, 1 after); W' = ⌈7/2⌉ = 4 (pad 2: 1, 1)
     dict(shape=(1, 4, 4, 4), params=4 * 2 * 9 + 4, macs=4 * 16 * 2 * 9, ew=4 * 16)),
    ("conv1d-same-strided-dilated-tf", (1, 10), 1,
     [C(type="conv1d", out_channels=2, kernel_size=3, stride=3, dilation=2, padding="same", bias=False)],
     # L' = ⌈10/3⌉ = 4; pad (4−1)·3 + 2·2 + 1 − 10 = 4: 2 before, 2 after
     dict(shape=(1, 2, 4), params=2 * 3, macs=2 * 4 * 3, ew=0)),
    ("conv2d-valid-replicate", (1, 5, 5), 1,
     [C(type="conv2d", out_channels=3, kernel_size=2, padding="valid", bias=False, padding_mode="replicate")],
     dict(shape=(1, 3, 4, 4), params=3 * 4, macs=3 * 16 * 4)),
    ("conv2d-per-axis", (2, 12, 10), 1,
     [C(type="conv2d", out_channels=2, kernel_size=[3, 1], stride=[2, 1], padding=[1, 0], dilation=[2, 1])],
     # H: ⌊(12 + 2 − 4 − 1)/2⌋ + 1 = 5;  W: 10
     dict(shape=(1, 2, 5, 10), params=2 * 2 * 3 + 2, macs=2 * 50 * 2 * 3)),
    ("conv1d", (3, 50), 2, [C(type="conv1d", out_channels=4, kernel_size=5, stride=2, padding=1)],
     # ⌊(50 + 2 − 5)/2⌋ + 1 = 24
     dict(shape=(2, 4, 24), params=4 * 3 * 5 + 4, macs=2 * 4 * 24 * 3 * 5)),
    ("conv3d", (2, 8, 16, 16), 1, [C(type="conv3d", out_channels=4, kernel_size=3, stride=[1, 2, 2], padding=1)],
     dict(shape=(1, 4, 8, 8, 8), params=4 * 2 * 27 + 4, macs=4 * 8 * 8 * 8 * 2 * 27)),
    ("conv_transpose2d", (8, 5, 5), 1,
     [C(type="conv_transpose2d", out_channels=4, kernel_size=3, stride=2, padding=1, output_padding=1)],
     # (5 − 1)·2 − 2 + 2 + 1 + 1 = 10; MACs = C_in·H·W·(C_out/g)·K², not ×stride²
     dict(shape=(1, 4, 10, 10), params=8 * 4 * 9 + 4, macs=8 * 25 * 4 * 9)),
    ("conv_transpose2d-groups-dilation", (4, 4, 4), 1,
     [C(type="conv_transpose2d", out_channels=6, kernel_size=3, stride=2, groups=2, dilation=2)],
     # (4 − 1)·2 + 2·2 + 1 = 11
     dict(shape=(1, 6, 11, 11), params=4 * 3 * 9 + 6, macs=4 * 16 * 3 * 9)),
    ("conv_transpose1d", (3, 10), 1, [C(type="conv_transpose1d", out_channels=2, kernel_size=4, stride=2, padding=1)],
     dict(shape=(1, 2, 20), params=3 * 2 * 4 + 2, macs=3 * 10 * 2 * 4)),
    ("conv_transpose3d", (3, 2, 3, 4), 1, [C(type="conv_transpose3d", out_channels=2, kernel_size=2, stride=2)],
     dict(shape=(1, 2, 4, 6, 8), params=3 * 2 * 8 + 2, macs=3 * 24 * 2 * 8)),
    ("deform_conv2d", (2, 6, 6), 1, [C(type="deform_conv2d", out_channels=4, kernel_size=3, padding=1)],
     # main 4·2·9 + 4; offset conv 2 → 2·9 = 18 channels: 18·2·9 + 18
     dict(shape=(1, 4, 6, 6), params=4 * 2 * 9 + 4 + 18 * 2 * 9 + 18, macs=36 * 9 * (4 * 2 + 18 * 2))),
    ("deform_conv2d-modulated-groups", (4, 5, 5), 1,
     [C(type="deform_conv2d", out_channels=4, kernel_size=3, padding=1, groups=2, offset_groups=2, modulated=True,
        bias=False)],
     # offsets + masks: 3·2·9 = 54 channels
     dict(shape=(1, 4, 5, 5), params=4 * 2 * 9 + 54 * 4 * 9 + 54, macs=25 * 9 * (4 * 2 + 54 * 4))),
    ("separable_conv2d", (3, 6, 6), 1,
     [C(type="separable_conv2d", out_channels=8, kernel_size=3, padding=1, depth_multiplier=2)],
     # depthwise 6·1·9, pointwise 8·6 + 8
     dict(shape=(1, 8, 6, 6), params=6 * 9 + 8 * 6 + 8, macs=36 * 6 * 9 + 36 * 8 * 6)),
    ("spatial_separable_conv2d", (2, 7, 7), 1,
     [C(type="spatial_separable_conv2d", out_channels=4, kernel_size=3, stride=2, padding=1)],
     # 3×1 stride (2,1): 4×7; then 1×3 stride (1,2): 4×4
     dict(shape=(1, 4, 4, 4), params=4 * 2 * 3 + 4 + 4 * 4 * 3 + 4, macs=4 * 4 * 7 * 2 * 3 + 4 * 4 * 4 * 4 * 3)),
    ("locally_connected2d", (3, 5, 5), 1, [C(type="locally_connected2d", out_channels=2, kernel_size=3)],
     # one 2 × 27 filter per output position (9 positions) + a bias per output element
     dict(shape=(1, 2, 3, 3), params=9 * 2 * 27 + 2 * 9, macs=2 * 9 * 27)),
    ("tiled_conv2d", (3, 5, 5), 1, [C(type="tiled_conv2d", out_channels=2, kernel_size=2, tile_size=2)],
     dict(shape=(1, 2, 4, 4), params=2 * 2 * 2 * 12 + 2, macs=2 * 16 * 12)),
    # ---- pooling ----------------------------------------------------------------------------
    ("maxpool2d", (2, 9, 9), 1, [C(type="maxpool2d", kernel_size=3, stride=2, padding=1)],
     dict(shape=(1, 2, 5, 5), params=0, macs=0, ew=2 * 25 * 9)),
    ("maxpool2d-ceil", (1, 8, 8), 1, [C(type="maxpool2d", kernel_size=3, stride=2, ceil_mode=True)],
     # ⌈(8 − 3)/2⌉ + 1 = 4 (floor would give 3)
     dict(shape=(1, 1, 4, 4), params=0, macs=0)),
    ("maxpool2d-ceil-drops-window-in-padding", (1, 5, 5), 1,
     [C(type="maxpool2d", kernel_size=2, stride=2, padding=1, ceil_mode=True)],
     # ⌈(5 + 2 − 2)/2⌉ + 1 = 4, but window 4 would start at 6 ≥ 5 + 1: dropped → 3
     dict(shape=(1, 1, 3, 3), params=0, macs=0)),
    ("maxpool2d-dilation", (1, 6, 6), 1, [C(type="maxpool2d", kernel_size=2, stride=1, dilation=2)],
     dict(shape=(1, 1, 4, 4), params=0, macs=0)),
    ("maxpool1d", (3, 9), 1, [C(type="maxpool1d", kernel_size=2)], dict(shape=(1, 3, 4), params=0, macs=0)),
    ("maxpool3d", (1, 4, 4, 4), 1, [C(type="maxpool3d", kernel_size=2)], dict(shape=(1, 1, 2, 2, 2), params=0, macs=0)),
    ("avgpool2d", (2, 7, 7), 1,
     [C(type="avgpool2d", kernel_size=2, stride=2, padding=1, ceil_mode=True, count_include_pad=False)],
     # ⌈7/2⌉ + 1 = 5, the last window starts at 8 ≥ 7 + 1: dropped → 4
     dict(shape=(1, 2, 4, 4), params=0, macs=0, ew=2 * 16 * 4)),
    ("avgpool1d", (2, 10), 1, [C(type="avgpool1d", kernel_size=3, stride=2)], dict(shape=(1, 2, 4), params=0, macs=0)),
    ("avgpool3d", (1, 4, 6, 6), 1, [C(type="avgpool3d", kernel_size=[2, 3, 3])],
     dict(shape=(1, 1, 2, 2, 2), params=0, macs=0)),
    ("lppool2d", (3, 6, 6), 1, [C(type="lppool2d", norm_type=2, kernel_size=2)],
     dict(shape=(1, 3, 3, 3), params=0, macs=0, ew=27 * (4 + 2))),
    ("lppool1d", (2, 9), 1, [C(type="lppool1d", norm_type=3, kernel_size=3, stride=2)],
     dict(shape=(1, 2, 4), params=0, macs=0)),
    ("lppool3d", (2, 4, 5, 4), 1, [C(type="lppool3d", norm_type=2, kernel_size=2)],
     # ⌊4/2⌋, ⌊5/2⌋, ⌊4/2⌋; each output: 2·2·2 powers summed, a scale and the root
     dict(shape=(1, 2, 2, 2, 2), params=0, macs=0, ew=2 * 8 * (8 + 2))),
    ("lppool3d-stride", (1, 5, 5, 5), 2, [C(type="lppool3d", norm_type=3.0, kernel_size=[3, 2, 2], stride=[2, 1, 2],
                                            ceil_mode=True)],
     # ⌈(5 − 3)/2⌉ + 1 = 2, (5 − 2)/1 + 1 = 4, ⌈(5 − 2)/2⌉ + 1 = 3 (its window starts at 4 < 5: kept)
     dict(shape=(2, 1, 2, 4, 3), params=0, macs=0, ew=2 * 24 * (12 + 2))),
    ("adaptive_avgpool2d", (2, 7, 7), 1, [C(type="adaptive_avgpool2d", output_size=3)],
     # windows [0,3) [2,5) [4,7): width 3
     dict(shape=(1, 2, 3, 3), params=0, macs=0, ew=18 * 9)),
    ("adaptive_maxpool2d", (1, 5, 6), 1, [C(type="adaptive_maxpool2d", output_size=[2, None])],
     dict(shape=(1, 1, 2, 6), params=0, macs=0, ew=12 * 3 * 1)),
    ("adaptive_avgpool1d", (2, 10), 1, [C(type="adaptive_avgpool1d", output_size=4)], dict(shape=(1, 2, 4), params=0, macs=0)),
    ("adaptive_maxpool1d", (2, 9), 1, [C(type="adaptive_maxpool1d", output_size=3)], dict(shape=(1, 2, 3), params=0, macs=0)),
    ("adaptive_avgpool3d", (1, 4, 4, 4), 1, [C(type="adaptive_avgpool3d", output_size=2)],
     dict(shape=(1, 1, 2, 2, 2), params=0, macs=0)),
    ("adaptive_maxpool3d", (1, 4, 5, 6), 1, [C(type="adaptive_maxpool3d", output_size=[1, 2, 3])],
     dict(shape=(1, 1, 1, 2, 3), params=0, macs=0)),
    ("global_avgpool", (8, 5, 5), 1, [C(type="global_avgpool")], dict(shape=(1, 8, 1, 1), params=0, macs=0, ew=200)),
    ("global_maxpool", (4, 3, 3, 3), 1, [C(type="global_maxpool", keepdims=False)], dict(shape=(1, 4), params=0, macs=0)),
    # ---- normalisation ----------------------------------------------------------------------
    ("batchnorm2d", (8, 4, 4), 2, [C(type="batchnorm2d")],
     dict(shape=(2, 8, 4, 4), params=2 * 8, buffers=2 * 8 + 1, macs=0, ew=2 * 256)),
    ("batchnorm2d-plain", (8, 4, 4), 2, [C(type="batchnorm2d", affine=False, track_running_stats=False)],
     dict(shape=(2, 8, 4, 4), params=0, buffers=0, macs=0)),
    ("batchnorm1d", (10,), 4, [C(type="batchnorm1d")], dict(shape=(4, 10), params=20, buffers=21, macs=0)),
    ("batchnorm3d", (3, 2, 2, 2), 2, [C(type="batchnorm3d")], dict(shape=(2, 3, 2, 2, 2), params=6, buffers=7, macs=0)),
    ("instancenorm2d", (4, 5, 5), 2, [C(type="instancenorm2d")], dict(shape=(2, 4, 5, 5), params=0, buffers=0, macs=0)),
    ("instancenorm1d", (3, 7), 2, [C(type="instancenorm1d", affine=True, track_running_stats=True)],
     dict(shape=(2, 3, 7), params=6, buffers=7, macs=0)),
    ("instancenorm3d", (2, 3, 3, 3), 2, [C(type="instancenorm3d", affine=True)],
     dict(shape=(2, 2, 3, 3, 3), params=4, buffers=0, macs=0)),
    ("layernorm", (4, 5, 5), 2, [C(type="layernorm")], dict(shape=(2, 4, 5, 5), params=2 * 100, macs=0)),
    ("layernorm-last-axis", (4, 5, 5), 2, [C(type="layernorm", normalized_shape=5, bias=False)],
     dict(shape=(2, 4, 5, 5), params=5, macs=0)),
    ("groupnorm", (6, 4, 4), 1, [C(type="groupnorm", num_groups=2)], dict(shape=(1, 6, 4, 4), params=12, macs=0)),
    ("rmsnorm", (4, 5, 5), 2, [C(type="rmsnorm")], dict(shape=(2, 4, 5, 5), params=100, macs=0, ew=2 * 2 * 100)),
    ("rmsnorm-last-axis-eps", (4, 5, 6), 1, [C(type="rmsnorm", normalized_shape=6, eps=0.001)],
     dict(shape=(1, 4, 5, 6), params=6, macs=0, ew=2 * 120)),
    ("rmsnorm-plain", (8,), 3, [C(type="rmsnorm", elementwise_affine=False)], dict(shape=(3, 8), params=0, macs=0, ew=2 * 24)),
    # GRN: γ, β of C each; 6 ops per element, 3 per sample and channel, 2 per sample
    ("grn", (4, 5, 6), 2, [C(type="grn")], dict(shape=(2, 4, 5, 6), params=2 * 4, macs=0,
                                                 ew=6 * 2 * 4 * 30 + 3 * 2 * 4 + 2 * 2)),
    ("grn-channels-last", (3, 4, 5), 2, [C(type="permute", dims=[0, 2, 3, 1]), C(type="grn", channels_last=True, eps=0.0001)],
     dict(shape=(2, 4, 5, 3), params=2 * 3, macs=0, ew=6 * 2 * 60 + 3 * 2 * 3 + 2 * 2)),
    ("local_response_norm", (8, 4, 4), 1, [C(type="local_response_norm", size=5)],
     dict(shape=(1, 8, 4, 4), params=0, macs=0, ew=(5 + 3) * 128)),
    # ---- activations and regularisation ------------------------------------------------------
    *[(t, (3, 4, 4), 1, [C(type=t)], dict(shape=(1, 3, 4, 4), params=0, macs=0, ew=48))
      for t in ("relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                "softmax", "log_softmax", "softmax2d", "mish", "softplus", "hardtanh", "celu", "selu")],
    ("hardtanh-range-inplace", (2, 3, 3), 2, [C(type="relu"), C(type="hardtanh", min_val=-2.0, max_val=0.5, inplace=True)],
     dict(shape=(2, 2, 3, 3), params=0, macs=0, ew=2 * 18)),
    ("celu-alpha-inplace", (2, 3, 3), 1, [C(type="celu", alpha=0.5, inplace=True)], dict(shape=(1, 2, 3, 3), params=0, macs=0, ew=18)),
    ("softplus-beta", (5,), 3, [C(type="softplus", beta=2.0, threshold=10.0)], dict(shape=(3, 5), params=0, macs=0, ew=15)),
    ("clamp", (3, 4, 4), 1, [C(type="clamp", min=-0.5, max=0.5)], dict(shape=(1, 3, 4, 4), params=0, macs=0, ew=48)),
    ("clamp-min-inplace", (3, 4, 4), 2, [C(type="conv2d", out_channels=2, kernel_size=1),
                                         C(type="clamp", min=0.1, inplace=True)],
     dict(shape=(2, 2, 4, 4), params=0, macs=0, ew=2 * 32)),
    ("clamp-max-only", (5,), 3, [C(type="clamp", max=0.25)], dict(shape=(3, 5), params=0, macs=0, ew=15)),
    ("rrelu", (3, 4, 4), 1, [C(type="rrelu")], dict(shape=(1, 3, 4, 4), params=0, macs=0, ew=48)),
    ("rrelu-range-inplace", (3, 4, 4), 2, [C(type="conv2d", out_channels=2, kernel_size=1),
                                           C(type="rrelu", lower=0.1, upper=0.3, inplace=True)],
     dict(shape=(2, 2, 4, 4), params=0, macs=0, ew=2 * 32)),
    ("prelu", (3, 4, 4), 1, [C(type="prelu")], dict(shape=(1, 3, 4, 4), params=1, macs=0)),
    ("prelu-channels", (3, 4, 4), 1, [C(type="prelu", num_parameters="channels")], dict(shape=(1, 3, 4, 4), params=3, macs=0)),
    *[(t, (2, 4, 4, 4) if t == "dropout3d" else (2, 4) if t == "dropout1d" else (2, 4, 4), 1, [C(type=t, p=0.3)],
       dict(shape=(1, 2, 4, 4, 4) if t == "dropout3d" else (1, 2, 4) if t == "dropout1d" else (1, 2, 4, 4),
            params=0, macs=0, ew=0))
      for t in ("dropout", "dropout1d", "dropout2d", "dropout3d")],
    # ---- reshaping, linear, resampling, padding ------------------------------------------------
    ("identity", (3, 4, 4), 1, [C(type="identity")], dict(shape=(1, 3, 4, 4), params=0, macs=0)),
    ("flatten", (3, 4, 5), 2, [C(type="flatten")], dict(shape=(2, 60), params=0, macs=0)),
    ("flatten-spatial", (3, 4, 5), 2, [C(type="flatten", start_dim=2)], dict(shape=(2, 3, 20), params=0, macs=0)),
    ("linear", (10,), 2, [C(type="linear", out_features=5)], dict(shape=(2, 5), params=10 * 5 + 5, macs=2 * 10 * 5, ew=10)),
    ("linear-nd", (3, 7, 10), 2, [C(type="linear", out_features=5, bias=False)],
     # every leading axis multiplies: 2·3·7 rows of 10 → 5
     dict(shape=(2, 3, 7, 5), params=50, macs=2 * 3 * 7 * 10 * 5)),
    ("upsample-nearest", (2, 3, 4), 1, [C(type="upsample", scale_factor=2)], dict(shape=(1, 2, 6, 8), params=0, macs=0, ew=0)),
    ("upsample-nearest-fraction", (2, 3, 4), 1, [C(type="upsample", scale_factor=1.5)],
     dict(shape=(1, 2, 4, 6), params=0, macs=0)),
    ("upsample-bilinear-size", (2, 3, 4), 1, [C(type="upsample", size=[5, 7], mode="bilinear")],
     dict(shape=(1, 2, 5, 7), params=0, macs=0, ew=70 * (4 * 2 - 1))),
    ("upsample-bilinear-align", (2, 4, 4), 1, [C(type="upsample", scale_factor=2, mode="bilinear", align_corners=True)],
     dict(shape=(1, 2, 8, 8), params=0, macs=0)),
    ("upsample-linear", (2, 5), 1, [C(type="upsample", scale_factor=3, mode="linear")], dict(shape=(1, 2, 15), params=0, macs=0)),
    ("upsample-trilinear", (1, 2, 2, 2), 1, [C(type="upsample", scale_factor=2, mode="trilinear")],
     dict(shape=(1, 1, 4, 4, 4), params=0, macs=0)),
    ("constant_pad1d", (2, 5), 1, [C(type="constant_pad1d", padding=[2, 1], value=-1.5)],
     dict(shape=(1, 2, 8), params=0, macs=0, ew=0)),
    ("constant_pad2d", (2, 4, 4), 2, [C(type="constant_pad2d", padding=[1, 0, 2, 1], value=0.5)],
     dict(shape=(2, 2, 7, 5), params=0, macs=0, ew=0)),  # W: 4 + 1 + 0; H: 4 + 2 + 1
    ("constant_pad3d-crop", (1, 4, 4, 4), 1, [C(type="constant_pad3d", padding=1, value=3.0),
                                             C(type="constant_pad3d", padding=[-1, 0, 0, 0, -2, 0], value=3.0)],
     dict(shape=(1, 1, 4, 6, 5), params=0, macs=0, ew=0)),  # 6 each, then W − 1, D − 2
    ("zero_pad2d", (1, 5, 5), 1, [C(type="zero_pad2d", padding=[1, 2, 3, 4])],
     # [left, right, top, bottom]: W 5 + 3, H 5 + 7
     dict(shape=(1, 1, 12, 8), params=0, macs=0)),
    ("zero_pad1d", (2, 5), 1, [C(type="zero_pad1d", padding=[0, 3])], dict(shape=(1, 2, 8), params=0, macs=0)),
    ("zero_pad3d", (1, 2, 2, 2), 1, [C(type="zero_pad3d", padding=1)], dict(shape=(1, 1, 4, 4, 4), params=0, macs=0)),
    ("reflection_pad1d", (2, 5), 1, [C(type="reflection_pad1d", padding=2)], dict(shape=(1, 2, 9), params=0, macs=0)),
    ("reflection_pad2d", (1, 4, 4), 1, [C(type="reflection_pad2d", padding=[1, 1, 2, 0])], dict(shape=(1, 1, 6, 6), params=0, macs=0)),
    ("reflection_pad3d", (1, 3, 3, 3), 1, [C(type="reflection_pad3d", padding=1)], dict(shape=(1, 1, 5, 5, 5), params=0, macs=0)),
    ("replication_pad1d", (2, 5), 1, [C(type="replication_pad1d", padding=3)], dict(shape=(1, 2, 11), params=0, macs=0)),
    ("replication_pad2d", (1, 4, 4), 1, [C(type="replication_pad2d", padding=2)], dict(shape=(1, 1, 8, 8), params=0, macs=0)),
    ("replication_pad3d", (1, 2, 2, 2), 1, [C(type="replication_pad3d", padding=1)], dict(shape=(1, 1, 4, 4, 4), params=0, macs=0)),
    ("circular_pad1d", (2, 5), 1, [C(type="circular_pad1d", padding=2)], dict(shape=(1, 2, 9), params=0, macs=0)),
    ("circular_pad2d", (1, 4, 4), 1, [C(type="circular_pad2d", padding=1)], dict(shape=(1, 1, 6, 6), params=0, macs=0)),
    ("circular_pad3d", (1, 2, 3, 3), 1, [C(type="circular_pad3d", padding=1)], dict(shape=(1, 1, 4, 5, 5), params=0, macs=0)),
    ("unfold", (2, 5, 6), 2, [C(type="unfold", kernel_size=3, padding=1)],
     # H' = 5 + 2 − 3 + 1 = 5, W' = 6: L = 30 columns of 2·3·3 values
     dict(shape=(2, 2 * 9, 30), params=0, macs=0, ew=0)),
    ("unfold-rect", (3, 4, 6), 1, [C(type="unfold", kernel_size=[2, 3], padding=[0, 1])],
     # H' = 4 − 2 + 1 = 3, W' = 6 + 2 − 3 + 1 = 6
     dict(shape=(1, 3 * 6, 18), params=0, macs=0, ew=0)),
    ("fold", (8, 4), 1, [C(type="fold", output_size=4, kernel_size=2, stride=2)],
     # 8 = 2 channels · 2·2; 4×4 holds 2·2 = 4 blocks = L
     dict(shape=(1, 2, 4, 4), params=0, macs=0, ew=8 * 4)),
    ("fold-gaps", (4, 6), 2, [C(type="fold", output_size=[5, 7], kernel_size=[1, 2], stride=[2, 3])],
     # 4 = 2 channels · 1·2; blocks ⌊(5 − 1)/2⌋ + 1 = 3 by ⌊(7 − 2)/3⌋ + 1 = 2: L = 6
     dict(shape=(2, 2, 5, 7), params=0, macs=0, ew=2 * 4 * 6)),
    # max_unpool: x goes where the max pool's indices point, zeros elsewhere (a scatter: no arithmetic)
    ("max_unpool1d", (2, 10), 1, [C(name="p", type="maxpool1d", kernel_size=3, stride=2, return_indices=True),
                                  C(type="max_unpool1d", kernel_size=3, stride=2, output_size=10, inputs=["p", "p"])],
     # pool: ⌊(10 − 3)/2⌋ + 1 = 4; unpool (4 − 1)·2 + 3 = 9, output_size 10 (the pool's input) lies in (7, 11)
     dict(shape=(1, 2, 10), params=0, macs=0, ew=0)),
    ("max_unpool2d", (3, 7, 6), 2, [C(name="p", type="maxpool2d", kernel_size=2, return_indices=True),
                                    C(name="mix", type="conv2d", out_channels=3, kernel_size=1, bias=False),
                                    C(type="max_unpool2d", kernel_size=2, output_size=[7, 6], inputs=["mix", "p"])],
     # pool ⌊7/2⌋ = 3 by 3; unpool (3 − 1)·2 + 2 = 6 per axis; output_size 7×6 (the pool's input; 7 < 6 + 2)
     dict(shape=(2, 3, 7, 6), params=0, macs=0, ew=0)),
    ("max_unpool3d", (1, 4, 4, 6), 1, [C(name="p", type="maxpool3d", kernel_size=2, return_indices=True),
                                       C(type="max_unpool3d", kernel_size=2, inputs=["p", "p"])],
     # pool 2×2×3; unpool (2 − 1)·2 + 2 = 4, (3 − 1)·2 + 2 = 6: the pool's input again
     dict(shape=(1, 1, 4, 4, 6), params=0, macs=0, ew=0)),
    ("channel_shuffle", (6, 3, 4), 2, [C(type="channel_shuffle", groups=3)],
     dict(shape=(2, 6, 3, 4), params=0, macs=0, ew=0)),  # a permutation of the channels: no arithmetic
    ("softmax-spatial", (2, 4, 5), 1, [C(type="conv2d", out_channels=2, kernel_size=3, padding=1),
                                        C(type="softmax", dim=-1)],
     dict(shape=(1, 2, 4, 5), params=0, macs=0, ew=2 * 4 * 5)),  # each unit reads its whole row
    # torch floors the double product: 10 · 0.7 = 7.000000000000001 → 7 (the exact 10 · 7/10 floors to 7 too,
    # but 6 · 0.3333333333333333 is exactly 1.99999999999999988… and torch's double product rounds to 2)
    ("upsample-float-scale", (1, 10, 10), 1, [C(type="upsample", scale_factor=0.7)],
     dict(shape=(1, 1, 7, 7), params=0, macs=0, ew=0)),
    ("upsample-third", (1, 6, 6), 1, [C(type="upsample", scale_factor=0.3333333333333333)],
     dict(shape=(1, 1, 2, 2), params=0, macs=0, ew=0)),
    ("upsample-align-from-1x1", (2, 4, 4), 1, [C(type="adaptive_avgpool2d", output_size=1),
                                               C(type="upsample", size=5, mode="bilinear", align_corners=True)],
     dict(shape=(1, 2, 5, 5), params=0, macs=0, ew=2 * 25 * (2 * 2 * 2 - 1))),
    ("hardswish-inplace", (3, 4, 4), 1, [C(type="conv2d", out_channels=2, kernel_size=1), C(type="hardswish", inplace=True)],
     dict(shape=(1, 2, 4, 4), params=0, macs=0, ew=2 * 16)),
    ("relu-inplace", (3, 4, 4), 1, [C(type="conv2d", out_channels=2, kernel_size=1), C(type="relu", inplace=True)],
     dict(shape=(1, 2, 4, 4), params=0, macs=0, ew=2 * 16)),
    ("zero_pad2d-negative-crops", (2, 6, 7), 1, [C(type="zero_pad2d", padding=[-1, 2, -2, -1])],
     # W: 7 − 1 + 2 = 8;  H: 6 − 2 − 1 = 3
     dict(shape=(1, 2, 3, 8), params=0, macs=0, ew=0)),
    ("upsample-nearest-exact-down", (2, 8, 9), 1, [C(type="upsample", scale_factor=0.5, mode="nearest-exact")],
     dict(shape=(1, 2, 4, 4), params=0, macs=0, ew=0)),
    ("upsample-nearest-exact-up", (2, 3, 4), 1, [C(type="upsample", scale_factor=2, mode="nearest-exact")],
     dict(shape=(1, 2, 6, 8), params=0, macs=0, ew=0)),
    ("upsample-bicubic", (2, 4, 5), 1, [C(type="upsample", scale_factor=2, mode="bicubic")],
     # 4² taps · 2 − 1 ops per output element
     dict(shape=(1, 2, 8, 10), params=0, macs=0, ew=2 * 8 * 10 * (4 ** 2 * 2 - 1))),
    ("add-broadcast", (4, 5, 5), 1, [C(name="g", type="global_avgpool"), C(type="add", inputs=["input", "g"])],
     dict(shape=(1, 4, 5, 5), params=0, macs=0, ew=(2 - 1) * 4 * 5 * 5)),
    ("replication_pad-wider-than-input", (1, 3), 1, [C(type="replication_pad1d", padding=4)],
     dict(shape=(1, 1, 11), params=0, macs=0, ew=0)),
    ("conv1d-replicate-wider-than-input", (1, 3), 1,
     [C(type="conv1d", out_channels=1, kernel_size=3, padding=4, padding_mode="replicate")],
     dict(shape=(1, 1, 9), params=3 + 1, macs=9 * 3, ew=9)),
    # ---- modern CNNs (#13) ------------------------------------------------------------------------
    ("separable_conv2d-same", (4, 8, 8), 1, [C(type="separable_conv2d", out_channels=8, kernel_size=3, dilation=2,
                                                padding="same")],
     # depthwise 4·1·3·3, pointwise 8·4 + 8; H' = 8: the dilated 3×3 pads 2 on each side
     dict(shape=(1, 8, 8, 8), params=4 * 9 + 8 * 4 + 8, macs=64 * 4 * 9 + 64 * 4 * 8, ew=8 * 64)),
    ("layernorm2d", (4, 5, 5), 2, [C(type="layernorm2d")], dict(shape=(2, 4, 5, 5), params=2 * 4, macs=0,
                                                                ew=2 * 2 * 4 * 25)),
    ("layer_scale", (4, 3, 3), 2, [C(type="conv2d", out_channels=4, kernel_size=1, bias=False),
                                   C(type="layer_scale", init_value=0.5)],
     dict(shape=(2, 4, 3, 3), params=4, macs=0, ew=2 * 4 * 9)),
    ("drop_path", (3, 4, 4), 2, [C(type="conv2d", out_channels=3, kernel_size=1, bias=False),
                                 C(type="drop_path", p=0.2)], dict(shape=(2, 3, 4, 4), params=0, macs=0, ew=0)),
    ("narrow-chunk", (6, 4, 4), 1, [C(type="conv2d", out_channels=6, kernel_size=1, bias=False),
                                    C(type="narrow", chunks=2, chunk=1)], dict(shape=(1, 3, 4, 4), params=0, macs=0, ew=0)),
    ("narrow-chunk-uneven", (5, 3, 3), 1, [C(type="narrow", chunks=2, chunk=1)],  # ⌈5/2⌉ = 3, then the last 2
     dict(shape=(1, 2, 3, 3), params=0, macs=0, ew=0)),
    ("narrow-start-length", (5, 2, 2), 1, [C(type="narrow", start=1, length=3)],
     dict(shape=(1, 3, 2, 2), params=0, macs=0, ew=0)),
    ("pixel_shuffle", (8, 3, 3), 1, [C(type="conv2d", out_channels=8, kernel_size=3, padding=1, bias=False),
                                     C(type="pixel_shuffle", upscale_factor=2)],
     dict(shape=(1, 2, 6, 6), params=0, macs=0, ew=0)),
    ("pixel_unshuffle", (2, 6, 4), 1, [C(type="pixel_unshuffle", downscale_factor=2)],
     dict(shape=(1, 8, 3, 2), params=0, macs=0, ew=0)),
    ("self_attention", (8, 3, 4), 2, [C(type="conv2d", out_channels=8, kernel_size=3, padding=1, bias=False),
                                      C(type="self_attention", num_heads=2)],
     # L = 3·4 = 12 tokens of C = 8: projections 2·12·8·(3·8 + 8), q·kᵀ and attention·v 2 · 2·12²·8
     dict(shape=(2, 8, 3, 4), params=3 * 8 * 8 + 3 * 8 + 8 * 8 + 8, macs=2 * 12 * 8 * 32 + 2 * 2 * 144 * 8,
          ew=4 * 2 * 12 * 8 + 4 * 2 * 2 * 144)),
    ("matmul", (3, 4, 5), 2, [C(name="t", type="transpose", dim0=2, dim1=3), C(type="matmul", inputs=["input", "t"])],
     # (2, 3, 4, 5) @ (2, 3, 5, 4): 2·3 matrices of 4·4 entries, each 5 products
     dict(shape=(2, 3, 4, 4), params=0, macs=2 * 3 * 4 * 4 * 5, ew=0)),
    ("matmul-broadcast", (3, 4, 5), 2, [C(name="n", type="narrow", start=0, length=1),
                                        C(name="t", type="transpose", dim0=2, dim1=3),
                                        C(type="matmul", inputs=["input", "t"])],
     # (2, 3, 4, 5) @ (2, 1, 5, 4): the 1 broadcasts to 3
     dict(shape=(2, 3, 4, 4), params=0, macs=2 * 3 * 4 * 4 * 5, ew=0)),
    ("sum", (3, 4, 5), 2, [C(type="sum", dim=-1, keepdim=True)],
     # 5 entries summed: 4 additions per output element
     dict(shape=(2, 3, 4, 1), params=0, macs=0, ew=4 * 2 * 3 * 4)),
    ("sum-channels", (3, 4, 5), 1, [C(type="sum", dim=1)], dict(shape=(1, 4, 5), params=0, macs=0, ew=2 * 4 * 5)),
    ("sum-channels-keepdim", (3, 4, 5), 1, [C(type="sum", dim=1, keepdim=True)],
     # 3 channels summed at each of 4·5 positions (point-wise in space: the field passes)
     dict(shape=(1, 1, 4, 5), params=0, macs=0, ew=2 * 4 * 5)),
    ("normalize-channels", (3, 4, 5), 2, [C(type="normalize")],
     # 2·4·5 vectors of 3 channels (point-wise in space: the field passes)
     dict(shape=(2, 3, 4, 5), params=0, macs=0, ew=3 * 2 * 3 * 4 * 5 + 2 * 2 * 4 * 5)),
    ("normalize", (3, 4, 5), 2, [C(type="normalize", dim=-1)],
     # 2·3·4 vectors of 5: 3 ops per element, 2 per vector
     dict(shape=(2, 3, 4, 5), params=0, macs=0, ew=3 * 2 * 3 * 4 * 5 + 2 * 2 * 3 * 4)),
    ("fourier_pos_embed", (6, 4), 2, [C(type="fourier_pos_embed", resolution=[2, 3], hidden_dim=4)],
     # 6 tokens of 4 channels from a 2×3 map; the 1×1 conv 2·4 → 4 at each of 2·6 positions
     dict(shape=(2, 6, 4), params=8 * 4 + 4, macs=2 * 6 * 4 * 8, ew=2 * 2 * 6 * 4)),
    ("attention_bias", (2, 6, 6), 2, [C(type="attention_bias", resolution=[2, 3])],
     # table 2 heads × 2·3 offsets; index 6·6; one add per element
     dict(shape=(2, 2, 6, 6), params=2 * 6, buffers=6 * 6, macs=0, ew=2 * 2 * 6 * 6)),
    ("attention_bias-relative-stride", (3, 4, 12), 1, [C(type="attention_bias", kind="relative", resolution=[3, 4],
                                                         stride=2)],
     # queries at rows 0, 2 and columns 0, 2 (2·2 = 4); table (2·3 − 1)·(2·4 − 1) = 35 offsets × 3 heads
     dict(shape=(1, 3, 4, 12), params=35 * 3, buffers=4 * 12, macs=0, ew=3 * 4 * 12)),
    ("permute", (3, 4, 5), 2, [C(type="conv2d", out_channels=3, kernel_size=1, bias=False),
                               C(type="permute", dims=[0, 2, 3, 1])],
     dict(shape=(2, 4, 5, 3), params=0, macs=0, ew=0)),
    ("permute-channels-last-linear", (6, 3, 4), 1,
     [C(type="permute", dims=[0, 2, 3, 1]), C(type="layernorm", normalized_shape=6), C(type="linear", out_features=8),
      C(type="permute", dims=[0, 3, 1, 2])],
     # the last permute under test: no arithmetic; the linear before it 3·4 positions × 6·8
     dict(shape=(1, 8, 3, 4), params=0, macs=0, ew=0)),
    ("unflatten", (12, 2, 2), 1, [C(type="flatten"), C(type="unflatten", dim=1, sizes=[12, 2, -1])],
     dict(shape=(1, 12, 2, 2), params=0, macs=0, ew=0)),
    ("reshape", (12, 2, 2), 2, [C(type="reshape", shape=[3, 4, -1])], dict(shape=(2, 3, 4, 4), params=0, macs=0, ew=0)),
    ("transpose", (3, 4, 5), 1, [C(type="conv2d", out_channels=3, kernel_size=1, bias=False),
                                 C(type="transpose", dim0=2, dim1=3)], dict(shape=(1, 3, 5, 4), params=0, macs=0, ew=0)),
    ("view", (12, 2, 2), 1, [C(type="view", shape=[48])], dict(shape=(1, 48), params=0, macs=0, ew=0)),
    # ---- merges -------------------------------------------------------------------------------
    ("add", (3, 5, 5), 1, [C(name="a", type="relu"), C(name="b", type="conv2d", inputs=["input"], out_channels=3,
                                                        kernel_size=1, bias=False),
                           C(type="add", inputs=["a", "b", "input"])],
     dict(shape=(1, 3, 5, 5), params=0, macs=0, ew=2 * 75)),
    ("mul", (4, 5, 5), 1, [C(name="g", type="global_avgpool"), C(type="mul", inputs=["input", "g"])],
     dict(shape=(1, 4, 5, 5), params=0, macs=0, ew=100)),
    ("concat", (3, 5, 5), 1, [C(name="a", type="conv2d", out_channels=5, kernel_size=3, padding=1),
                              C(type="concat", inputs=["input", "a"])],
     dict(shape=(1, 8, 5, 5), params=0, macs=0, ew=0)),
    ("sub", (3, 5, 5), 2, [C(name="a", type="conv2d", out_channels=3, kernel_size=3, padding=1, bias=False),
                           C(type="sub", inputs=["a", "input"])],
     dict(shape=(2, 3, 5, 5), params=0, macs=0, ew=2 * 75)),  # one subtraction per output element
    ("sub-broadcast", (4, 5, 5), 1, [C(name="g", type="global_avgpool"), C(type="sub", inputs=["g", "input"])],
     dict(shape=(1, 4, 5, 5), params=0, macs=0, ew=100)),  # (1, 4, 1, 1) − (1, 4, 5, 5) → (1, 4, 5, 5)
    ("glu", (3, 8, 8), 2, [C(type="glu")], dict(shape=(2, 3, 8, 4), params=0, macs=0, ew=2 * 2 * 3 * 8 * 4)),
    ("glu-channels", (6, 4, 4), 1, [C(type="glu", dim=1)], dict(shape=(1, 3, 4, 4), params=0, macs=0, ew=2 * 3 * 16)),
    # std_conv2d: W = 4·3·3·3 = 108 weights; the bias 2·4·6·6, the standardisation 6·W + 4·C_out, scaled + W + C_out
    ("std_conv2d-scaled", (3, 8, 8), 2, [C(type="std_conv2d", out_channels=4, kernel_size=3, scaled=True, gamma=1.5)],
     dict(shape=(2, 4, 6, 6), params=108 + 4 + 4, macs=2 * 4 * 36 * 27, ew=2 * 4 * 36 + 6 * 108 + 4 * 4 + 108 + 4)),
    ("std_conv2d-same-strided", (2, 7, 7), 1, [C(type="std_conv2d", out_channels=2, kernel_size=3, stride=2,
                                                 padding="same", bias=False)],
     dict(shape=(1, 2, 4, 4), params=2 * 18, macs=2 * 16 * 18, ew=6 * 36 + 4 * 2)),  # ⌈7/2⌉ = 4
    ("scale", (3, 4, 4), 2, [C(type="scale", factor=1.5)], dict(shape=(2, 3, 4, 4), params=0, macs=0, ew=2 * 48)),
    ("scale-learnable-bias", (3, 4, 4), 1, [C(type="scale", learnable=True, bias=True)],
     dict(shape=(1, 3, 4, 4), params=2, macs=0, ew=2 * 48)),  # a product and a sum per element
    # blur_pool2d: P = ⌊(1 + 2)/2⌋ = 1; H' = ⌊(9 + 2 − 3)/2⌋ + 1 = 5; the 3×3 filter per channel a buffer
    ("blur_pool2d", (4, 9, 9), 2, [C(type="blur_pool2d")],
     dict(shape=(2, 4, 5, 5), params=0, buffers=4 * 9, macs=2 * 4 * 25 * 9, ew=0)),
    ("blur_pool2d-5-constant", (2, 8, 8), 1, [C(type="blur_pool2d", filt_size=5, pad_mode="constant")],
     dict(shape=(1, 2, 4, 4), params=0, buffers=2 * 25, macs=2 * 16 * 25, ew=0)),  # P = 2: ⌊(8 + 4 − 5)/2⌋ + 1 = 4
]


def spec_text(case) -> str:
    """The case as a YAML spec (flow style, one layer per line)."""
    import json

    _, inp, batch, layers, _ = case
    lines = [f"name: {case[0]}", f"input: {list(inp)}", f"batch: {batch}", "layers:"]
    lines += [f"  - {json.dumps(layer)}" for layer in layers]
    return "\n".join(lines) + "\n"


# Element-wise ops of the cases above that do not state them inline, by the conventions in
# README (bias add 1/element, norms 2/element, pooling ∏K per output, d-linear 2^(d+1)−1 per
# output, deformable sampling 8 per sampled value plus both bias adds, movement/padding 0).
EW = {
    "conv2d-stride-pad-dilation": 16 * 9 * 9, "conv2d-groups": 8 * 10 * 10, "conv2d-asymmetric-reflect": 4 * 8 * 9,
    "conv2d-same-even-circular": 4 * 8 * 8, "conv2d-valid-replicate": 0, "conv2d-per-axis": 2 * 5 * 10,
    "conv1d": 2 * 4 * 24, "conv3d": 4 * 8 * 8 * 8, "conv_transpose2d": 4 * 10 * 10,
    "conv_transpose2d-groups-dilation": 6 * 11 * 11, "conv_transpose1d": 2 * 20, "conv_transpose3d": 2 * 4 * 6 * 8,
    "deform_conv2d": 8 * (2 * 9 * 36) + 4 * 36 + 18 * 36,
    "deform_conv2d-modulated-groups": 8 * (4 * 9 * 25) + 54 * 25,
    "separable_conv2d": 8 * 6 * 6, "spatial_separable_conv2d": 4 * 4 * (7 + 4),
    "locally_connected2d": 2 * 3 * 3, "tiled_conv2d": 2 * 4 * 4,
    "maxpool2d-ceil": 16 * 9, "maxpool2d-ceil-drops-window-in-padding": 9 * 4, "maxpool2d-dilation": 16 * 4,
    "maxpool1d": 3 * 4 * 2, "maxpool3d": 8 * 8, "avgpool1d": 2 * 4 * 3, "avgpool3d": 8 * 18,
    "lppool1d": 2 * 4 * (3 + 2),
    "adaptive_avgpool1d": 2 * 4 * 3,    # 10 → 4: windows [0,3) [2,5) [5,8) [7,10)
    "adaptive_maxpool1d": 2 * 3 * 3, "adaptive_avgpool3d": 8 * 8,
    "adaptive_maxpool3d": 6 * (4 * 3 * 2),  # widest windows 4, 3 ([0,3) [2,5)) and 2
    "global_maxpool": 4 * 27,
    "batchnorm2d-plain": 2 * 2 * 8 * 16, "batchnorm1d": 2 * 4 * 10, "batchnorm3d": 2 * 2 * 3 * 8,
    "instancenorm2d": 2 * 2 * 4 * 25, "instancenorm1d": 2 * 2 * 3 * 7, "instancenorm3d": 2 * 2 * 2 * 27,
    "layernorm": 2 * 2 * 100, "layernorm-last-axis": 2 * 2 * 100, "groupnorm": 2 * 96,
    "prelu": 48, "prelu-channels": 48, "identity": 0, "flatten": 0, "flatten-spatial": 0, "linear-nd": 0,
    "upsample-nearest-fraction": 0, "upsample-bilinear-align": 2 * 8 * 8 * (4 * 2 - 1),
    "upsample-linear": 2 * 15 * (2 * 2 - 1), "upsample-trilinear": 64 * (8 * 2 - 1),
    **{f"{kind}_pad{d}d": 0 for kind in ("zero", "reflection", "replication", "circular") for d in (1, 2, 3)},
}
