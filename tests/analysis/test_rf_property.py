"""Property test of the receptive fields issue #27 §3 found marked exact while wrong: random 2-D
networks built from those patterns (a slice of a concat of branches with different fields,
through channel-wise layers and channel shuffles; pixel_unshuffle then pixel_shuffle; a
squeeze-and-excitation gate written with linear + view; a gate pooled from a crop; a
channels-last linear sub-graph merged with a conv; a strided pool after a nearest upsampling),
judged by torch: the real network (random weights, float64, smooth activations so that no
gradient is zero by chance) back-propagated from single output units. Every field the analysis
calls exact must be each unit's window; a whole field every unit's read of what the layer reads;
every window `rf --unit` calls exact must be the pixels torch reaches.

CI-sized by default; CNNCALC_DEEP=N runs N examples."""
import os

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # networks built in torch, many backward passes each

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402
from cnncalc.analysis.unit_field import unit_field  # noqa: E402

EXAMPLES = int(os.environ.get("CNNCALC_DEEP", "25"))


def _conv(name, inputs, c, k, pad, stride=1, groups=1):
    return dict(name=name, type="conv2d", inputs=inputs, out_channels=c, kernel_size=k, padding=pad,
                stride=stride, groups=groups)


@st.composite
def networks(draw):
    c = 4
    size = draw(st.integers(12, 18)) * 2  # even: pixel_unshuffle and ×2 patterns fit
    layers = [_conv("stem", ["input"], c, draw(st.integers(1, 3)), 1, draw(st.sampled_from([1, 1, 2])))]
    for i in range(draw(st.integers(1, 3))):
        prev = layers[-1]["name"]
        kind = draw(st.sampled_from(["slice", "slice", "shuffle", "se_linear", "crop_gate", "channels_last",
                                     "up_pool", "depthwise"]))
        p = f"b{i}"
        if kind == "slice":
            ka, kb = draw(st.integers(1, 2)), draw(st.integers(2, 4))
            layers.append(_conv(f"{p}a", [prev], c // 2, ka, 0))
            layers.append(dict(name=f"{p}pa", type="zero_pad2d", padding=[0, ka - 1, 0, ka - 1]))
            layers.append(_conv(f"{p}b", [prev], c // 2, kb, 0))
            layers.append(dict(name=f"{p}pb", type="zero_pad2d", padding=[0, kb - 1, 0, kb - 1]))
            layers.append(dict(name=f"{p}c", type="concat", inputs=[f"{p}pa", f"{p}pb"]))
            last = f"{p}c"
            for j, mid in enumerate(draw(st.lists(st.sampled_from(["sigmoid", "avgpool", "dw", "shuffle"]),
                                                  max_size=2))):
                n = f"{p}m{j}"
                if mid == "sigmoid":
                    layers.append(dict(name=n, type="sigmoid", inputs=[last]))
                elif mid == "avgpool":
                    layers.append(dict(name=n, type="avgpool2d", inputs=[last], kernel_size=3, stride=1, padding=1))
                elif mid == "dw":
                    layers.append(_conv(n, [last], c, 3, 1, groups=c))
                else:
                    layers.append(dict(name=n, type="channel_shuffle", inputs=[last], groups=2))
                last = n
            how = draw(st.sampled_from(["chunk", "narrow"]))
            if how == "chunk":
                layers.append(dict(name=f"{p}s", type="chunk", inputs=[last], chunks=2))
                layers.append(dict(name=f"{p}t", type="sigmoid", inputs=[f"{p}s.{draw(st.integers(0, 1))}"]))
            else:
                start = draw(st.integers(0, c - 1))
                layers.append(dict(name=f"{p}t", type="narrow", inputs=[last], start=start,
                                   length=draw(st.integers(1, c - start))))
            layers.append(_conv(f"{p}u", [f"{p}t"], c, 1, 0))
        elif kind == "shuffle":
            layers.append(dict(name=f"{p}u", type="pixel_unshuffle", inputs=[prev], downscale_factor=2))
            if draw(st.booleans()):
                layers.append(dict(name=f"{p}s", type="sigmoid"))
            layers.append(dict(name=f"{p}p", type="pixel_shuffle", upscale_factor=2))
        elif kind == "se_linear":
            layers += [dict(name=f"{p}g", type="adaptive_avgpool2d", inputs=[prev], output_size=1),
                       dict(name=f"{p}f", type="flatten"),
                       dict(name=f"{p}l", type="linear", out_features=2),
                       dict(name=f"{p}h", type="sigmoid"),
                       dict(name=f"{p}l2", type="linear", out_features=c),
                       dict(name=f"{p}v", type="view", shape=[c, 1, 1]),
                       dict(name=f"{p}m", type="mul", inputs=[prev, f"{p}v"])]
        elif kind == "crop_gate":
            crop = draw(st.integers(1, 4))
            layers += [dict(name=f"{p}c", type="zero_pad2d", inputs=[prev], padding=-crop),
                       dict(name=f"{p}g", type="adaptive_avgpool2d", output_size=1),
                       dict(name=f"{p}m", type="mul", inputs=[prev, f"{p}g"])]
        elif kind == "channels_last":
            layers += [dict(name=f"{p}p", type="permute", inputs=[prev], dims=[0, 2, 3, 1]),
                       dict(name=f"{p}l", type="linear", out_features=c),
                       dict(name=f"{p}q", type="permute", dims=[0, 3, 1, 2]),
                       _conv(f"{p}d", [prev], c, 3, 1),
                       dict(name=f"{p}m", type="add", inputs=[f"{p}q", f"{p}d"])]
        elif kind == "up_pool":
            layers += [dict(name=f"{p}u", type="upsample", inputs=[prev], scale_factor=2, mode="nearest"),
                       dict(name=f"{p}p", type="avgpool2d", kernel_size=draw(st.integers(2, 3)),
                            stride=draw(st.integers(2, 3)))]
        else:
            layers.append(_conv(f"{p}d", [prev], c, 3, 1, groups=c))
    return {"input": [c, size, size], "layers": layers}


def _support(grad):
    """Per spatial axis, the first and last input pixel with a gradient (None: none)."""
    g = grad[0].abs().sum(dim=0)
    out = []
    for a in range(g.dim()):
        hit = torch.nonzero(g.sum(dim=tuple(d for d in range(g.dim()) if d != a)) > 0).flatten()
        out.append((int(hit[0]), int(hit[-1])) if len(hit) else None)
    return out


def _check(report):
    torch.manual_seed(0)
    model = tb.build_model(report, tb.kit()).to(dtype=torch.float64).eval()
    x = torch.randn(report.input_shape, dtype=torch.float64, requires_grad=True)
    size = report.input_shape[2:]
    for row in report.layers:
        field = row.receptive_field
        if field is None:
            continue
        out = model(x, stop=row.index)
        spatial = out.shape[2:]
        units = sorted({tuple(0 for _ in spatial), tuple(n // 2 for n in spatial), tuple(n - 1 for n in spatial)})
        union = _support(torch.autograd.grad(out.sum(), x, retain_graph=True)[0])
        for unit in units:
            (grad,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), x, retain_graph=True)
            got = _support(grad)
            where = f"{row.name} unit {unit}"
            for a, (f, g) in enumerate(zip(field, got)):
                if not f.exact:
                    continue
                if f.whole:
                    assert g == union[a], f"{where}: not whole along axis {a}: {g} vs the layer's {union[a]}"
                    continue
                if f.even:  # unit u's window is centred at start + u·jump: where it lies inside, torch sees it all
                    lo = f.start + unit[a] * f.jump - (f.size - 1) / 2
                    hi = lo + f.size - 1
                    if lo >= 0 and hi <= size[a] - 1:
                        assert g == (lo, hi), f"{where} axis {a}: torch {g}, field {(lo, hi)} size {f.size}"
                elif g is not None:
                    assert g[1] - g[0] + 1 <= f.size, f"{where} axis {a}: torch {g} wider than {f.size}"
            for a, axis in enumerate(unit_field(report, row.name, unit)):
                if axis["exact"]:
                    want = got[a]
                    clipped = tuple(axis["clipped"]) if axis["clipped"][0] <= axis["clipped"][1] else None
                    assert clipped == want, f"rf --unit {where} axis {a}: {clipped}, torch {want}"


#: found by the 10,000-network run (seed 27016, after 3,868 passing): `rf --unit` of a chunk's piece followed the
#: concat's other branch; the piece's own channels read only zero padding at its last unit (torch: nothing)
PIECE_OF_PADDING = {"input": [4, 24, 24], "layers": [
    _conv("stem", ["input"], 4, 1, 1), dict(name="b0c", type="zero_pad2d", inputs=["stem"], padding=-1),
    dict(name="b0g", type="adaptive_avgpool2d", output_size=1), dict(name="b0m", type="mul", inputs=["stem", "b0g"]),
    _conv("b1a", ["b0m"], 2, 2, 0), dict(name="b1pa", type="zero_pad2d", padding=[0, 1, 0, 1]),
    _conv("b1b", ["b0m"], 2, 3, 0), dict(name="b1pb", type="zero_pad2d", padding=[0, 2, 0, 2]),
    dict(name="b1c", type="concat", inputs=["b1pa", "b1pb"]),
    dict(name="b1m0", type="avgpool2d", inputs=["b1c"], kernel_size=3, stride=1, padding=1),
    dict(name="b1s", type="chunk", inputs=["b1m0"], chunks=2), dict(name="b1t", type="sigmoid", inputs=["b1s.0"]),
    _conv("b1u", ["b1t"], 4, 1, 0)]}


#: found by the review: a slice of pixel_unshuffle's channels reads one offset of each block (not the block), and
#: a narrow after a permute cuts a spatial axis (its offset moves the field): neither may be called exact
SLICE_OF_UNSHUFFLE = {"input": [1, 8, 8], "layers": [
    dict(name="u", type="pixel_unshuffle", inputs=["input"], downscale_factor=2),
    dict(name="n", type="narrow", start=0, length=1), _conv("c", ["n"], 1, 1, 0)]}
NARROW_OF_A_PERMUTE = {"input": [2, 4, 6], "layers": [
    dict(name="p", type="permute", inputs=["input"], dims=[0, 3, 1, 2]), dict(name="n", type="narrow", start=3, length=2),
    dict(name="q", type="permute", dims=[0, 2, 3, 1]), _conv("c", ["q"], 1, 1, 0)]}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(networks())
@example(spec=PIECE_OF_PADDING)
@example(spec=SLICE_OF_UNSHUFFLE)
@example(spec=NARROW_OF_A_PERMUTE)
def test_fields_marked_exact_are_what_torch_reads(spec):
    import yaml

    try:
        report = cnncalc.analyze(cnncalc.parse_spec(yaml.safe_dump(spec, sort_keys=False), "rf.yaml"))
    except cnncalc.CnnError:  # a size the patterns do not fit (an odd map for pixel_unshuffle)
        assume(False)
    _check(report)


SHARE: list[tuple[int, int]] = []


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(networks())
def _tally_exact_fields(spec):
    import yaml

    try:
        report = cnncalc.analyze(cnncalc.parse_spec(yaml.safe_dump(spec, sort_keys=False), "rf.yaml"))
    except cnncalc.CnnError:
        return
    fields = [row.receptive_field for row in report.layers if row.receptive_field is not None]
    SHARE.append((sum(all(f.exact for f in field) for field in fields), len(fields)))
    assert all(f.exact for f in report.layers[0].receptive_field)  # the stem conv: always exact


def test_the_patterns_leave_most_fields_exact():
    """The property test above judges only the fields the analysis calls exact: an analysis that
    marked everything inexact would pass it. So, over a fixed draw of the same networks, most
    fields (measured: 81% of 1,092 in 150 networks) must be exact — only uneven upsample/pool
    spacings and the like are not."""
    SHARE.clear()
    _tally_exact_fields()
    exact, total = map(sum, zip(*SHARE))
    assert total > 200 and exact / total >= 0.7, (exact, total)
