"""Issue #25 §6: `view` of a tensor whose strides no longer allow it (after permute, transpose or
a slice) is refused exactly where torch refuses it. Judged by torch itself: each generated chain
of permute / transpose / narrow / view / reshape / flatten and element-wise layers (relu, gelu,
sigmoid, dropout, add, mul, which keep a dense layout in torch; batchnorm, which cnncalc does not
follow) is run on a real tensor and every `.view` tried. And every layer class that declares
`keeps_layout` is run by torch on permuted, channels-last and sliced inputs: wherever cnncalc
states the output's strides, they are torch's."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnncalc
from cnncalc.analysis.strides import contiguous, through
from cnncalc.layers.base import REGISTRY

torch = pytest.importorskip("torch")


def _tracked(report) -> dict:
    """Each tensor's strides as the analysis tracks them (`through`, layer by layer from a contiguous input)."""
    memory = {"input": contiguous(report.input_shape)}
    for row in report.layers:
        memory[row.name] = through(row.layer, list(row.ctx.ins), row.ctx.out, [memory[n] for n in row.inputs])
    return memory


ELEMENTWISE = ["relu", "gelu", "sigmoid", "dropout", "add", "mul", "batchnorm"]


def factorings(n: int) -> list[list[int]]:
    """Ways to write n as a product of 1 to 3 sizes (order matters), and with one -1."""
    divs = [d for d in range(1, n + 1) if n % d == 0]
    out = [[n]] + [[d, n // d] for d in divs] + [[a, b, n // (a * b)] for a in divs for b in divs if n % (a * b) == 0]
    return out + [[-1]] + [[d, -1] for d in divs] + [[-1, d] for d in divs]


@st.composite
def chains(draw):
    shape = [draw(st.integers(1, 2))] + draw(st.lists(st.sampled_from([1, 2, 3, 4, 2, 3]), min_size=2, max_size=3))
    ops, cur = [], list(shape)
    n = draw(st.integers(1, 6))
    focused = draw(st.booleans())  # a reordering or slice first and a view last: where torch refuses
    for k in range(n):
        rank, rest = len(cur), 1
        for s in cur[1:]:
            rest *= s
        first, last = focused and k == 0, focused and k == n - 1
        kind = "view" if last else draw(st.sampled_from(["permute", "transpose", "narrow"])) if first else draw(
            st.sampled_from(ELEMENTWISE)) if focused else draw(
            st.sampled_from(["permute", "permute", "transpose", "view", "view", "view", "reshape", "flatten",
                             "narrow"] + ELEMENTWISE))
        if kind == "permute" and rank > 2:
            dims = [0] + draw(st.permutations(list(range(1, rank))))
            ops.append(("permute", dims))
            cur = [cur[d] for d in dims]
        elif kind == "transpose" and rank > 2:
            a, b = draw(st.lists(st.integers(1, rank - 1), min_size=2, max_size=2, unique=True))
            ops.append(("transpose", [a, b]))
            cur[a], cur[b] = cur[b], cur[a]
        elif kind in ("view", "reshape"):
            sizes = draw(st.sampled_from(factorings(rest)))
            ops.append((kind, sizes))
            known = 1
            for s in sizes:
                known *= s if s != -1 else 1
            cur = [cur[0]] + [rest // known if s == -1 else s for s in sizes]
        elif kind == "flatten":
            ops.append(("flatten", None))
            cur = [cur[0], rest]
        elif kind == "narrow" and cur[1] > 1:
            start = draw(st.integers(0, cur[1] - 1))
            length = draw(st.integers(1, cur[1] - start))
            ops.append(("narrow", [start, length]))
            cur[1] = length
        elif kind in ELEMENTWISE:
            ops.append((kind, len(cur)))
        else:
            ops.append(("relu", len(cur)))
    return shape, ops


def followed(x, kind) -> bool:
    """Whether cnncalc promises to know the layout after element-wise `kind` on torch tensor x:
    a contiguous input (with the canonical strides: relu on a contiguous input whose size-1 axes
    have odd strides gives other strides than empty_like), or (a layer keeping the layout) a
    dense one (torch's own test: empty_like keeps exactly the strides of a non-overlapping, dense
    tensor) that is not channels-last with other strides than torch's canonical ones."""
    if x.is_contiguous():  # with odd strides on size-1 axes torch's output strides vary by op: unknown
        return x.stride() == torch.empty(x.shape).stride()
    if kind == "batchnorm" or torch.empty_like(x).stride() != x.stride():
        return False
    return not (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
                and x.stride() != torch.empty(x.shape, memory_format=torch.channels_last).stride())


def elementwise(x, kind):
    F = torch.nn.functional
    if kind == "batchnorm":
        c = x.shape[1]
        return F.batch_norm(x, torch.zeros(c), torch.ones(c), training=False)
    return {"relu": torch.relu, "gelu": F.gelu, "sigmoid": torch.sigmoid, "add": lambda t: t + t,
            "mul": lambda t: t * t, "dropout": lambda t: F.dropout(t, 0.5, training=True)}[kind](x)


def in_torch(shape, ops):
    """The index of the first op torch refuses (a .view), or None; and whether an element-wise
    layer ran where cnncalc does not promise to know the layout (`followed`; cnncalc then stops
    judging views)."""
    x = torch.zeros(*shape)
    unknown = False
    for i, (kind, arg) in enumerate(ops):
        if kind == "permute":
            x = x.permute(*arg)
        elif kind == "transpose":
            x = x.transpose(*arg)
        elif kind == "view":
            try:
                x = x.view(x.shape[0], *arg)
            except RuntimeError:
                return i, unknown
        elif kind == "reshape":
            x = x.reshape(x.shape[0], *arg)
        elif kind == "flatten":
            x = x.flatten(1)
        elif kind == "narrow":
            x = x.narrow(1, *arg)
        else:
            unknown = unknown or not followed(x, kind)
            x = elementwise(x, kind)
    return None, unknown


def spec(shape, ops) -> str:
    lines = [f"input: {'x'.join(map(str, shape[1:]))}", f"batch: {shape[0]}", "layers:"]
    for i, (kind, arg) in enumerate(ops):
        prev = f"l{i - 1}" if i else "input"
        head = f"  - {{name: l{i}, "
        if kind == "permute":
            lines.append(f"{head}type: permute, dims: {arg}}}")
        elif kind == "transpose":
            lines.append(f"{head}type: transpose, dim0: {arg[0]}, dim1: {arg[1]}}}")
        elif kind in ("view", "reshape"):
            lines.append(f"{head}type: {kind}, shape: {arg}}}")
        elif kind == "narrow":
            lines.append(f"{head}type: narrow, start: {arg[0]}, length: {arg[1]}}}")
        elif kind in ("add", "mul"):
            lines.append(f"{head}type: {kind}, inputs: [{prev}, {prev}]}}")
        elif kind == "batchnorm":
            lines.append(f"{head}type: batchnorm{max(1, arg - 2)}d}}")
        else:
            lines.append(f"{head}type: {kind}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_view_is_refused_exactly_where_torch_refuses_it(chain):
    shape, ops = chain
    refused_at, unknown = in_torch(shape, ops)
    text = spec(shape, ops)
    try:
        cnncalc.analyze(cnncalc.parse_spec(text, "v.yaml"))
        ours = None
    except cnncalc.CnnError as exc:
        (problem,) = exc.problems
        assert "view of a non-contiguous tensor" in problem.message and "torch refuses" in problem.message, problem
        assert problem.line is not None and "type: view" in text.splitlines()[problem.line - 1]
        ours = problem.line - 4  # the layer's index: layers start on line 4
    if ours is not None:  # never refuse what torch accepts
        assert refused_at == ours, (text, refused_at)
    elif not unknown:  # exact wherever every layout on the way is known
        assert refused_at is None, (text, refused_at)


def test_the_readme_example_a_view_after_a_permute():
    text = "input: 3x4x5\nlayers:\n  - {type: permute, dims: [0, 2, 3, 1]}\n  - {type: view, shape: [-1]}\n"
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.analyze(cnncalc.parse_spec(text, "v.yaml"))
    assert re.match(r"v\.yaml:4:\d+: view_1 \(#1\): view of a non-contiguous tensor", str(err.value))
    with pytest.raises(RuntimeError):  # torch agrees
        torch.zeros(1, 3, 4, 5).permute(0, 2, 3, 1).view(1, -1)
    # merging the two axes that stay adjacent in memory is a view torch makes, and so is accepted
    ok = text.replace("shape: [-1]", "shape: [20, 3]")
    assert cnncalc.analyze(cnncalc.parse_spec(ok)).layers[-1].output_shape == (1, 20, 3)
    torch.zeros(1, 3, 4, 5).permute(0, 2, 3, 1).view(1, 20, 3)


KEEPERS = sorted(name for name, cls in REGISTRY.items() if cls.keeps_layout is not False)
LAYOUTS = [  # (input without batch, batch, layers before the one under test)
    ("3x4x5", 2, ["{type: permute, dims: [0, 2, 3, 1]}"]),  # dense, permuted
    ("3x4x5", 2, ["{type: permute, dims: [0, 3, 1, 2]}"]),  # channels-last, canonical
    ("3x4x5", 2, ["{type: transpose, dim0: 1, dim1: 3}"]),  # dense, permuted
    ("1x4x1", 1, ["{type: permute, dims: [0, 2, 3, 1]}"]),  # size-1 axes with odd strides
    ("3x1x5", 1, ["{type: permute, dims: [0, 3, 1, 2]}"]),  # channels-last with a size-1 axis
    ("2x3x1", 1, ["{type: permute, dims: [0, 3, 1, 2]}"]),
    ("4x3x5", 2, ["{type: narrow, start: 1, length: 2}"]),  # a slice: not dense
    ("4x3x5", 2, ["{type: permute, dims: [0, 2, 3, 1]}", "{type: narrow, start: 0, length: 2}"]),
]


def test_the_keepers_are_the_element_wise_layers():
    assert {"relu", "gelu", "sigmoid", "dropout", "add", "mul"} <= set(KEEPERS)
    assert not {"softmax", "prelu", "batchnorm2d", "conv2d", "dropout2d"} & set(KEEPERS)


REQUIRED = {"clamp": ", min: -0.5"}  # fields a keeper cannot go without


@pytest.mark.parametrize("kind", KEEPERS)
def test_a_layer_that_keeps_the_layout_gives_torchs_strides(kind):
    """cnncalc's strides after the layer (where it states them) are the ones torch's output has,
    in eval and training mode; on a dense permuted input it does state them."""
    from cnncalc import backend as tb

    for size, batch, before in LAYOUTS:
        names = [f"p{i}" for i in range(len(before))]
        lines = [f"input: {size}", f"batch: {batch}", "layers:"]
        lines += [f"  - {{name: {n}, " + b[1:] for n, b in zip(names, before)]
        extra = f", inputs: [{names[-1]}, {names[-1]}]" if REGISTRY[kind].max_inputs > 1 else ""
        extra += REQUIRED.get(kind, "")
        lines.append(f"  - {{name: under, type: {kind}{extra}}}")
        report = cnncalc.analyze(cnncalc.parse_spec("\n".join(lines) + "\n", "k.yaml"))
        memory = _tracked(report)
        ours, seen = memory["under"], {}
        model = tb.build_model(report, tb.kit())
        model.layers[f"l{len(before)}"].register_forward_hook(
            lambda m, i, o, seen=seen: seen.update(x=i[0].stride(), y=o.stride()))
        for training in (False, True):
            model.train(training)
            torch.manual_seed(0)
            model(torch.randn(report.input_shape))
            assert seen["x"] == memory[names[-1]], (size, before)  # the input is laid out as cnncalc says
            if ours is not None:
                assert ours == seen["y"], (size, before, training, seen)
        if size == "3x4x5" and "permute" in before[0]:
            assert ours is not None, before


def _follower_rows():
    from layer_cases import CASES

    rows = []
    for case in CASES:
        cid, inp, batch, layers, _ = case
        cls = REGISTRY[layers[0]["type"]]
        if len(inp) in (3, 4) and len(layers) == 1 and cls.max_inputs == 1 and cls.follows_channels_last:
            rows.append(pytest.param(inp, batch, layers[0], id=cid))
    return rows


def _spec(inp, batch, layer, before):
    import json

    c, *hw = inp
    first, dims = {"cl": ((*hw, c), [0, len(inp), *range(1, len(inp))]),
                   "nhcw": ((hw[0], c, *hw[1:]), [0, 2, 1, 3, 4][:len(inp) + 1]),
                   "sliced": ((c + 1, *hw), None)}[before]
    lines = [f"input: {'x'.join(map(str, first))}", f"batch: {batch}", "layers:"]
    lines.append(f"  - {{name: p0, type: permute, dims: {dims}}}" if dims else
                 f"  - {{name: p0, type: narrow, start: 1, length: {c}}}")
    lines.append(f"  - {json.dumps({'name': 'under', **layer})}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow  # ~50 rows, each built in torch
@pytest.mark.parametrize("inp, batch, layer", _follower_rows())
def test_a_layer_that_follows_channels_last_gives_torchs_layout(inp, batch, layer):
    """Every one-layer case row on 4-D or 5-D tensors whose layer declares `follows_channels_last`,
    run by torch after a permute to channels-last (4-D), after one to another order, and after a slice
    (not dense): cnncalc states the output's layout (channels-last or contiguous), and it is torch's."""
    from cnncalc import backend as tb
    from cnncalc.analysis.strides import is_channels_last, is_contiguous

    for before in ("cl", "nhcw", "sliced") if len(inp) == 3 else ("nhcw", "sliced"):  # 5-D: channels_last_3d not followed
        report = cnncalc.analyze(cnncalc.parse_spec(_spec(inp, batch, layer, before), "k.yaml"))
        under = report.layers[-1]
        if not under.layer.follows_channels_last:
            pytest.skip(f"{layer['type']} does not declare follows_channels_last")
        memory = _tracked(report)
        ours, out = memory["under"], tuple(under.ctx.out)
        model = tb.build_model(report, tb.kit()).eval()
        seen: dict = {}
        model.layers["l1"].register_forward_hook(lambda m, i, o, seen=seen: seen.update(x=i[0], y=o))
        with torch.no_grad():
            model(torch.randn(report.input_shape))
        assert ours is not None, before
        y = seen["y"]
        assert (is_contiguous(out, ours), is_channels_last(out, ours)) == \
            (y.is_contiguous(), y.is_contiguous(memory_format=torch.channels_last)), (before, ours, y.stride())


def test_cat_follows_channels_last_only_when_every_input_suggests_it():
    a = torch.randn(2, 5, 6, 3).permute(0, 3, 1, 2)  # channels-last
    b = torch.randn(2, 3, 5, 6)                      # contiguous
    assert torch.cat([a, a], 1).is_contiguous(memory_format=torch.channels_last)
    assert torch.cat([a, b], 1).is_contiguous()
    text = ("input: 5x6x3\nlayers:\n  - {name: p, type: permute, dims: [0, 3, 1, 2]}\n"
            "  - {name: c, type: conv2d, out_channels: 3, kernel_size: 1}\n"
            "  - {name: cat1, type: concat, inputs: [p, c]}\n  - {name: cat2, type: concat, inputs: [p, p, p]}\n"
            "  - {name: q, type: conv2d, out_channels: 3, kernel_size: 1, inputs: [p]}\n"
            "  - {name: f, type: flatten, inputs: [cat2]}\n")
    report = cnncalc.analyze(cnncalc.parse_spec(text, "k.yaml"))
    from cnncalc.analysis.strides import is_channels_last

    memory = _tracked(report)
    shape = {r.name: tuple(r.ctx.out) for r in report.layers}
    assert is_channels_last(shape["c"], memory["c"]) and is_channels_last(shape["cat1"], memory["cat1"])
    assert is_channels_last(shape["cat2"], memory["cat2"])
    assert memory["f"] == contiguous(shape["f"])  # flatten of a channels-last map copies


def test_cat_follows_channels_last_3d_where_the_others_do_not_say():
    """On 5-D maps cat writes channels_last_3d where every input suggests it (found by the memory run, seed
    27014: a flatten of its permute views it); a conv3d's or pool's 5-D layout differs by device: unknown."""
    a = torch.randn(2, 4, 5, 6, 3).permute(0, 4, 1, 2, 3)  # channels_last_3d
    b = torch.randn(2, 3, 4, 5, 6)                         # contiguous
    assert torch.cat([a, a], 1).is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.cat([a, b], 1).is_contiguous()
    text = ("input: 4x5x6x3\nlayers:\n  - {name: p, type: permute, dims: [0, 4, 1, 2, 3]}\n"
            "  - {name: c, type: conv3d, out_channels: 3, kernel_size: 1}\n"
            "  - {name: cat1, type: concat, inputs: [p, p]}\n  - {name: cat2, type: concat, inputs: [p, c]}\n"
            "  - {name: q, type: conv3d, out_channels: 3, kernel_size: 1, inputs: [cat1]}\n"
            "  - {name: u, type: maxpool3d, kernel_size: 1, inputs: [p]}\n  - {name: cat3, type: concat, inputs: [u, u]}\n")
    report = cnncalc.analyze(cnncalc.parse_spec(text, "k.yaml"))
    memory = _tracked(report)
    # (1, 6, 4, 5, 6): C 1, W C, H W·C, D H·W·C, N D·H·W·C
    assert memory["cat1"] == torch.cat([a[:1], a[:1]], 1).stride() == (6 * 6 * 5 * 4, 1, 6 * 6 * 5, 6 * 6, 6)
    assert memory["c"] is None and memory["cat2"] is None  # (the conv3d's layout unknown, and so the cat's)
    assert memory["u"] is None and memory["cat3"] is None


@pytest.mark.parametrize("layer", ["{type: conv2d, out_channels: 3, kernel_size: 1}", "{type: batchnorm2d}",
                                   "{type: maxpool2d, kernel_size: 1}", "{type: upsample, scale_factor: 2}",
                                   "{type: concat, inputs: [p, p]}"])
def test_size_one_axes_do_not_hide_channels_last(layer):
    """After an N×H×W×C → N×C×H×W permute with C, H or W of 1 the tensor is contiguous as well as
    channels-last; torch still suggests channels-last, and the layers that follow it write so."""
    from cnncalc import backend as tb
    from cnncalc.analysis.strides import is_channels_last, is_contiguous

    for c, h, w, n in [(1, 3, 4, 2), (2, 1, 1, 2), (1, 1, 4, 1), (2, 3, 1, 1), (1, 3, 4, 1)]:
        text = f"input: {h}x{w}x{c}\nbatch: {n}\nlayers:\n  - {{name: p, type: permute, dims: [0, 3, 1, 2]}}\n" \
               f"  - {{name: under, {layer[1:]}\n"
        report = cnncalc.analyze(cnncalc.parse_spec(text, "k.yaml"))
        memory = _tracked(report)
        ours, out = memory["under"], tuple(report.layers[-1].ctx.out)
        model = tb.build_model(report, tb.kit()).eval()
        with torch.no_grad():
            y = model(torch.randn(report.input_shape))
        assert ours is not None
        assert (is_contiguous(out, ours), is_channels_last(out, ours)) == \
            (y.is_contiguous(), y.is_contiguous(memory_format=torch.channels_last)), (c, h, w, n, ours, y.stride())


def _contiguous_writer_rows():
    from layer_cases import CASES

    return [pytest.param(inp, batch, layers[0], id=cid) for cid, inp, batch, layers, _ in CASES
            if len(layers) == 1 and REGISTRY[layers[0]["type"]].max_inputs == 1
            and REGISTRY[layers[0]["type"]].writes_contiguous]


@pytest.mark.slow  # each row built in torch
@pytest.mark.parametrize("inp, batch, layer", _contiguous_writer_rows())
def test_a_layer_that_writes_contiguous_does_on_any_layout(inp, batch, layer):
    """Every one-layer case row whose layer declares `writes_contiguous`, run by torch after a permute
    (channels-last, another order) and after a slice: its output is contiguous, as cnncalc states, in eval
    and training mode (found by the memory run, seed 27014: a linear's output after a permuted input was
    left unknown, and a later conv's channels-last output with it)."""
    import json

    from cnncalc import backend as tb

    kinds = ("cl", "nhcw", "sliced") if len(inp) == 3 else ("nhcw", "sliced") if len(inp) == 4 else ("sliced",)
    strided = 0
    for before in kinds:
        if len(inp) <= 2:  # a slice of the channels
            c, *rest = inp
            text = (f"input: {list((c + 1, *rest))}\nbatch: {max(batch, 2)}\nlayers:\n"
                    f"  - {{name: p0, type: narrow, start: 1, length: {c}}}\n  - {json.dumps({'name': 'under', **layer})}\n")
        else:
            text = _spec(inp, batch, layer, before)
        report = cnncalc.analyze(cnncalc.parse_spec(text, "k.yaml"))
        memory = _tracked(report)
        assert memory["under"] == contiguous(report.layers[-1].ctx.out)
        model = tb.build_model(report, tb.kit())
        seen: dict = {}
        model.layers["l1"].register_forward_hook(lambda m, i, o, seen=seen: seen.update(x=i[0], y=o))
        for training in (False, True):
            model.train(training)
            model(torch.randn(report.input_shape))
            strided += not seen["x"].is_contiguous()  # (a slice of one sample's channels is contiguous)
            assert seen["y"].stride() == contiguous(tuple(seen["y"].shape)), (before, training, seen["y"].stride())
    assert strided, "no layout but the contiguous one was tried"
