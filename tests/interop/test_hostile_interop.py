"""Written specs and written code (#25 §3) and the sweep's work cap (§4): text from a model,
its file name or a spec never becomes YAML or Python of its own."""
import os
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cnncalc
from cnncalc.cli.app import app
from cnncalc.interop.spec_writer import Found, write_spec

from conftest import EXAMPLES

runner = CliRunner()
BREAKS = ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c"]


@pytest.mark.parametrize("br", BREAKS)
def test_foreign_text_in_comments_stays_on_its_line(br):
    """A header (a file name) or a block's class name holding a line break YAML knows."""
    scopes = lambda i: (("s", "Sequential"), (f"s.{i}", f"Evil{br}dtype: float16"))  # noqa: E731
    found = [Found("stem", {"type": "conv2d", "out_channels": 4, "kernel_size": 1}, ["input"])]
    for i in range(2):
        prev = found[-1].name
        found += [Found(f"s.{i}.a", {"type": "relu"}, [prev], scopes(i)),
                  Found(f"s.{i}.b", {"type": "relu"}, [f"s.{i}.a"], scopes(i))]
    text = write_spec(found, "n", (3, 8, 8), [f"from m{br}dtype: float16{br}.onnx"])
    assert "dtype" not in cnncalc.parse_spec(text).header.model_dump(exclude_defaults=True)
    assert not any(line.startswith("dtype") for line in text.splitlines())
    assert "blocks:" in text  # the class name went into a block's comment
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert report.dtype == cnncalc.analyze(cnncalc.parse_spec("input: 3x8x8\nlayers:\n  - {type: relu}\n")).dtype


def test_a_spec_that_reads_back_differently_is_never_written(monkeypatch):
    import cnncalc.interop.spec_writer as sw

    monkeypatch.setattr(sw, "_comment", lambda text: text)  # the guard removed: the read-back must still catch it
    with pytest.raises(cnncalc.CnnError, match="reads back as a different spec|does not read back"):
        write_spec([Found("a", {"type": "relu"}, ["input"])], "n", (3, 8, 8), ["x\ndtype: float16"])


MODEL = '''
import os, sys
import torch.nn as nn

class Loud(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        os.write(1, b"dtype: float16\\n")
        sys.__stdout__.write("name: evil\\n")

    def forward(self, x):
        os.write(1, b"- {name: extra, type: relu}\\n")
        os.write(2, b"::error::forged\\n")
        sys.__stdout__.write("partial")
        return self.conv(x)

class Leaves(nn.Module):
    def forward(self, x):
        sys.exit(0)
'''


def _cli(*args):
    import subprocess

    return subprocess.run([sys.executable, "-m", "cnncalc", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_what_the_model_writes_to_fds_1_and_2_stays_out_of_the_spec(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "loud.py").write_text(MODEL)
    r = _cli("import", f"{tmp_path / 'loud.py'}:Loud", "-i", "3x8x8")  # real fds: CliRunner has none
    assert r.returncode == 0, r.stderr
    assert "evil" not in r.stdout and "float16" not in r.stdout and "extra" not in r.stdout and "partial" not in r.stdout
    assert not any(line.startswith("::") for line in r.stderr.splitlines())
    report = cnncalc.analyze(cnncalc.parse_spec(r.stdout))
    assert [x.name for x in report.layers] == ["conv"] and report.totals["params"] == 4 * 3 * 9 + 4
    r = _cli("import", f"{tmp_path / 'loud.py'}:Leaves", "-i", "3x8x8")
    assert r.returncode == 1 and "SystemExit(0)" in r.stderr and r.stdout == ""


# ---- export --to torch: spec names out of Python's attribute space ----------------------------------
AWKWARD = ["training", "forward", "__class__", "_modules", "_parameters", "__dict__", "__init__", "keys", "update",
           "0", "a-b", "x", "self", "F", "torch", "nn", "build", "_group", "OrderedDict", "super", "state_dict"]
SEGMENT = st.one_of(st.sampled_from(AWKWARD), st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_\-]{0,6}\Z"))


def _spec(names, net):
    layers = "\n".join(f"  - {{name: '{n}', type: linear, out_features: 3}}" for n in names)
    return f"name: '{net}'\ninput: [3]\nlayers:\n{layers}\n"


def _check_exported(names, net):
    torch = pytest.importorskip("torch")
    from cnncalc.interop.torch_export import to_torch

    report = cnncalc.analyze(cnncalc.parse_spec(_spec(names, net)))
    namespace = {"__name__": "exported"}
    exec(compile(to_torch(report), "<export>", "exec"), namespace)  # noqa: S102
    module = namespace["build"]()
    keys = list(module.state_dict())
    # the same keys (a group registers its members together, so interleaved groups reorder them;
    # load_state_dict does not care about order)
    assert sorted(keys) == sorted(f"{n}.{w}" for n in names for w in ("weight", "bias")) and len(keys) == 2 * len(names)
    # the layers run in file order: a chain of linears, each 3 → 3, computed by hand here
    x = torch.randn(2, 3)
    want = x
    state = module.state_dict()
    for n in names:
        want = want @ state[f"{n}.weight"].T + state[f"{n}.bias"]
    with torch.no_grad():
        assert torch.allclose(module(x), want, atol=1e-5)
    assert module.training is True and callable(module.forward)


def test_names_that_meet_python_attributes_export_and_run():
    _check_exported(["training", "forward", "__class__", "_modules", "_parameters", "__dict__", "__init__",
                     "g.keys", "g.training", "g.0", "h.update.forward", "0", "F"], "F")


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(SEGMENT, min_size=1, max_size=3).map(".".join), min_size=1, max_size=6, unique=True),
       st.sampled_from(["F", "nn", "torch", "OrderedDict", "build", "net", "_group"]))
