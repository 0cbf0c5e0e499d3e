"""Property-based differential test: random valid networks (chains with branches and merges,
mixed strides, dilations, groups and paddings) analysed and built in torch: zero mismatches.

CI-sized by default; CNNCALC_DEEP=N runs N examples."""
import json
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # random networks built in torch: a minute or more on 2 cores (#24)

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402
from cnncalc.layers import REGISTRY  # noqa: E402

EXAMPLES = int(os.environ.get("CNNCALC_DEEP", "30"))
#: the CI-sized run draws the same networks every time (a red run is one a person can rerun); long
#: runs (CNNCALC_DEEP=N, --hypothesis-seed=S) draw new ones
FIXED = "CNNCALC_DEEP" not in os.environ


def _valid(entry):
    try:
        REGISTRY[entry["type"]].model_validate(entry)
    except ValueError:
        return False
    return True


#: the registry's activations that need no field (any new one is drawn too); those that take
#: `inplace` (the others fix it to false)
ACTIVATIONS = sorted(k for k, cls in REGISTRY.items() if cls.category == "activation" and _valid({"type": k}))
INPLACE = {k for k in ACTIVATIONS if _valid({"type": k, "inplace": True})}


@st.composite
def networks(draw):
    """1-D, 2-D or 3-D: convs (every padding mode), pools, activations (every one the registry
    holds that needs no field), norms, dropout variants,
    transposed convs (output_padding, dilation), resizes (float scales, every mode), explicit
    pads (cropping too), branches merged by add, mul or concat, and what backward formulas
    allocate (#27): broadcast gates, one tensor read twice by a merge, merges of 3 or 4 inputs,
    prelu, circular pads, lppool, padding: same (even kernels), in-place activations on views,
    chunk/split pieces concatenated back, and channels-last linears and flattens."""
    d = draw(st.sampled_from([1, 2, 2, 2, 3]))
    c = draw(st.integers(1, 4))
    size = draw(st.integers(6, 20 if d < 3 else 9))
    layers = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "norm", "tconv", "branch", "skew", "up",
                                     "drop", "pad", "gate", "twice", "three", "prelu", "circular", "lppool", "same",
                                     "view-inplace", "pieces", "channels-last"]))
        name = f"l{i}"
        prev = layers[-1]["name"] if layers else "input"
        if kind == "conv":
            g = draw(st.sampled_from([1, 1, 2]))
            layers.append(dict(name=name, type=f"conv{d}d", out_channels=2 * draw(st.integers(1, 3)),
                               kernel_size=draw(st.integers(1, 4)), stride=draw(st.integers(1, 3)),
                               padding=draw(st.integers(0, 2)), dilation=draw(st.integers(1, 2)),
                               groups=g, bias=draw(st.booleans()),
                               padding_mode=draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate",
                                                                  "circular"]))))
        elif kind == "pool":
            k = draw(st.integers(1, 3))
            layers.append(dict(name=name, type=draw(st.sampled_from([f"maxpool{d}d", f"avgpool{d}d"])), kernel_size=k,
                               stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, k // 2)),
                               ceil_mode=draw(st.booleans())))
        elif kind == "act":
            act = draw(st.sampled_from(ACTIVATIONS))
            layers.append(dict(name=name, type=act, **({"inplace": True} if draw(st.booleans()) and i else {})))
            if act not in INPLACE:
                layers[-1].pop("inplace", None)
        elif kind == "norm":
            layers.append(dict(name=name, type=f"batchnorm{d}d"))
        elif kind == "drop":
            layers.append(dict(name=name, type=draw(st.sampled_from(["dropout", f"dropout{d}d"])),
                               p=draw(st.sampled_from([0.0, 0.5]))))
        elif kind == "pad":
            layers.append(dict(name=name, type=draw(st.sampled_from([f"zero_pad{d}d", f"replication_pad{d}d"])),
                               padding=draw(st.integers(0, 2))))
            if layers[-1]["type"].startswith("zero") and draw(st.booleans()):
                layers[-1]["padding"] = [draw(st.integers(-1, 2)) for _ in range(2 * d)]  # negative crops
        elif kind == "tconv":
            s = draw(st.integers(1, 3))
            layers.append(dict(name=name, type=f"conv_transpose{d}d", out_channels=draw(st.integers(1, 4)),
                               kernel_size=draw(st.integers(1, 4)), stride=s, padding=draw(st.integers(0, 1)),
                               dilation=draw(st.integers(1, 2)), output_padding=draw(st.integers(0, s - 1))))
        elif kind == "up":
            modes = ["nearest", "nearest-exact", {1: "linear", 2: "bilinear", 3: "trilinear"}[d]]
            layers.append(dict(name=name, type="upsample", scale_factor=draw(st.sampled_from([2, 3, 0.5, 0.7, 1.5])),
                               mode=draw(st.sampled_from(modes + (["bicubic"] if d == 2 else [])))))
        elif kind == "skew":  # windows shifted left and right: a merge reads their union
            prev = layers[-1]["name"] if layers else "input"
            k, p = draw(st.integers(2, 4)), draw(st.integers(0, 3))
            for side, pads in (("a", [[p, 0]] + [[0, p]] * (d - 1)), ("b", [[0, p]] + [[p, 0]] * (d - 1))):
                layers.append(dict(name=f"{name}{side}", type=f"conv{d}d", inputs=[prev], out_channels=2,
                                   kernel_size=k, padding=pads))
            layers.append(dict(name=name, type=draw(st.sampled_from(["add", "mul", "concat"])),
                               inputs=[f"{name}a", f"{name}b"]))
        elif kind == "gate":  # a broadcast gate (channel or spatial, a squeeze-and-excitation one) times the map
            layers.append(dict(name=f"{name}p", type="global_avgpool", inputs=[prev]) if draw(st.booleans()) else
                          dict(name=f"{name}p", type=f"conv{d}d", inputs=[prev], out_channels=1, kernel_size=1))
            layers.append(dict(name=f"{name}g", type="sigmoid"))
            order = [prev, f"{name}g"] if draw(st.booleans()) else [f"{name}g", prev]
            layers.append(dict(name=name, type="mul", inputs=order))
        elif kind == "twice":  # one tensor read two or three times by one merge
            reads = [prev] * draw(st.integers(2, 3))
            layers.append(dict(name=name, type=draw(st.sampled_from(["add", "mul", "concat"])), inputs=reads))
        elif kind == "three":  # three or four inputs merged: pairwise partial sums and products
            layers.append(dict(name=f"{name}a", type=f"conv{d}d", inputs=[prev], out_channels=2, kernel_size=1))
            layers.append(dict(name=f"{name}b", type=f"conv{d}d", inputs=[prev], out_channels=2, kernel_size=1,
                               bias=False))
            reads = [f"{name}a", f"{name}b", draw(st.sampled_from([f"{name}a", f"{name}b"]))]
            if draw(st.booleans()):
                layers.append(dict(name=f"{name}g", type="global_avgpool", inputs=[f"{name}a"]))
                reads.append(f"{name}g")
            layers.append(dict(name=name, type=draw(st.sampled_from(["add", "mul", "mul"])),
                               inputs=draw(st.permutations(reads))))
        elif kind == "prelu":
            layers.append(dict(name=name, type="prelu", **({"num_parameters": "channels"} if draw(st.booleans()) else {})))
        elif kind == "circular":
            layers.append(dict(name=name, type=f"circular_pad{d}d",
                               padding=[draw(st.integers(0, 3)) for _ in range(2 * d)]))
        elif kind == "lppool" and d < 3:
            k = draw(st.integers(1, 3))
            layers.append(dict(name=name, type=f"lppool{d}d", norm_type=draw(st.sampled_from([1, 2, 3])), kernel_size=k,
                               stride=draw(st.integers(1, 3)), ceil_mode=draw(st.booleans())))
        elif kind == "lppool":
            layers.append(dict(name=name, type="relu"))
        elif kind == "same":  # torch's padding='same' with even or odd kernels (the even ones pad inside the op)
            layers.append(dict(name=name, type=f"conv{d}d", out_channels=2 * draw(st.integers(1, 3)), padding="same",
                               kernel_size=[draw(st.integers(1, 4)) for _ in range(d)],
                               dilation=draw(st.integers(1, 3)), trainable=draw(st.sampled_from([True, True, False]))))
        elif kind == "view-inplace":  # an in-place activation on a view of a computed map
            layers.append(dict(name=f"{name}c", type=f"conv{d}d", inputs=[prev], out_channels=4, kernel_size=1))
            view = draw(st.sampled_from(["narrow", "transpose", "chunk"]))
            if view == "narrow":
                layers.append(dict(name=f"{name}v", type="narrow", start=draw(st.integers(0, 2)),
                                   length=draw(st.integers(1, 2))))
            elif view == "chunk":
                layers.append(dict(name=f"{name}v", type="chunk", chunks=2))
            else:
                layers.append(dict(name=f"{name}v", type="transpose", dim0=2, dim1=1 + d))
            act = draw(st.sampled_from(sorted(INPLACE)))
            layers.append(dict(name=f"{name}a", type=act, inplace=True))
            if view == "transpose":  # back to (N, C, …) order
                layers.append(dict(name=f"{name}t", type="transpose", dim0=2, dim1=1 + d))
            layers.append(dict(name=name, type=f"conv{d}d", out_channels=2, kernel_size=1))
        elif kind == "pieces":  # chunk / split into pieces, some used, concatenated back in any order
            layers.append(dict(name=f"{name}c", type=f"conv{d}d", inputs=[prev], out_channels=6, kernel_size=1))
            if draw(st.booleans()):
                layers.append(dict(name=f"{name}s", type="chunk", chunks=draw(st.sampled_from([2, 3])), inputs=[f"{name}c"]))
                count = layers[-1]["chunks"]
            else:
                layers.append(dict(name=f"{name}s", type="split", sizes=draw(st.sampled_from([[1, 5], [2, 2, 2], [3, 3]])),
                                   inputs=[f"{name}c"]))
                count = len(layers[-1]["sizes"])
            pieces = [f"{name}s.{j}" for j in range(count)]
            if draw(st.booleans()):
                layers.append(dict(name=f"{name}p", type=f"conv{d}d", inputs=[pieces[0]], out_channels=2, kernel_size=1))
                pieces[0] = f"{name}p"
            used = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=4))
            layers.append(dict(name=name, type="concat", inputs=used) if len(used) > 1 else
                          dict(name=name, type="relu", inputs=used))
        elif kind == "channels-last":  # permute to channels-last, linear or flatten, back
            layers.append(dict(name=f"{name}p", type="permute", inputs=[prev], dims=[0, *range(2, d + 2), 1]))
            if draw(st.booleans()):
                layers.append(dict(name=f"{name}l", type="linear", out_features=draw(st.integers(1, 4)),
                                   trainable=draw(st.sampled_from([True, True, False])), bias=draw(st.booleans())))
                layers.append(dict(name=f"{name}b", type="permute", dims=[0, d + 1, *range(1, d + 1)]))
                after = draw(st.sampled_from(["relu", f"conv{d}d", None]))
                if after is None:  # the permuted map is the network's output (its loss gradient arrives permuted)
                    break
                layers.append(dict(name=name, type=after))
                if layers[-1]["type"] != "relu":
                    layers[-1].update(out_channels=2, kernel_size=1)
            else:  # flatten of the permuted map: reshape copies; the end of the network
                layers.append(dict(name=name, type="flatten", start_dim=draw(st.integers(1, d))))
                layers.append(dict(name=f"{name}z", type="linear", out_features=3))
                break
        else:  # a parallel 1×1 / 3×3 pair merged by add or concat
            prev = layers[-1]["name"] if layers else "input"
            layers.append(dict(name=f"{name}a", type=f"conv{d}d", inputs=[prev], out_channels=4, kernel_size=1))
            layers.append(dict(name=f"{name}b", type=f"conv{d}d", inputs=[prev], out_channels=4, kernel_size=3,
                               padding=1))
            layers.append(dict(name=name, type=draw(st.sampled_from(["add", "concat"])), inputs=[f"{name}a", f"{name}b"]))
    sizes = [size + draw(st.integers(0, 5 if d < 3 else 2)) for _ in range(d)]
    text = f"input: {[c, *sizes]}\nbatch: {draw(st.integers(1, 2))}\nlayers:\n"
    return text + "".join(f"  - {json.dumps(layer)}\n" for layer in layers)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=FIXED, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_random_networks_agree_with_torch(text):
    try:
        report = cnncalc.analyze(cnncalc.parse_spec(text))
    except cnncalc.CnnError:
        report = None  # an invalid draw (e.g. a kernel larger than its input): rejected with a message
    assume(report is not None)
    t = tb.kit()
    model = tb.build_model(report, t).eval()
    checks = tb.measure_counts(report, model, torch.randn(report.input_shape), t)
    for idx, res in tb.probe_rf(report, tb.probeable(report), t).items():
        if isinstance(res, tuple):  # else a not_checked Status
            checks[idx].rf = res
    assert tb.compare(report, checks) == [], text


