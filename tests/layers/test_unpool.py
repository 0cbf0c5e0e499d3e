"""max_unpool1d/2d/3d (#28 §5) and the max pool's return_indices: a SegNet-style encoder/decoder
against torch's own nn.MaxPool2d(return_indices=True) and nn.MaxUnpool2d at three input sizes
(an odd one needs output_size), and the located errors of misuse. The case rows (1-D, 2-D, 3-D,
tests/layer_cases.py) are checked against torch by test_parity, the export and amp tests."""
import pytest

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend.measure import measure_peak, measure_training  # noqa: E402

from conftest import analyze_text, assert_located  # noqa: E402

nn = torch.nn
CPU = torch.device("cpu")

SEGNET = """name: segnet
input: [3, {h}, {w}]
batch: 2
layers:
  - {{name: enc1, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}}
  - {{name: pool1, type: maxpool2d, kernel_size: 2, return_indices: true}}
  - {{name: enc2, type: conv2d, out_channels: 6, kernel_size: 3, padding: 1}}
  - {{name: pool2, type: maxpool2d, kernel_size: 2, return_indices: true}}
  - {{name: mid, type: conv2d, out_channels: 6, kernel_size: 3, padding: 1}}
  - {{name: up2, type: max_unpool2d, kernel_size: 2, inputs: [mid, pool2],
      output_size: ["${{enc2.height}}", "${{enc2.width}}"]}}
  - {{name: dec2, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}}
  - {{name: up1, type: max_unpool2d, kernel_size: 2, inputs: [dec2, pool1],
      output_size: ["${{enc1.height}}", "${{enc1.width}}"]}}
  - {{name: dec1, type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}}
"""


class SegNet(nn.Module):
    """The spec above in torch's own words."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.mid, self.dec2, self.dec1 = (nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1),
                                          nn.Conv2d(4, 2, 3, padding=1))
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x):
        e1 = self.enc1(x)
        p1, i1 = self.pool(e1)
        e2 = self.enc2(p1)
        p2, i2 = self.pool(e2)
        u2 = self.unpool(self.mid(p2), i2, output_size=e2.shape[2:])
        return self.dec1(self.unpool(self.dec2(u2), i1, output_size=e1.shape[2:]))


@pytest.mark.slow
@pytest.mark.parametrize("h,w", [(16, 16), (15, 17), (9, 14)])
def test_segnet_matches_torchs_pool_and_unpool(h, w):
    """Shapes and values equal torch's at every size (15×17: both pools drop a row or column, so
    the unpools need output_size); the training step's memory within 1% of torch's measured step
    for the network as cnncalc builds it and as torch users write it."""
    report = analyze_text(SEGNET.format(h=h, w=w))
    assert [r.output_shape for r in report.layers if r.type == "max_unpool2d"] == [
        (2, 6, h // 2, w // 2), (2, 4, h, w)]
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    ref = SegNet().eval()
    with torch.no_grad():
        for name in ("enc1", "enc2", "mid", "dec2", "dec1"):
            row = next(r for r in report.layers if r.name == name)
            getattr(ref, name).load_state_dict(model.layers[f"l{row.index}"].state_dict())
    x = torch.randn(report.input_shape)
    with torch.no_grad():
        ours, theirs = model(x), ref(x)
    assert ours.shape == theirs.shape == report.layers[-1].output_shape
    assert torch.equal(ours, theirs)
    analytic = report.totals["training_memory_bytes"]
    for net in (model, ref):
        assert measure_training(net, x, t, CPU, "adam").tensors == pytest.approx(analytic, rel=0.01)


@pytest.mark.slow
def test_inference_memory_is_an_estimate_that_counts_the_values():
    """The indices outlive their pool (held until the unpool): the inference peak is marked an
    estimate; torch's measured peak stays within the indices' bytes of it."""
    report = analyze_text(SEGNET.format(h=15, w=17))
    assert {r.type for r in report.layers if not r.layer.memory_exact} == {"maxpool2d", "max_unpool2d"}
    t = tb.kit()
    model = tb.build_model(report, t).eval()
    measured = measure_peak(model, torch.randn(report.input_shape), t, CPU).tensors
    indices = 8 * (2 * 4 * 7 * 8 + 2 * 6 * 3 * 4)  # int64, both pools' outputs
    analytic = report.totals["inference_peak_activation_bytes"]
    assert analytic <= measured <= analytic + indices


def test_shape_field_and_counts_by_hand():
    """15×17 → pool 7×8 → unpool to output_size 15×17; no params, MACs or element-wise ops; the
    field after an unpool is the window's reach, marked an estimate."""
    report = analyze_text(SEGNET.format(h=15, w=17))
    up1 = next(r for r in report.layers if r.name == "up1")
    assert up1.output_shape == (2, 4, 15, 17) and up1.params == up1.macs == up1.elementwise_ops == 0
    # dec2 (7×8) reads a field of jump 2; the 2×2 windows of stride 2 do not overlap: jump 2/2 = 1,
    # size unchanged (each output lies in one window)
    dec2 = next(r for r in report.layers if r.name == "dec2").receptive_field
    field = up1.receptive_field
    assert [f.jump for f in field] == [1, 1] and [f.size for f in field] == [f.size for f in dec2]
    assert not any(f.exact for f in field)


BASE = """name: t
input: [2, 8, 8]
layers:
  - {name: p, type: maxpool2d, kernel_size: 2, return_indices: true}
  - {name: c, type: conv2d, out_channels: 2, kernel_size: 1}
"""


