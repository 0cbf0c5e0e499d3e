"""What backward formulas allocate (issue #27 §2), each network against torch's training step
(the profiler's allocation events, sgd), to the byte but for torch's 0-dim scalars. Measured
before each rule (measured ÷ analytic): prelu 1.10, a merge reading one tensor twice 1.16–1.44
(when its backward is the peak), mul of three factors 0.90, lppool 0.88–1.09 (1-D and 2-D),
circular padding 1.08–1.10, an in-place activation on a view (narrow, chunk, transpose,
permute) 1.38–1.83, padding: same with an even kernel (torch pads by the sides' difference
inside the conv operator) 0.72 at inference, 0.97 training, and at inference a flatten of a
permuted map (reshape copies) 1.50, a linear on a permuted map 0.74–0.95 (its folded copy is
inside the operator unless kept for the weight's gradient), a split or chunk whose piece is
never read (the build kept it, and the analysis kept a dead branch's saved tensors) 1.16
inference / 1.18 training; all 1.000 after, at inference too."""
import pytest

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend.measure import measure_peak, measure_training  # noqa: E402

from conftest import analyze_text  # noqa: E402

SCALARS = 256  #: bytes of 0-dim tensors torch makes for Python scalars (not modelled)


def conv(d: int, c: int, extra: str = "") -> str:
    return f"  - {{type: conv{d}d, out_channels: {c}, kernel_size: 1{extra}}}\n"


def net(inp: str, d: int, body: str, tail: bool = True) -> str:
    return (f"input: {inp}\nbatch: 2\nlayers:\n  - {{name: c, type: conv{d}d, out_channels: 8, kernel_size: 1}}\n"
            + body + (conv(d, 4) if tail else ""))


D1 = "  - {name: e, type: conv2d, out_channels: 8, kernel_size: 1, inputs: [c]}\n"
D2 = "  - {name: f, type: conv2d, out_channels: 8, kernel_size: 1, inputs: [c]}\n"
GATE = "  - {name: g, type: global_avgpool, inputs: [c]}\n"
NETS = {
    "prelu": net("8x16x16", 2, "  - {type: prelu}\n"),
    "prelu-on-the-input": "input: 1x8x8\nbatch: 1\nlayers:\n  - {type: prelu}\n",
    "prelu-per-channel": net("8x16x16", 2, "  - {type: prelu, num_parameters: channels}\n"),
    "add-a-a-last": net("4x16x16", 2, "  - {type: add, inputs: [c, c]}\n", tail=False),
    "concat-a-a-last": net("4x16x16", 2, "  - {type: concat, inputs: [c, c]}\n", tail=False),
    "concat-a-a-a-last": net("4x16x16", 2, "  - {type: concat, inputs: [c, c, c]}\n", tail=False),
    "add-x-x-x": net("4x16x16", 2, "  - {type: add, inputs: [c, c, c]}\n"),
    "mul-three": net("8x16x16", 2, D1 + D2 + "  - {type: mul, inputs: [c, e, f]}\n"),
    "mul-three-input-first": net("8x16x16", 2, D1 + "  - {type: mul, inputs: [input, e, c]}\n"),
    "mul-four": net("8x16x16", 2, D1 + D2 + "  - {type: mul, inputs: [c, e, f, c]}\n"),
    "mul-three-gate-last": net("8x16x16", 2, D1 + GATE + "  - {type: mul, inputs: [c, e, g]}\n"),
    "mul-three-gate-first": net("8x16x16", 2, D1 + GATE + "  - {type: mul, inputs: [g, c, e]}\n"),
    "lppool1d": net("8x64", 1, "  - {type: lppool1d, norm_type: 2, kernel_size: 3, stride: 2}\n"),
    "lppool1d-overlap": net("8x64", 1, "  - {type: lppool1d, norm_type: 2, kernel_size: 2, stride: 1}\n"),
    "lppool2d-overlap": net("8x16x16", 2, "  - {type: lppool2d, norm_type: 2, kernel_size: 2, stride: 1}\n"),
    "lppool2d-wide": net("8x16x16", 2, "  - {type: lppool2d, norm_type: 3, kernel_size: 3, stride: 3}\n"),
    "circular_pad1d": net("8x32", 1, "  - {type: circular_pad1d, padding: 2}\n"),
    "circular_pad1d-wide": net("4x6", 1, "  - {type: circular_pad1d, padding: [5, 6]}\n"),
    "circular_pad2d": net("8x16x16", 2, "  - {type: circular_pad2d, padding: [1, 0, 2, 1]}\n"),
    "circular_pad3d": net("4x4x5x6", 3, "  - {type: circular_pad3d, padding: [1, 2, 0, 1, 2, 3]}\n"),
    "flatten-of-permuted": net("8x8x8", 2, "  - {type: permute, dims: [0, 2, 3, 1]}\n  - {type: flatten}\n"
                                           "  - {type: linear, out_features: 4}\n", tail=False),
    "flatten-of-transposed-inner": net("8x8x8", 2, "  - {type: transpose, dim0: 2, dim1: 3}\n"
                                                   "  - {type: flatten, start_dim: 2}\n", tail=False),
    "flatten-viewable-after-permute": net("8x8x1", 2, "  - {type: permute, dims: [0, 1, 3, 2]}\n"
                                                      "  - {type: flatten}\n", tail=False),
    "same-even-kernel": net("8x15x16", 2, "  - {type: conv2d, out_channels: 8, kernel_size: 4, padding: same}\n"),
    "same-even-kernel-dilated-1d": net("8x20", 1, "  - {type: conv1d, out_channels: 8, kernel_size: 4, dilation: 3, "
                                                  "padding: same}\n"),
    "same-even-kernel-frozen-3d": net("4x6x6x6", 3, "  - {type: conv3d, out_channels: 8, kernel_size: [2, 3, 4], "
                                                    "padding: same, trainable: false}\n"),
    "same-even-kernel-frozen-last": net("4x6x6", 2, "  - {type: conv2d, out_channels: 2, kernel_size: [1, 2], padding: same, "
                                                    "trainable: false}\n", tail=False),
    "same-even-kernel-on-the-input": "input: 8x16x16\nbatch: 2\nlayers:\n"
                                     "  - {type: conv2d, out_channels: 8, kernel_size: 2, padding: same}\n",
}
for view in ("{type: permute, dims: [0, 2, 3, 1]}", "{type: transpose, dim0: 2, dim1: 3}"):
    for trainable in ("true", "false"):
        for first in (True, False):
            body = f"  - {view}\n  - {{type: linear, out_features: 3, trainable: {trainable}}}\n  - {{type: relu}}\n"
            NETS[f"linear-{trainable}-after-{view.split(',')[0][7:]}{'-on-the-input' if first else ''}"] = (
                "input: 8x8x8\nbatch: 2\nlayers:\n" + body if first else net("8x8x8", 2, body, tail=False))