def test_generated_awkward_names_compile_and_keep_their_state_dict_keys(names, net):
    # a name that is also a prefix of another is refused by design (a layer cannot hold others)
    names = [n for n in names if not any(m != n and (m.startswith(n + ".") or n.startswith(m + ".")) for m in names)]
    if names:
        _check_exported(names, net)


# ---- sweep: the work is checked before it is done ---------------------------------------------------
def test_the_largest_accepted_sweep_finishes_in_seconds_and_a_larger_one_is_refused_first():
    from cnncalc.analysis.sweep import MAX_PAIRS, MAX_WORK

    resnet = os.path.join(EXAMPLES, "resnet50.yaml")
    layers = len(cnncalc.load_spec(resnet).nodes)
    over = ",".join(str(b) for b in range(1, MAX_WORK // layers + 2))
    start = time.perf_counter()
    r = runner.invoke(app, ["sweep", resnet, "-i", "3x224x224", "-b", over])
    assert r.exit_code == 2 and "layer analyses" in r.output and time.perf_counter() - start < 5
    lenet = os.path.join(EXAMPLES, "lenet5.yaml")
    r = runner.invoke(app, ["sweep", lenet, "-i", "1x32x32", "-b", ",".join(["1"] * (MAX_PAIRS + 1))])
    assert r.exit_code == 2
    start = time.perf_counter()
    r = runner.invoke(app, ["sweep", resnet, "-i", "3x224x224", "-b", over.rsplit(",", 1)[0], "-f", "json"])
    assert r.exit_code == 0, r.output
    assert time.perf_counter() - start < 30  # measured 5.6 s on a loaded 2-core machine


# ---- import: a forward pass that unrolls into too many operations (#25 §4) ---------------------------
def test_a_forward_pass_of_too_many_operations_is_refused_while_it_is_traced(monkeypatch):
    """A Python loop of 200,000 additions: tracing stops at the limit (the loop body runs no further),
    nothing is interpreted, and the refusal names the module it was in (exit 1)."""
    torch = pytest.importorskip("torch")
    from cnncalc.interop import torch_import

    monkeypatch.setattr(torch_import, "MAX_TRACED_OPS", 500)  # the same check, cheaper to reach

    class Step(torch.nn.Module):
        steps = 0

        def forward(self, x):
            for _ in range(200_000):
                Step.steps += 1
                x = x + x
            return x

    model = torch.nn.Sequential(torch.nn.ReLU(), Step())
    with pytest.raises(cnncalc.CnnError) as err:
        torch_import.trace(model, (3, 4, 4))
    assert err.value.exit_code == 1
    assert "more than 500 operations" in str(err.value) and "module 1" in str(err.value)
    assert Step.steps <= 500  # the placeholder, the ReLU and at most 498 additions were traced


@pytest.mark.slow
def test_the_trace_limit_leaves_room_for_the_largest_zoo_models(monkeypatch):
    """DenseNet-201 (the torchvision model with the most traced operations: 713 nodes, ResNet-152
    has 517) still imports under a twenty-fifth of the limit."""
    pytest.importorskip("torch")
    from reference_models import DenseNet

    from cnncalc.interop import torch_import

    monkeypatch.setattr(torch_import, "MAX_TRACED_OPS", torch_import.MAX_TRACED_OPS // 25)
    found, outputs, _, _ = torch_import.trace(DenseNet(blocks=(6, 12, 48, 32)), (3, 32, 32))
    assert len(found) > 600 and len(outputs) == 1
