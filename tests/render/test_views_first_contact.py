"""The report a newcomer opens (issue #24 §5): --depth in Markdown and HTML, `analyze -o FILE`,
the `~` of an estimated field wherever a field is printed, diff headers that name the files and
the arguments that changed, `--set` on diff, rf and plot."""
import json
import os

from typer.testing import CliRunner

import cnncalc
from cnncalc.cli import app

from conftest import EXAMPLES

runner = CliRunner()
RESNET = os.path.join(EXAMPLES, "resnet50.yaml")
HOURGLASS = os.path.join(EXAMPLES, "hourglass.yaml")  # its decoder's fields after upsampling are estimates


def test_depth_collapses_markdown_and_html_rows():
    report = cnncalc.analyze(cnncalc.load_spec(RESNET))
    md = runner.invoke(app, ["analyze", RESNET, "-f", "markdown", "--depth", "1"])
    assert md.exit_code == 0
    rows = [line for line in md.stdout.splitlines() if line.startswith("| ") and "|---" not in line]
    body = rows[1:rows.index("| total | value |")]
    # conv1, bn1, relu, maxpool, layer1..layer4, avgpool, flatten, fc: 11 rows for 175 layers
    assert len(body) == 11 and len(report.layers) == 175
    layer3 = next(r for r in body if "layer3 ×6" in r)
    assert f"{sum(r.params for r in report.layers if r.name.startswith('layer3.')):,}" in layer3
    html = runner.invoke(app, ["analyze", RESNET, "-f", "html", "--depth", "1"]).stdout
    table = html[html.index('<table class="layers'):]
    assert table[:table.index("</table>")].count("<tr>") == 1 + 11  # the heading and one row per entry
    assert runner.invoke(app, ["analyze", RESNET, "-f", "csv", "--depth", "1"]).exit_code == 2


def test_output_file_in_every_format(tmp_path):
    for fmt, check in (("json", lambda t: json.loads(t)["totals"]["params"] == 25_557_032),
                       ("markdown", lambda t: t.startswith("## resnet50")),
                       ("table", lambda t: "resnet50" in t and "\x1b" not in t and "25,557,032" in t),
                       ("csv", lambda t: t.startswith("index,name"))):
        out = tmp_path / f"r.{fmt}"
        r = runner.invoke(app, ["analyze", RESNET, "-f", fmt, "-o", str(out)])
        assert r.exit_code == 0 and r.stdout == "" and check(out.read_text()), fmt
    both = tmp_path / "both.json"
    assert runner.invoke(app, ["analyze", RESNET, os.path.join(EXAMPLES, "lenet5.yaml"), "-f", "json",
                               "-o", str(both)]).exit_code == 0
    assert [d["name"] for d in json.loads(both.read_text())] == ["resnet50", "lenet5"]
    assert runner.invoke(app, ["analyze", RESNET, "--verify", "-o", str(tmp_path / "x")]).exit_code == 2


def test_estimated_fields_carry_the_marker_everywhere():
    report = cnncalc.analyze(cnncalc.load_spec(HOURGLASS))
    rough = [r.name for r in report.layers if r.receptive_field and not all(f.exact for f in r.receptive_field)]
    exact = [r.name for r in report.layers if r.receptive_field and all(f.exact for f in r.receptive_field)]
    assert rough and exact
    rf = runner.invoke(app, ["rf", HOURGLASS]).stdout
    line = next(x for x in rf.splitlines() if f" {rough[0]} " in x)
    assert "~" in line.split("│")[4]  # the size column
    assert "~" not in next(x for x in rf.splitlines() if f" {exact[0]} " in x).split("│")[4]
    plot = runner.invoke(app, ["plot", HOURGLASS]).stdout
    assert any(rough[-1] in x and x.rstrip().split()[-1].startswith("~") for x in plot.splitlines())
    sweep = runner.invoke(app, ["sweep", HOURGLASS, "-i", "3x64x64", "-f", "json"]).stdout
    assert json.loads(sweep)[0]["receptive_field_exact"] is False
    assert "~46×46" in runner.invoke(app, ["sweep", HOURGLASS, "-i", "3x64x64"]).stdout


def test_diff_names_the_files_and_the_changed_arguments(tmp_path, monkeypatch):
    text = "name: same\ninput: 3x16x16\nargs: {w: 8}\nlayers:\n  - {type: conv2d, out_channels: $w, kernel_size: 3}\n"
    monkeypatch.chdir(tmp_path)
    for f in ("a.yaml", "b.yaml"):
        (tmp_path / f).write_text(text)
    r = runner.invoke(app, ["diff", "a.yaml", "b.yaml", "--set", "w=16"])
    assert r.exit_code == 0
    assert "a.yaml (same) → b.yaml (same)" in r.stdout and "argument w: 8 → 16" in r.stdout
    data = json.loads(runner.invoke(app, ["diff", "a.yaml", "b.yaml", "--old-set", "w=4", "-f", "json"]).stdout)
    assert data["args_changed"] == {"w": {"old": 4, "new": 8}}
    assert data["totals"]["params"] == {"old": 4 * 27 + 4, "new": 8 * 27 + 8, "delta": 112, "percent": 100.0}


def test_rf_and_plot_take_set(tmp_path):
    spec = tmp_path / "k.yaml"
    spec.write_text("input: 1x32x32\nargs: {k: 3}\nlayers:\n  - {type: conv2d, out_channels: 1, kernel_size: $k}\n")
    assert "│ 3×3 " in runner.invoke(app, ["rf", str(spec)]).stdout
    assert "│ 7×7 " in runner.invoke(app, ["rf", str(spec), "--set", "k=7"]).stdout
    assert "7×7" in runner.invoke(app, ["plot", str(spec), "--set", "k=7"]).stdout


def test_linear_on_a_spatial_map_is_warned_about_and_only_there():
    def warned(layers: str) -> list[str]:
        report = cnncalc.analyze(cnncalc.parse_spec("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, "
                                                    "kernel_size: 3}\n" + layers))
        return [w.message for w in report.warnings if "linear reads" in w.message]

    (message,) = warned("  - {name: fc, type: linear, out_features: 10}\n")
    assert "(1, 4, 6, 6)" in message and "flatten" in message
    assert warned("  - {type: flatten}\n  - {type: linear, out_features: 10}\n") == []
    assert warned("  - {type: permute, dims: [0, 2, 3, 1]}\n  - {type: linear, out_features: 10}\n") == []  # channels-last