PIECE = "  - {name: p, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [s.0]}\n"
NETS["split-with-an-unused-piece"] = net("8x8x8", 2, "  - {name: s, type: split, sizes: [2, 6]}\n" + PIECE
                                         + "  - {type: relu, inputs: [s.1]}\n", tail=False)
NETS["chunk-with-a-dead-branch"] = net("8x8x8", 2, "  - {name: s, type: chunk, chunks: 2}\n" + PIECE
                                       + "  - {type: conv2d, out_channels: 4, kernel_size: 1, inputs: [s.1]}\n", tail=False)
# a spec's chunk is one torch.chunk (analysis/chunks.py): one input gradient for all pieces, zeros for unused ones
NETS["chunk-shufflenet-unit"] = net("8x8x8", 2, "  - {name: s, type: chunk, chunks: 2}\n"
                                    "  - {name: b, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1, inputs: [s.1]}\n"
                                    "  - {type: concat, inputs: [s.0, b]}\n  - {type: channel_shuffle, groups: 2}\n")
# a spec's split is one torch.split (split_with_sizes_backward), as its chunk is one torch.chunk
NETS["split-shufflenet-unit"] = net("8x8x8", 2, "  - {name: s, type: split, sizes: [3, 5]}\n"
                                    "  - {name: b, type: conv2d, out_channels: 5, kernel_size: 3, padding: 1, inputs: [s.1]}\n"
                                    "  - {type: concat, inputs: [s.0, b]}\n")
NETS["split-three-one-unused"] = net("8x8x8", 2, "  - {name: s, type: split, sizes: [2, 2, 4]}\n"
                                     "  - {name: x, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [s.2]}\n"
                                     "  - {type: add, inputs: [s.0, s.0]}\n", tail=False)
NETS["chunk-three-one-unused"] = net("9x8x8", 2, "  - {name: s, type: chunk, chunks: 3}\n"
                                     "  - {name: x, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [s.2]}\n"
                                     "  - {type: add, inputs: [s.0, s.0]}\n", tail=False)
