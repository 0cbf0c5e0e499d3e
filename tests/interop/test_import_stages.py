"""import_model(stages=...) (#30): the seconds of each stage are added into the dict given, as
verify_report(stages=...) does; the spec written is the same with or without it."""
import pytest

torch = pytest.importorskip("torch")

from cnncalc.interop.torch_import import import_model  # noqa: E402


def small():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))


def test_stages_name_each_stage_of_an_import_without_the_proof():
    stages: dict[str, float] = {}
    text, notes = import_model(small(), (3, 8, 8), "s", [], prove=False, stages=stages)
    assert set(stages) == {"fx trace", "fake pass", "read", "write", "analyse", "counts"}
    assert all(v >= 0 for v in stages.values())
    assert (text, notes) == import_model(small(), (3, 8, 8), "s", [], prove=False)


def test_the_proof_adds_its_build_and_run_stages():
    stages: dict[str, float] = {}
    import_model(small(), (3, 8, 8), "s", [], stages=stages)
    assert {"build", "run"} <= set(stages) and {"fx trace", "counts"} <= set(stages)


def proof_module(model, shape):
    """The module import's proof runs: the spec's exported module holding the model's state_dict."""
    import cnncalc
    from cnncalc.backend.kit import kit
    from cnncalc.interop.torch_import import _counts_and_used, _proof_module

    text, _ = import_model(model, shape, "s", [], prove=False)
    report = cnncalc.analyze(cnncalc.parse_spec(text))

    def fail(why):
        raise AssertionError(why)
    net, said = _proof_module(report, model, {}, _counts_and_used(model, shape)[1], kit(), fail)
    return net, said


def test_the_proofs_module_is_built_without_weights_of_its_own_and_holds_the_models_tensors():
    model = small().eval()
    net, said = proof_module(model, (3, 8, 8))
    mine, theirs = net.state_dict(), model.state_dict()
    assert said == [] and set(mine) == set(theirs)
    assert not any(v.is_meta for v in (*net.parameters(), *net.buffers()))
    for k, v in theirs.items():  # the model's own tensors (no copy made), hence its values
        assert mine[k].data_ptr() == v.data_ptr() and torch.equal(mine[k], v)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))


def test_a_model_whose_dtype_is_not_the_specs_gets_a_module_of_the_specs_own_holding_copies():
    model = small().double().eval()
    net, _ = proof_module(model, (3, 8, 8))
    mine, theirs = net.state_dict(), model.state_dict()
    assert set(mine) == set(theirs)
    for k, v in theirs.items():
        assert mine[k].data_ptr() != v.data_ptr()
        assert mine[k].dtype == (torch.float32 if v.is_floating_point() else v.dtype)
        assert torch.equal(mine[k], v.to(mine[k].dtype))


class Unused(torch.nn.Module):
    """`aux` and `head.2` are never called; `head.0`, `head.1` and `body` (a whole leaf) are."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1))
        self.aux = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head[1](self.head[0](self.body(x)))


def test_modules_forward_never_calls_are_named_in_the_notes_in_the_models_order():
    _, notes = import_model(Unused(), (3, 8, 8), "u", [], prove=False)
    assert [n.split(" ")[2] for n in notes if n.startswith("left out:")] == ["head.2", "aux"]
