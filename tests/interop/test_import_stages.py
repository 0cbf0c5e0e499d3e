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