@pytest.mark.parametrize("entry,message", [
    ("{name: u, type: max_unpool2d, kernel_size: 2, inputs: [c, c]}",
     "must be a maxpool2d layer with return_indices: true (its indices say where each value goes), received a conv2d"),
    ("{name: u, type: max_unpool2d, kernel_size: 2, inputs: [c, input]}", "received the network's input"),
    ("{name: u, type: max_unpool2d, kernel_size: 2, inputs: [c, q]}", "received a maxpool2d layer without return_indices"),
    ("{name: u, type: max_unpool1d, kernel_size: 2, inputs: [c, p]}", "expected a 3-D input"),
    ("{name: u, type: max_unpool2d, kernel_size: 2, inputs: [input, p]}",
     "x (1, 2, 8, 8) must have the shape of the max pool's output (1, 2, 4, 4)"),
    ("{name: u, type: max_unpool2d, kernel_size: 2, output_size: [10, 8], inputs: [c, p]}",
     "output_size [10, 8]: torch takes 7 to 9 along axis 1"),
    ("{name: u, type: max_unpool2d, kernel_size: 2, output_size: [7, 8], inputs: [c, p]}",
     "must be those of the max pool's input [8, 8]"),
])
def test_misuse_is_a_located_error(entry, message):
    text = BASE + "  - {name: q, type: maxpool2d, kernel_size: 2}\n" + f"  - {entry}\n"
    assert_located(text, message, "name: u")


def test_a_3d_pool_feeds_only_a_3d_unpool():
    text = """name: t
input: [1, 4, 4, 4]
layers:
  - {name: p, type: maxpool3d, kernel_size: 2, return_indices: true}
  - {name: u, type: max_unpool2d, kernel_size: 2, inputs: [p, p]}
"""
    assert_located(text, "expected a 4-D input", "name: u")


@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil,size,unpool_kernel", [
    (2, 2, 0, 1, False, 9, 2), (3, 2, 1, 1, True, 10, 3), (3, 2, 1, 2, False, 10, 5), (4, 3, 2, 1, True, 13, 4)])
def test_the_probe_reaches_every_position_an_index_can_send_a_value_to(kernel, stride, padding, dilation, ceil, size,
                                                                        unpool_kernel):
    """The stand-in's reach of each x position (a one-hot through it) holds the position torch's
    unpool writes that value to, for maxima drawn at random (the windows are the pool's: a
    dilated pool's unpool states the dilated span as its kernel, for torch's size rule)."""
    text = f"""name: t
input: [1, {size}]
layers:
  - {{name: p, type: maxpool1d, kernel_size: {kernel}, stride: {stride}, padding: {padding}, dilation: {dilation},
      ceil_mode: {str(ceil).lower()}, return_indices: true}}
  - {{name: u, type: max_unpool1d, kernel_size: {unpool_kernel}, stride: {stride}, padding: {padding}, inputs: [p, p],
      output_size: {size}}}
"""
    report = analyze_text(text)
    row = report.layers[-1]
    t = tb.kit()
    reach = row.layer.probe(row.ctx, t)
    torch.manual_seed(0)
    for _ in range(5):
        _, idx = torch.nn.functional.max_pool1d(torch.randn(1, 1, size), kernel, stride, padding, dilation, ceil,
                                                return_indices=True)
        for i in range(idx.shape[-1]):
            onehot = torch.zeros(1, 1, idx.shape[-1])
            onehot[..., i] = 1
            out = reach(onehot)
            assert out.shape[-1] == size and out[0, 0, idx[0, 0, i]] > 0


def test_export_writes_torchs_own_pool_and_unpool():
    """`cnncalc export --to torch` writes nn.MaxPool2d(return_indices=True), unpacks its indices and
    hands them to nn.MaxUnpool2d with the output size; the file computes what the executor does."""
    from cnncalc.interop.torch_export import exported_module, to_torch

    report = analyze_text(SEGNET.format(h=15, w=17))
    text = to_torch(report)
    assert "return_indices=True" in text and "self.up1 = nn.MaxUnpool2d(" in text
    assert "pool1, pool1_indices = self.pool1(enc1)" in text
    assert "self.up1(dec2, pool1_indices, output_size=[15, 17])" in text
    assert "MaxPoolIndices" not in text and "unpool_indices" not in text
    torch.manual_seed(0)
    model = tb.build_model(report, tb.kit()).eval()
    net = exported_module(report, model).eval()
    x = torch.randn(report.input_shape)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))


def test_the_segnet_imports_back_to_the_spec_above():
    """`cnncalc import` of the torch SegNet (its shared pool and unpool modules, output_size as
    `e.shape[2:]`) at 15×17 writes a spec whose every layer's shape and totals equal those of
    the hand-written SEGNET (the importer has also proved it against the model)."""
    import cnncalc
    from cnncalc.interop.torch_import import import_model
    from cnncalc.spec import parse_spec

    text, _ = import_model(SegNet(), (3, 15, 17), "segnet", [])
    assert "output_size: [7, 8], inputs: [mid, pool_1]}" in text and "output_size: [15, 17], inputs: [dec2, pool]}" in text
    imported, hand = cnncalc.analyze(parse_spec(text), batch=2), analyze_text(SEGNET.format(h=15, w=17))
    assert [r.output_shape for r in imported.layers] == [r.output_shape for r in hand.layers]
    assert {k: imported.totals[k] for k in ("params", "macs", "flops")} == {k: hand.totals[k] for k in
                                                                          ("params", "macs", "flops")}