@settings(max_examples=EXAMPLES, deadline=None, derandomize=FIXED, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.sampled_from(["sgd", "momentum", "adam"]))
def test_random_networks_memory_matches_torch(text, optimizer):
    """Inference peak and training step as torch allocates them (the profiler's allocation
    events, operator workspace apart): equal but for a few 0-dim scalars torch makes."""
    from cnncalc.backend.measure import measure_peak, measure_training

    try:
        report = cnncalc.analyze(cnncalc.parse_spec(text), optimizer=optimizer)
    except cnncalc.CnnError:
        report = None
    assume(report is not None and all(r.layer.memory_exact for r in report.layers))
    t, cpu = tb.kit(), torch.device("cpu")
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    x = torch.randn(report.input_shape)
    inference = measure_peak(model, x, t, cpu)
    try:
        training = measure_training(model, x, t, cpu, optimizer)
    except (ValueError, RuntimeError):  # batch norm over one value per channel, an in-place layer
        # overwriting what an earlier one keeps for backward: torch cannot train these
        training = None
    assume(training is not None)
    totals = report.totals
    assert abs(inference.tensors - totals["inference_peak_activation_bytes"]) <= 64, text
    assert abs(training.tensors - totals["training_memory_bytes"]) <= 256, (text, totals["training_peak_phase"])