NETS["chunk-read-again-later"] = net("8x8x8", 2, "  - {name: s, type: chunk, chunks: 4}\n"
                                     "  - {name: m, type: mul, inputs: [s.0, s.3]}\n"
                                     "  - {type: concat, inputs: [m, s.1]}\n", tail=False)
NETS["flatten-of-a-permute-back"] = ("input: 1x6\nbatch: 2\nlayers:\n  - {type: permute, dims: [0, 2, 1]}\n"
                                     "  - {type: linear, out_features: 2}\n  - {type: permute, dims: [0, 2, 1]}\n"
                                     "  - {type: permute, dims: [0, 2, 1]}\n  - {type: flatten}\n"
                                     "  - {type: linear, out_features: 3}\n")  # contiguous again: a view
NETS["linear-on-a-strided-natural-map"] = net("4x6x6", 2, "  - {type: permute, dims: [0, 2, 3, 1]}\n"
                                              "  - {type: linear, out_features: 3}\n  - {type: permute, dims: [0, 3, 1, 2]}\n"
                                              "  - {type: linear, out_features: 5}\n  - {type: relu}\n", tail=False)
for first in (True, False):  # a channels-last linear between two permutes: its gradient arrives permuted
    for trainable in ("true", "false"):
        body = (f"  - {{type: permute, dims: [0, 2, 3, 1]}}\n  - {{type: linear, out_features: 3, trainable: {trainable}}}\n"
                "  - {type: permute, dims: [0, 3, 1, 2]}\n")
        NETS[f"permute-linear-{trainable}-permute{'-on-the-input' if first else ''}"] = (
            "input: 1x6x6\nbatch: 2\nlayers:\n" + body if first else net("1x6x6", 2, body))
# one input feature: the permuted (N, H, W, 1) input is contiguous, so the linear folds it to 2-D as a view, and the
# gradient that arrives permuted is folded with a copy, made while the gradient it copies is alive
for pre, after in (("  - {type: batchnorm2d}\n", "-after-bn"), ("", "")):
    for lin, what in (("out_features: 2, bias: false", "no-bias"), ("out_features: 3, trainable: false", "frozen")):
        NETS[f"one-feature-linear-{what}{after}"] = (
            f"input: 1x6x6\nbatch: 2\nlayers:\n{pre}  - {{type: permute, dims: [0, 2, 3, 1]}}\n"
            f"  - {{type: linear, {lin}}}\n  - {{type: permute, dims: [0, 3, 1, 2]}}\n")
for view in ("{type: narrow, start: 2, length: 4}", "{type: chunk, chunks: 2}", "{type: transpose, dim0: 2, dim1: 3}",
             "{type: permute, dims: [0, 2, 3, 1]}"):
    for act in ("relu", "hardswish"):
        NETS[f"{act}_-on-{view.split(',')[0][7:]}"] = net("8x8x8", 2, f"  - {view}\n  - {{type: {act}, inplace: true}}\n",
                                                          tail="permute" not in view)

# found by the 10,000-network property run (seed 27010): a conv after an in-place activation on a chunk piece
# (whose strides are the piece's own, not contiguous ones), then a permute and a flatten, which copies
NETS["flatten-of-permuted-after-a-conv-on-an-in-place-piece"] = (
    "input: 1x6x6x6\nbatch: 1\nlayers:\n  - {type: conv3d, out_channels: 4, kernel_size: 1}\n"
    "  - {type: chunk, chunks: 2}\n  - {type: celu, inplace: true}\n  - {type: conv3d, out_channels: 2, kernel_size: 1}\n"
    "  - {type: circular_pad3d, padding: [0, 0, 0, 0, 1, 3]}\n  - {type: permute, dims: [0, 2, 3, 4, 1]}\n"
    "  - {type: flatten}\n")
# a conv after a permute to channels-last writes channels-last, so a flatten of it copies
NETS["flatten-of-a-conv-on-channels-last"] = (
    "input: 5x6x3\nbatch: 2\nlayers:\n  - {type: permute, dims: [0, 3, 1, 2]}\n"
    "  - {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}\n  - {type: flatten}\n")
NETS["flatten-of-a-pool-on-channels-last"] = (
    "input: 5x6x3\nbatch: 2\nlayers:\n  - {type: permute, dims: [0, 3, 1, 2]}\n"
    "  - {type: maxpool2d, kernel_size: 2}\n  - {type: flatten}\n  - {type: linear, out_features: 3}\n")

