"""rf, sweep, plot and HTML: what they show is checked against torch or hand arithmetic."""
import json
import os
from fractions import Fraction

import pytest
from typer.testing import CliRunner

import cnncalc
from cnncalc.analysis.unit_field import unit_field
from cnncalc.cli.app import app

from conftest import EXAMPLES, analyze_text, golden

runner = CliRunner()
ALEXNET = os.path.join(EXAMPLES, "alexnet.yaml")


def test_unit_field_by_hand():
    r = cnncalc.analyze(cnncalc.load_spec(ALEXNET))
    # pool5: size 195, jump 32, start (conv1 pads 2) = 5 − 2 + … : centre of unit u is start + 32·u
    rf = r.layer("pool5").receptive_field[0]
    (rows, cols) = unit_field(r, "pool5", (0, 5))
    assert rows["from"] == rf.start - 97 and rows["to"] == rf.start + 97
    assert rows["clipped"] == [0, int(rf.start + 97)] and rows["padding"] == -int(rf.start - 97)
    assert cols["from"] == rf.start + 5 * 32 - 97 and cols["clipped"][1] == 223


def test_unit_field_matches_the_gradient_probe():
    torch = pytest.importorskip("torch")
    from cnncalc import backend as tb

    r = analyze_text("input: 1x20x20\nlayers:\n  - {type: conv2d, out_channels: 2, kernel_size: 5, padding: 2}\n"
                     "  - {type: maxpool2d, kernel_size: 2}\n"
                     "  - {name: last, type: conv2d, out_channels: 2, kernel_size: 3, stride: 2, padding: 1}\n")
    model = tb.probe_model(r, 2, tb.kit())
    for unit in [(0, 0), (2, 3), (4, 4)]:
        x = torch.ones((1, 1, 20, 20), dtype=torch.float64, requires_grad=True)
        out = model(x)
        (g,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), x)
        nz = torch.nonzero(g[0].abs().sum(0) > 0)
        axes = unit_field(r, "last", unit)
        assert [int(nz[:, 0].min()), int(nz[:, 0].max())] == axes[0]["clipped"]
        assert [int(nz[:, 1].min()), int(nz[:, 1].max())] == axes[1]["clipped"]


def test_rf_cli():
    out = runner.invoke(app, ["rf", ALEXNET])
    assert out.exit_code == 0 and "pool5" in out.stdout and "195×195" in out.stdout
    out = runner.invoke(app, ["rf", ALEXNET, "--layer", "pool5", "--unit", "9,9"])
    assert out.exit_code == 1 and "outside pool5's output 6×6" in out.stderr
    assert runner.invoke(app, ["rf", ALEXNET, "--unit", "1,1"]).exit_code == 2
    data = json.loads(runner.invoke(app, ["rf", ALEXNET, "--layer", "conv1", "--unit", "0,0", "-f", "json"]).stdout)
    assert data["axes"][0] == {"from": -2, "to": 8, "clipped": [0, 8], "padding": 2, "size": 11, "exact": True}


def test_sweep_reports_breaks_and_scales():
    out = runner.invoke(app, ["sweep", os.path.join(EXAMPLES, "alexnet_seed.yaml"), "-i", "3x224x224,3x227x227",
                              "-b", "1,4", "-f", "json"])
    rows = json.loads(out.stdout)
    assert [r["ok"] for r in rows] == [False, False, True, True]
    assert rows[0]["error"] == "fc6: in_features=9216 but flatten gives 256×5×5 = 6400"
    assert rows[3]["macs"] == 4 * rows[2]["macs"] and rows[3]["params"] == rows[2]["params"]
    assert runner.invoke(app, ["sweep", ALEXNET, "-i", "3x224x224", "-b", "0"]).exit_code == 2


