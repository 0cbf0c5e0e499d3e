"""Issue #25 §6: `view` of a tensor whose strides no longer allow it (after permute, transpose or
a slice) is refused exactly where torch refuses it. Judged by torch itself: each generated chain
of permute / transpose / narrow / view / reshape / flatten / relu is run on a real tensor and
every `.view` tried."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnncalc

torch = pytest.importorskip("torch")


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
            st.sampled_from(["permute", "permute", "transpose", "view", "view", "view", "reshape", "flatten",
                                     "narrow", "relu"]))
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
        else:
            ops.append(("relu", None))
    return shape, ops


def in_torch(shape, ops):
    """The index of the first op torch refuses (a .view), or None; and whether an activation
    ran on a non-contiguous tensor before it (torch keeps some such layouts; cnncalc then stops
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
            unknown = unknown or not x.is_contiguous()
            x = torch.relu(x)
    return None, unknown


def spec(shape, ops) -> str:
    lines = [f"input: {'x'.join(map(str, shape[1:]))}", f"batch: {shape[0]}", "layers:"]
    for kind, arg in ops:
        if kind == "permute":
            lines.append(f"  - {{type: permute, dims: {arg}}}")
        elif kind == "transpose":
            lines.append(f"  - {{type: transpose, dim0: {arg[0]}, dim1: {arg[1]}}}")
        elif kind in ("view", "reshape"):
            lines.append(f"  - {{type: {kind}, shape: {arg}}}")
        elif kind == "narrow":
            lines.append(f"  - {{type: narrow, start: {arg[0]}, length: {arg[1]}}}")
        else:
            lines.append(f"  - {{type: {kind}}}")
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