for pool in ("{type: maxpool1d, kernel_size: 2}", "{type: avgpool1d, kernel_size: 3, stride: 1}",
             "{type: adaptive_maxpool1d, output_size: 3}", "{type: instancenorm1d, affine: true}"):
    NETS[f"in-place-after-{pool.split(',')[0][7:]}"] = (  # (found by the memory run, seed 27013: 1.19x)
        "input: [4, 9]\nbatch: 1\nlayers:\n  - {type: conv1d, out_channels: 4, kernel_size: 1}\n"
        f"  - {pool}\n  - {{type: celu, inplace: true}}\n")

# one input feature: the permuted (N, H, W, 1) input is contiguous, so torch's linear takes its fused path
# (addmm on a flattened view), whose backward folds the permuted gradient with a copy while it is alive
NETS["narrow-channels-last-linear-permuted-output"] = (
    "input: 1x6x6\nbatch: 2\nlayers:\n  - {type: batchnorm2d}\n  - {type: permute, dims: [0, 2, 3, 1]}\n"
    "  - {type: linear, out_features: 2}\n  - {type: permute, dims: [0, 3, 1, 2]}\n")
# found by the 10,000-network memory run (seed 27010, after 1,801 passing): the relu on the split's one-channel piece
# leaves its strides unknown (not dense), and so everything after it; a linear on the later permuted map still folds
# a copy, as it would for its axis order (unknown strides are taken as those of the axis order)
NETS["channels-last-linear-after-a-split-piece"] = ('input: [1, 6, 6]\nbatch: 2\nlayers:\n'
    '  - {"name": "l1c", "type": "conv2d", "out_channels": 6, "kernel_size": 1}\n'
    '  - {"name": "l1s", "type": "split", "sizes": [1, 5], "inputs": ["l1c"]}\n'
    '  - {"name": "l1", "type": "relu", "inputs": ["l1s.0"]}\n'
    '  - {"name": "l2", "type": "upsample", "scale_factor": 2, "mode": "nearest"}\n'
    '  - {"name": "l3c", "type": "conv2d", "inputs": ["l2"], "out_channels": 6, "kernel_size": 1}\n'
    '  - {"name": "l3s", "type": "split", "sizes": [1, 5], "inputs": ["l3c"]}\n'
    '  - {"name": "l3p", "type": "conv2d", "inputs": ["l3s.0"], "out_channels": 2, "kernel_size": 1}\n'
    '  - {"name": "l3", "type": "relu", "inputs": ["l3p"]}\n'
    '  - {"name": "l4p", "type": "permute", "inputs": ["l3"], "dims": [0, 2, 3, 1]}\n'
    '  - {"name": "l4l", "type": "linear", "out_features": 1, "bias": false}\n')

# found by the 10,000-network memory run (seed 27014, after 6,003 passing): a channels-last linear whose permuted
# map is the network's output, on a map that needs a gradient. The backward of the view that folded the linear's
# output copies the permuted gradient to 2-D while it is alive; then the gradient is freed, and mm makes the input's
# and weight's gradients, which the copy outlives (272 B over before): on a strided (permuted) input and on a
# contiguous one (the linear over W), the conv before it trainable or frozen
for strided in (True, False):
    for trainable in ("true", "false"):
        NETS[f"permuted-output-of-a-linear-on-a-{'strided' if strided else 'contiguous'}-map-{trainable}"] = (
            "input: [2, 6, 6]\nbatch: 2\nlayers:\n"
            f"  - {{type: conv2d, out_channels: 2, kernel_size: 1, bias: false, trainable: {trainable}}}\n"
            + ("  - {type: permute, dims: [0, 2, 3, 1]}\n  - {type: linear, out_features: 3, bias: false}\n"
               "  - {type: permute, dims: [0, 3, 1, 2]}\n" if strided else
               "  - {type: linear, out_features: 3}\n  - {type: permute, dims: [0, 1, 3, 2]}\n"))

