"""An import that breaks while shapes are traced names where (issue #24 §3): the module path (or
the function and its graph node) and the shapes it was given, as `analyze` does for a spec."""
import pytest

torch = pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402

from cnncalc.cli import app  # noqa: E402

MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        return FORWARD
"""


@pytest.mark.parametrize("forward,where,shapes", [
    ("self.head(torch.cat([self.b(x), self.b(x)], 1)) + self.a(x)", "at head", "reading 2×8×8×8"),
    ("self.head(torch.cat([self.a(x), self.b(x)], 1))", "at cat (graph node cat)", "reading 2×8×16×16, 2×4×8×8"),
])
def test_the_failing_module_and_its_input_shapes_are_named(tmp_path, forward, where, shapes):
    path = tmp_path / "bad.py"
    path.write_text(MODEL.replace("FORWARD", forward))
    r = CliRunner().invoke(app, ["import", f"{path}:Net", "--input", "3x16x16"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert where in r.output and shapes in r.output and "3×16×16 input" in r.output


def test_a_constant_made_in_forward_is_named_as_such_not_as_an_attribute():
    """torch.fx names a tensor built in forward `_tensor_constant0`: no attribute of the model
    (the timm zoo's MaxViT listed 17 of them as if they were)."""
    import cnncalc

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x) + torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)

    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.spec_from_torch(Net(), (3, 8, 8))
    said = "\n".join(p.message for p in err.value.problems)
    assert "a constant tensor made in forward" in said and "self._tensor_constant" not in said


def test_a_model_that_changes_a_list_fx_froze_is_told_why(tmp_path):
    """torchvision's swin3d changes a list argument of a function fx wraps: fx hands it a read-only
    list; the message says so rather than leave a TypeError from inside fx."""
    path = tmp_path / "frozen.py"
    path.write_text(
        "import torch\nimport torch.fx\nfrom torch import nn\n\n\n"
        "def shift(sizes, n: int):\n    sizes[0] = n\n    return sizes[0]\n\n\n"
        "torch.fx.wrap('shift')\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.c = nn.Conv2d(3, 4, 3)\n\n"
        "    def forward(self, x):\n        return self.c(x) * shift([2, 2], x.shape[-1])\n")
    r = CliRunner().invoke(app, ["import", f"{path}:Net", "--input", "3x8x8"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "at shift" in r.output and "read-only list" in r.output