def test_terminal_plot_and_figure(tmp_path):
    out = runner.invoke(app, ["plot", os.path.join(EXAMPLES, "lenet5.yaml")])
    assert out.exit_code == 0 and "█" in out.stdout and "c3.conv" in out.stdout
    pytest.importorskip("matplotlib")
    png = tmp_path / "lenet.png"
    out = runner.invoke(app, ["plot", os.path.join(EXAMPLES, "lenet5.yaml"), "-o", str(png)])
    assert out.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    h, w = matplotlib.image.imread(str(png)).shape[:2]
    assert (w, h) == (1300, 800)  # 13×8 inches at 100 dpi: the four-panel layout
    svg = tmp_path / "lenet.svg"
    assert runner.invoke(app, ["plot", os.path.join(EXAMPLES, "lenet5.yaml"), "-o", str(svg)]).exit_code == 0
    text = svg.read_text()
    for title in ("MACs per layer", "parameters per layer", "activation bytes per layer", "receptive field and output size"):
        assert title in text
    assert runner.invoke(app, ["plot", ALEXNET, "-o", str(tmp_path / "x.gif")]).exit_code == 2


def test_html_report():
    out = runner.invoke(app, ["analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "-f", "html", "--explain"])
    assert out.exit_code == 0 and out.stdout.startswith("<!DOCTYPE html>")
    assert "61,706" in out.stdout and "<b>params</b> = 6·1·5·5 + 6 = 156" in out.stdout


def test_unwritable_figure_path_is_a_plain_error(tmp_path):
    pytest.importorskip("matplotlib")
    out = runner.invoke(app, ["plot", os.path.join(EXAMPLES, "lenet5.yaml"), "-o", str(tmp_path / "no" / "x.png")])
    assert out.exit_code == 1 and "cannot write the figure" in out.stderr


def test_rf_outputs_golden():
    from conftest import golden

    table = runner.invoke(app, ["rf", os.path.join(EXAMPLES, "resnet18.yaml")])
    unit = runner.invoke(app, ["rf", os.path.join(EXAMPLES, "lenet5.yaml"), "--layer", "c3.pool", "--unit", "2,3"])
    assert table.exit_code == unit.exit_code == 0
    golden("resnet18.rf.txt", table.stdout)
    golden("lenet5.rf-unit.txt", unit.stdout)


def test_diff_output_golden():
    from conftest import golden

    out = runner.invoke(app, ["diff", os.path.join(EXAMPLES, "alexnet_seed.yaml"), os.path.join(EXAMPLES, "alexnet.yaml")])
    assert out.exit_code == 0
    golden("alexnet.diff.txt", out.stdout)


def test_unit_field_of_a_network_with_four_spatial_axes(tmp_path):
    f = tmp_path / "net.yaml"
    f.write_text("input: 1x4x4x4x4\nlayers:\n  - {type: relu}\n")
    out = runner.invoke(app, ["rf", str(f), "--layer", "relu_1", "--unit", "1,0,2,3"])
    assert out.exit_code == 0, out.output
    assert [line.split(":")[0].strip() for line in out.stdout.splitlines()[1:]] == [f"axis {a}" for a in range(4)]
    assert "axis 3: 3..3 of the input" in out.stdout


def test_sweep_refuses_a_batch_it_cannot_take():
    out = runner.invoke(app, ["sweep", os.path.join(EXAMPLES, "lenet5.yaml"), "-i", "1x28x28", "-b", "1," + "1" * 21])
    assert out.exit_code == 2


def test_unit_windows_are_the_real_ones_after_transposed_convs_and_dilation():
    # conv_transpose1d k2 s2: output 2i and 2i + 1 read input i (the formula said "0 to −1")
    r = analyze_text("input: 1x8\nlayers:\n  - {name: up, type: conv_transpose1d, out_channels: 1, kernel_size: 2, "
                     "stride: 2}\n  - {name: c, type: conv1d, out_channels: 1, kernel_size: 3, stride: 2}\n")
    for u in range(8):
        (axis,) = unit_field(r, "up", (u,))
        assert (axis["from"], axis["to"], axis["exact"]) == (u // 2, u // 2, True)
    for i in range(7):  # then conv k3 s2: unit i reads up's 2i..2i+2, i.e. inputs i..i+1
        (axis,) = unit_field(r, "c", (i,))
        assert (axis["from"], axis["to"]) == (i, i + 1)
    # a 3-tap conv dilated by 18 on 33 pixels: the middle unit reads −2, 16 and 34, only 16 is real
    r = analyze_text("input: 1x33x33\nlayers:\n  - {name: d, type: conv2d, out_channels: 1, kernel_size: 3, "
                     "padding: 18, dilation: 18}\n")
    assert [(a["from"], a["to"], a["clipped"]) for a in unit_field(r, "d", (16, 0))] == [
        (16 - 18, 16 + 18, [16, 16]), (0 - 18, 0 + 18, [0, 18])]


def test_fractional_fields_print_as_decimals():
    from cnncalc.render.columns import rf_num

    r = analyze_text("input: 1x8x8\nlayers:\n  - {type: upsample, scale_factor: 0.7, mode: bilinear}\n"
                     "  - {name: c, type: conv2d, out_channels: 1, kernel_size: 3}\n")
    (f, _) = r.layer("c").receptive_field
    assert (f.size, f.jump) == (2 + 2 * Fraction(10, 7), Fraction(10, 7))  # 1/0.7 per output pixel
    assert (rf_num(f, "size"), rf_num(f, "jump")) == ("4.86", "1.43")


def test_depth_collapses_block_uses_and_keeps_the_sums():
    from cnncalc.render.columns import group_cells, layer_groups

    r = analyze_text(open(os.path.join(EXAMPLES, "resnet50.yaml")).read())
    assert r.layer("layer1.0.conv1").blocks == ("layer1", "layer1.0") and r.layer("conv1").blocks == ()
    assert r.to_json()["layers"][4]["block_path"] == ["layer1", "layer1.0"]
    for depth, rows in [(1, 11), (2, 4 + 3 + 4 + 6 + 3 + 3), (3, len(r.layers))]:
        groups = layer_groups(r, depth)
        assert len(groups) == rows and sum(len(g) for g in groups) == len(r.layers)
    one = {group_cells(g, 1, r)[1]: g for g in layer_groups(r, 1)}
    assert list(one)[4:8] == ["layer1 ×3", "layer2 ×4", "layer3 ×6", "layer4 ×3"]
    assert sum(x.params for x in one["layer4 ×3"]) == 14_964_736  # torchvision: layer4's parameters
    cells = group_cells(one["layer4 ×3"], 1, r)
    assert cells[4] == "14,964,736" and cells[5] == f"{14_964_736 / 25_557_032:.1%}"  # 58.6% of ResNet-50


def test_depth_table_golden():
    from typer.testing import CliRunner

    from cnncalc.cli.app import app

    out = CliRunner().invoke(app, ["analyze", os.path.join(EXAMPLES, "resnet50.yaml"), "--depth", "1"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0
    golden("resnet50.depth1.txt", out.stdout)
    assert CliRunner().invoke(app, ["analyze", os.path.join(EXAMPLES, "resnet50.yaml"), "--depth", "1",
                                    "-f", "json"]).exit_code == 2


def test_by_type_sums_to_the_totals_and_orders_by_macs():
    from typer.testing import CliRunner

    from cnncalc.cli import app
    from cnncalc.render.columns import by_type

    r = analyze_text(open(os.path.join(EXAMPLES, "resnet50.yaml")).read())
    rows = {row["type"]: row for row in by_type(r)}
    for k in ("params", "macs", "flops", "activation_bytes"):
        assert sum(row[k] for row in rows.values()) == r.totals[k]
    assert rows["linear"]["macs"] == 2048 * 1000 and rows["conv2d"]["layers"] == 53 and rows["add"]["layers"] == 16
    assert rows["conv2d"]["macs_share"] == rows["conv2d"]["macs"] / r.totals["macs"]
    assert [row["type"] for row in by_type(r)][:2] == ["conv2d", "linear"]
    out = CliRunner().invoke(app, ["analyze", os.path.join(EXAMPLES, "resnet50.yaml"), "--by", "type"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0
    golden("resnet50.by_type.txt", out.stdout)