# found by the same run (seed 27014, after 5,801 passing): a linear writes a contiguous output whatever its input's
# strides; its one-feature output permuted back suggests channels-last to the conv after it, whose channels-last
# output a permute makes contiguous again, so the flatten views it (torch 144 B under at 6×6 when the strides
# were unknown)
NETS["flatten-after-a-conv-on-a-one-feature-linear-permuted-back"] = (
    "input: [2, 12, 12]\nbatch: 1\nlayers:\n  - {type: permute, dims: [0, 2, 3, 1]}\n"
    "  - {type: linear, out_features: 1, bias: false}\n  - {type: permute, dims: [0, 3, 1, 2]}\n"
    "  - {type: conv2d, out_channels: 2, kernel_size: 1}\n  - {type: permute, dims: [0, 2, 3, 1]}\n"
    "  - {type: flatten, start_dim: 1}\n  - {type: linear, out_features: 3}\n")

# found by the same run (seed 27014, after 9,599 passing): cat of channels_last_3d maps writes channels_last_3d,
# so a flatten of its permute to channels-last is a view (1,728 B over when the cat's layout was unknown)
NETS["flatten-of-a-cat-of-channels-last-3d-maps"] = (
    "input: [1, 6, 6, 6]\nbatch: 1\nlayers:\n  - {type: permute, dims: [0, 2, 3, 4, 1]}\n"
    "  - {type: linear, out_features: 2, bias: false}\n  - {name: b, type: permute, dims: [0, 4, 1, 2, 3]}\n"
    "  - {type: concat, inputs: [b, b]}\n  - {type: permute, dims: [0, 2, 3, 4, 1]}\n"
    "  - {type: flatten, start_dim: 1}\n  - {type: linear, out_features: 3}\n")

# found by the memory run (seed 27018, after 7,051 passing): a gradient handed back through a view (flatten,
# permute) is a view, and autograd adds another gradient to it out of place (a new tensor; 296 B over before): a
# gate's global pool hands its input a second gradient, with the merge read by a flatten or a permute and flatten
for tail in ("flatten", "permute"):
    NETS[f"second-gradient-into-a-viewed-one-{tail}"] = (
        'input: [1, 6, 6]\nbatch: 1\nlayers:\n  - {name: a, type: conv2d, out_channels: 2, kernel_size: 1}\n'
        '  - {name: b, type: conv2d, out_channels: 2, kernel_size: 1, bias: false, inputs: [input]}\n'
        '  - {name: g, type: global_avgpool, inputs: [a]}\n  - {name: m, type: add, inputs: [a, b, b, g]}\n'
        + ("  - {type: permute, dims: [0, 2, 3, 1]}\n" if tail == "permute" else "")
        + "  - {type: flatten, start_dim: 1}\n  - {type: linear, out_features: 3}\n")

# found by the review: two permutes of one linear: their gradients are summed, then folded with one copy
NETS["two-permutes-of-one-linear"] = (
    "input: [2, 6, 6]\nbatch: 2\nlayers:\n  - {name: c, type: conv2d, out_channels: 2, kernel_size: 1, bias: false}\n"
    "  - {name: p, type: permute, dims: [0, 2, 3, 1]}\n  - {name: l, type: linear, out_features: 3, bias: false}\n"
    "  - {name: q, type: permute, inputs: [l], dims: [0, 3, 1, 2]}\n"
    "  - {name: q2, type: permute, inputs: [l], dims: [0, 3, 1, 2]}\n  - {name: s, type: add, inputs: [q, q2]}\n")

#: one network per rule runs in the fast loop; the variations are slow (each builds and trains in torch)
FAST = {"prelu", "add-a-a-last", "mul-three", "lppool1d", "circular_pad2d", "flatten-of-permuted",
        "same-even-kernel", "linear-true-after-permute", "split-with-an-unused-piece",
        "permute-linear-false-permute", "relu_-on-narrow", "flatten-of-a-conv-on-channels-last",
        "chunk-shufflenet-unit", "permuted-output-of-a-linear-on-a-strided-map-true"}


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in NETS])
def test_backward_allocations_match_torch(name):
    _allocations_match(NETS[name])


def _allocations_match(text):
    """A training step's and an inference pass's allocations as torch makes them: the model's, within a few
    0-dim scalars."""
    report = analyze_text(text, optimizer="sgd")
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    measured = measure_training(model, torch.randn(report.input_shape), t, torch.device("cpu"), "sgd")
    assert measured is not None
    assert abs(measured.tensors - report.totals["training_memory_bytes"]) <= SCALARS
    inference = measure_peak(model, torch.randn(report.input_shape), t, torch.device("cpu"))
    assert abs(inference.tensors - report.totals["inference_peak_activation_bytes"]) <= SCALARS