@settings(max_examples=EXAMPLES, deadline=None, derandomize=FIXED, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.integers(0, 2**16))
def test_rf_unit_windows_match_the_gradient(text, pick):
    """Every window `rf --unit` calls exact is the hull of the input pixels torch's gradient
    reaches from that unit."""
    from cnncalc.analysis.unit_field import unit_field

    try:
        report = cnncalc.analyze(cnncalc.parse_spec(text))
    except cnncalc.CnnError:
        report = None
    assume(report is not None)
    rows = [r for r in report.layers if r.receptive_field is not None]
    # the probe's stand-ins carry no bias: a mul with a branch that reads only padding (0)
    # would hide what the other branch reaches
    assume(rows and not any(r.type == "mul" for r in report.layers))
    row = rows[pick % len(rows)]
    spatial = row.output_shape[2:]
    unit = tuple((pick // 7 + 3 * a) % s for a, s in enumerate(spatial))
    axes = unit_field(report, row.name, unit)
    model = tb.probe_model(report, row.index, tb.kit())
    x = torch.ones((1, 1, *report.input_shape[2:]), dtype=torch.float64, requires_grad=True)
    out = model(x, stop=row.index)
    (g,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), x)
    reached = torch.nonzero(g[0].abs().sum(0) > 0)
    for a, axis in enumerate(axes):
        if not axis["exact"]:
            continue
        if axis["clipped"][0] > axis["clipped"][1]:  # all in padding: no pixel
            assert len(reached) == 0, (text, row.name, unit, a)
        else:
            assert [int(reached[:, a].min()), int(reached[:, a].max())] == axis["clipped"], (text, row.name, unit, a)
