import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile")
sys.path.insert(0, os.path.dirname(__file__))
if not os.environ.get("CNNCALC_CACHE_DIR"):  # `cnncalc schema`'s cache: the suite's own, not the user's folder
    import atexit
    import shutil
    import tempfile

    os.environ["CNNCALC_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnncalc-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CNNCALC_CACHE_DIR"], True)


@pytest.fixture(scope="session")
def schema() -> dict:
    """The JSON Schema of a spec (`cnncalc schema`), built once for the whole session: read it, never change it."""
    from cnncalc.render.vocabulary import spec_schema

    return spec_schema()


def analyze_text(text: str, **kw):
    import cnncalc

    return cnncalc.analyze(cnncalc.parse_spec(text, "test.yaml"), **kw)


def assert_located(text: str, message: str, line_has: str) -> None:
    """Analysing `text` fails with a problem containing `message`, located on a line of the spec
    that contains `line_has`."""
    import cnncalc

    try:
        analyze_text(text)
    except cnncalc.CnnError as err:
        hits = [p for p in err.problems if message in p.message]
        assert hits, [p.message for p in err.problems]
        assert hits[0].line is not None and line_has in text.splitlines()[hits[0].line - 1]
    else:
        raise AssertionError(f"no problem reported; expected {message!r}")


def example(name: str, **kw):
    """The analysis of examples/NAME.yaml."""
    import cnncalc

    return cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, f"{name}.yaml")), **kw)


def golden(name: str, text: str) -> None:
    """`text` equals tests/golden/NAME (CNNCALC_UPDATE_GOLDEN=1 rewrites it: review the diff)."""
    path = os.path.join(GOLDEN, name)
    if os.environ.get("CNNCALC_UPDATE_GOLDEN"):
        with open(path, "w") as fh:
            fh.write(text)
    with open(path) as fh:
        assert text == fh.read(), f"{name} changed (CNNCALC_UPDATE_GOLDEN=1 to accept)"


def load_module(text: str, tmp_path, name: str = "net"):
    """The Python module whose source is `text` (an exported network), loaded from a file."""
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parity(report, probe=True):
    """(checks, mismatches): the report's network built in torch, each layer's shape, params,
    buffers and FLOPs measured, and (with `probe`) every probeable field measured by the gradient
    probe (a probe that cannot run fails the test: every case row must be probeable)."""
    import torch

    from cnncalc import backend as tb

    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    x = torch.randn(report.input_shape)
    checks = tb.measure_counts(report, model, x, t)
    if probe:
        rows, whole, skipped = tb.probe_plan(report)
        assert all(why.reason in ("estimate", "size_dependent") for why in skipped.values()), skipped
        for idx, res in tb.probe_rf(report, rows, t).items():
            assert isinstance(res, tuple), res
            checks[idx].rf = res
        for idx in whole:
            checks[idx].rf_whole = tb.probe_whole(report, idx, t)
    return checks, tb.compare(report, checks)


def torch_numbers(model, shape):
    """What torch itself says: parameters and buffers of the modules forward calls, FLOPs, output shapes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    used = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: used.add(id(mod))) for m in model.modules()]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, *shape))
    for h in hooks:
        h.remove()
    mods = [m for m in model.modules() if id(m) in used]
    outs = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (list, tuple)) else [out]
    return {"params": sum(p.numel() for m in mods for p in m.parameters(recurse=False)),
            "buffers": sum(b.numel() for m in mods for b in m.buffers(recurse=False)),
            "flops": counter.get_total_flops(), "outputs": [tuple(o.shape) for o in outs]}