def test_a_chunk_whose_piece_a_view_hands_to_an_in_place_layer_still_trains():
    """torch refuses an in-place layer on a piece of torch.chunk, or on a view of one, while training: such a
    chunk is built (and its memory modelled) as narrows, so verify can still train it."""
    from cnncalc.analysis.chunks import chunk_groups

    text = net("4x4x4", 2, "  - {name: s, type: chunk, chunks: 2}\n  - {name: v, type: flatten, inputs: [s.0]}\n"
               "  - {type: relu, inplace: true}\n  - {name: w, type: flatten, inputs: [s.1]}\n"
               "  - {type: concat, inputs: [v, w]}\n", tail=False)
    report = analyze_text(text, optimizer="sgd")
    assert chunk_groups(report.layers) == {}
    assert chunk_groups(analyze_text(text.replace("inplace: true", "inplace: false")).layers)  # else one op
    t = tb.kit()
    model = tb.build_model(report, t)
    assert measure_training(model, torch.randn(report.input_shape), t, torch.device("cpu"), "sgd") is not None


def _one_layer_rows():
    from layer_cases import CASES

    return [pytest.param(case, id=case[0]) for case in CASES if len(case[3]) == 1]


@pytest.mark.slow
@pytest.mark.parametrize("case", _one_layer_rows())
def test_returns_view_is_what_autograd_sees(case):
    """Every one-layer case row whose layer makes a tensor of its own (does not alias its input):
    torch's output is an autograd view (1-D pools, instance norm) exactly where the layer class
    declares `returns_view`, so an in-place layer after it is modelled as rebasing a view."""
    from layer_cases import spec_text

    report = analyze_text(spec_text(case))
    row = report.layers[-1]
    if row.layer.aliases(True) or not row.layer.memory_exact:
        pytest.skip("a view of its input by its own rules, or memory an estimate")
    model = tb.build_model(report, tb.kit()).train()
    seen = {}
    model.layers[f"l{row.index}"].register_forward_hook(lambda m, i, o: seen.update(y=o))
    x = torch.randn(report.input_shape, requires_grad=True)
    model(x)
    y = seen["y"][0] if isinstance(seen["y"], tuple) else seen["y"]
    assert y._is_view() == bool(row.layer.returns_view), row.type


@pytest.mark.slow
def test_a_split_is_modelled_as_torch_split_runs_it():
    """A spec's split is what torch.split does (one operator; its backward waits for every piece's gradient and
    makes the input's once), judged on a module written by hand, not on cnncalc's own build: narrows would make an
    input-sized gradient per piece (3,072 B more here)."""
    nn = torch.nn

    class Hand(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.x = nn.Conv2d(8, 8, 1), nn.Conv2d(4, 4, 1)

        def forward(self, inp):
            a, _, d = torch.split(self.c(inp), [2, 2, 4], 1)
            self.x(d)  # (never read, as the spec's x)
            return a + a

    report = analyze_text(NETS["split-three-one-unused"], optimizer="sgd")
    torch.manual_seed(0)
    model = Hand()
    measured = measure_training(model, torch.randn(report.input_shape), tb.kit(), torch.device("cpu"), "sgd")
    assert measured is not None
    assert abs(measured.tensors - report.totals["training_memory_bytes"]) <= SCALARS
    assert [r.type for r in report.layers] == ["conv2d", "narrow", "narrow", "narrow", "conv2d", "add"]


def test_only_a_whole_split_in_order_is_one_torch_split():
    """Narrows written by hand with a split's sizes_sum but starts that are not the split's (a piece read twice,
    out of order) stay narrows: one torch.split would take other channels (found by the review)."""
    from cnncalc.analysis.chunks import chunk_groups

    body = ("input: 8x4x4\nlayers:\n  - {name: c, type: conv2d, out_channels: 8, kernel_size: 1}\n"
            "  - {name: s.0, type: narrow, inputs: [c], start: 0, length: 2, sizes_sum: 8}\n"
            "  - {name: s.1, type: narrow, inputs: [c], start: START, length: 4, sizes_sum: 8}\n"
            "  - {name: s.2, type: narrow, inputs: [c], start: 6, length: 2, sizes_sum: 8}\n"
            "  - {type: concat, inputs: [s.0, s.1, s.2]}\n")
    assert chunk_groups(analyze_text(body.replace("START", "4")).layers) == {}
    assert list(chunk_groups(analyze_text(body.replace("START", "2")).layers).values()) == [
        ([2, 4, 2], [(0, "s.0"), (1, "s.1"), (2, "s.2")])]
