"""The report views of #16: shares, --columns, several specs, DOT and Mermaid graphs and the HTML
report, the last three checked in the real tools (Graphviz, Chromium, mermaid.js) where present."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from cnncalc.render import graph
from cnncalc.render import html as report_html
from cnncalc.render.columns import COLUMNS, by_type, choose_columns, layer_cells, share, totals_rows

from conftest import EXAMPLES, ROOT, analyze_text, example, golden

LENET = os.path.join(EXAMPLES, "lenet5.yaml")
GOOGLENET = os.path.join(EXAMPLES, "googlenet_block.yaml")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
MERMAID = os.environ.get("CNNCALC_MERMAID_JS") or os.path.join(ROOT, ".ci", "node_modules", "mermaid", "dist",
                                                                "mermaid.min.js")
HOSTILE_NAME = '<script>alert(1)</script> "q" \\\\ #35; `b` --> ]] &amp;'
HOSTILE = "name: " + json.dumps(HOSTILE_NAME) + """
input: 3x16x16
layers:
  - {name: stem, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: act, type: relu}
  - {name: side, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [stem]}
  - {name: sum, type: add, inputs: [act, side]}
"""


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "cnncalc", *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})


# ---- shares and columns ------------------------------------------------------------------------
def test_share_cells_are_fractions_of_the_totals():
    r = example("lenet5")
    cells = {row.name: layer_cells(row, r) for row in r.layers}
    pct = COLUMNS.index("% params"), COLUMNS.index("% MACs")
    assert [cells["c3.conv"][i] for i in pct] == [f"{2416 / 61706:.1%}", f"{16 * 6 * 25 * 10 * 10 / 416520:.1%}"]
    assert cells["c1.pool"][pct[0]] == "–"                         # nothing is not 0.0%
    assert share(1, 10**6) == "<0.1%" and share(0, 0) == "–"


@pytest.mark.slow  # whole cnncalc processes: the fast loop stays well under a minute
def test_columns_choose_and_order_the_table():
    assert choose_columns("MACs, name ,% MACs,rf_size") == [1, 6, 7, 10]  # table order, any spelling
    with pytest.raises(ValueError, match="unknown column 'macz' \\(did you mean 'macs'"):
        choose_columns("name,macz")
    out = cli("analyze", LENET, "--columns", "name,params,macs_share")
    assert out.returncode == 0
    header = next(line for line in out.stdout.splitlines() if "name" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == ["name", "params", "% MACs"]
    md = cli("analyze", LENET, "-f", "markdown", "--columns", "name,macs").stdout
    assert "| name | MACs |" in md and "|---|---:|" in md and "| c3.conv | 240 K |" in md
    for bad in (["-f", "json"], ["-f", "csv"], ["--by", "type"]):
        out = cli("analyze", LENET, "--columns", "name", *bad)
        assert out.returncode == 2 and "--columns" in out.stderr, bad
    assert cli("analyze", LENET, "--columns", "nope").returncode == 2


def test_columns_and_depth_golden():
    out = cli("analyze", os.path.join(EXAMPLES, "resnet50.yaml"), "--depth", "1", "--columns",
              "name,shape,params,params_share,macs,macs_share")
    golden("resnet50.depth1.columns.txt", out.stdout)


# ---- several specs -------------------------------------------------------------------------------
@pytest.mark.slow  # whole cnncalc processes: the fast loop stays well under a minute
def test_several_specs_in_one_analyze(tmp_path):
    mnist = os.path.join(EXAMPLES, "mnist_net.yaml")
    out = cli("analyze", LENET, mnist)
    assert out.returncode == 0 and "lenet5" in out.stdout and "mnist_net" in out.stdout
    data = json.loads(cli("analyze", LENET, mnist, "-f", "json").stdout)
    assert [d["name"] for d in data] == ["lenet5", "mnist_net"]
    assert data[0]["totals"]["params"] == example("lenet5").totals["params"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4}\n")
    out = cli("analyze", LENET, str(bad), mnist, "-f", "json")
    assert out.returncode == 1 and "missing required field 'kernel_size'" in out.stderr
    data = json.loads(out.stdout)
    assert [d.get("name") for d in data] == ["lenet5", None, "mnist_net"]
    assert data[1]["file"] == str(bad) and data[1]["problems"][0]["line"] == 3
    assert cli("analyze", LENET, "nope.yaml").returncode == 2
    out = cli("analyze", LENET, mnist, "--max-params", "50K")  # mnist_net (31,626) fits, lenet5 (61,706) does not
    assert out.returncode == 1 and "lenet5" in out.stdout and "mnist_net" in out.stdout
    for fmt in ("csv", "html", "dot", "mermaid"):
        out = cli("analyze", LENET, mnist, "-f", fmt)
        assert out.returncode == 2 and "one spec at a time" in out.stderr, fmt


# ---- graphs ----------------------------------------------------------------------------------------
def test_lanes_follow_branches():
    assert graph.lanes(4, [(0, 1), (1, 2), (2, 3)]) == [0, 0, 0, 0]
    # input → a → b, input → c, (b, c) → d: c opens a lane, d continues b's
    assert graph.lanes(5, [(0, 1), (1, 2), (0, 3), (2, 4), (3, 4)]) == [0, 0, 0, 1, 0]
    # a merge continues whichever input ends a lane; a freed lane is reused before a new one opens
    assert graph.lanes(7, [(0, 1), (1, 2), (0, 3), (2, 4), (3, 4), (4, 5), (4, 6), (5, 6)])[6] == 0
    assert graph.lanes(7, [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (3, 5), (4, 6), (5, 6)]) == [0, 0, 1, 0, 0, 1, 0]


def test_dot_and_mermaid_goldens():
    for name in ("lenet5", "googlenet_block"):
        path = os.path.join(EXAMPLES, f"{name}.yaml")
        golden(f"{name}.dot", cli("analyze", path, "-f", "dot").stdout)
        golden(f"{name}.mmd", cli("analyze", path, "-f", "mermaid").stdout)
    r = example("googlenet_block")
    nodes, edges = graph.nodes_edges(r)
    assert len(nodes) == len(r.layers) + 1 and len(edges) == sum(len(x.inputs) for x in r.layers)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz (dot)")
def test_graphviz_reads_the_dot_output():
    for text in (cli("analyze", os.path.join(EXAMPLES, "resnet50.yaml"), "-f", "dot").stdout,
                 graph.to_dot(analyze_text(HOSTILE))):
        out = subprocess.run(["dot", "-Tjson"], input=text, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        drawn = json.loads(out.stdout)
        assert len(drawn["objects"]) == text.count("[label=")  # every node drawn
    import html

    svg = subprocess.run(["dot", "-Tsvg"], input=graph.to_dot(analyze_text(HOSTILE)), capture_output=True,
                         text=True).stdout
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert texts[0] == HOSTILE_NAME  # the title is drawn exactly as written


def chromium(url: str, *extra: str) -> tuple[str, str]:
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                          "--v=0", "--allow-file-access-from-files", *extra, "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, "\n".join(line for line in out.stderr.splitlines() if ":CONSOLE" in line)


@pytest.mark.skipif(CHROMIUM is None or not os.path.exists(MERMAID), reason="needs Chromium and mermaid.js")
def test_mermaid_renders_the_graph(tmp_path):
    import html

    for name, report in (("googlenet", example("googlenet_block")), ("hostile", analyze_text(HOSTILE))):
        page = tmp_path / f"{name}.html"
        page.write_text(f"""<!DOCTYPE html><html><body><pre class="mermaid">{html.escape(graph.to_mermaid(report))}</pre>
<script src="file://{MERMAID}"></script>
<script>mermaid.initialize({{startOnLoad: false, securityLevel: "strict"}});
mermaid.run({{querySelector: ".mermaid"}}).then(() => {{ document.body.dataset.done = "ok"; }},
  e => {{ document.body.dataset.done = "failed"; console.error(String(e)); }});</script></body></html>""")
        dom, console = chromium(page.as_uri(), "--virtual-time-budget=10000")
        assert 'data-done="ok"' in dom and not console, console
        assert dom.count('class="node default"') == len(report.layers) + 1
    broken = tmp_path / "broken.html"  # the check itself can fail: a label with a bare quote breaks Mermaid
    broken.write_text(page.read_text().replace("n1[&quot;", "n1[&quot;&quot;"))
    dom, console = chromium(broken.as_uri(), "--virtual-time-budget=10000")
    assert 'data-done="failed"' in dom and console


# ---- HTML report --------------------------------------------------------------------------------
def test_html_report_golden_and_structure():
    text = cli("analyze", LENET, "-f", "html").stdout
    golden("lenet5.html", text)
    r = example("lenet5")
    assert text.count("<tr>") == len(r.layers) + len(totals_rows(r)) + 1 + len(by_type(r)) + 1
    assert "<script src" not in text and "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_html_escapes_the_spec():
    text = report_html.to_html(analyze_text(HOSTILE))
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("<script>") == 1  # the page's own sorting script only


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")
def test_html_report_in_a_real_browser(tmp_path):
    r = example("resnet50")
    page = tmp_path / "resnet50.html"
    page.write_text(report_html.to_html(r, explain=True))
    # click the MACs heading twice (descending), then record the first rows' names
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", """<script>
const th = [...document.querySelectorAll("table.layers th")].find(h => h.textContent === "MACs");
th.click(); th.click();
document.body.dataset.first = [...document.querySelectorAll("table.layers tbody tr")].slice(0, 3)
  .map(r => r.cells[1].textContent).join(",");
</script></body>"""))
    dom, console = chromium(probe.as_uri())
    assert not console, console  # no errors, no messages of any kind
    assert dom.count("<tr>") >= len(r.layers) and dom.count('class="node"') == len(r.layers) + 1
    assert dom.count('class="chart"') == 3 and "<details>" in dom
    first = re.search(r'data-first="([^"]*)"', dom).group(1).split(",")
    # sorted by the real numbers (conv1's 118,013,952 first), not by the text "116 M"
    assert [r.layer(n).macs for n in first] == sorted((x.macs for x in r.layers), reverse=True)[:3]
    hostile = tmp_path / "hostile.html"
    hostile.write_text(report_html.to_html(analyze_text(HOSTILE)))
    dom, console = chromium(hostile.as_uri())
    assert not console and dom.count("<script") == 1
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1280,2000", page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000  # something was drawn


# ---- diff ----------------------------------------------------------------------------------------
def test_diff_groups_what_follows_from_one_change(tmp_path):
    old = os.path.join(EXAMPLES, "resnet18.yaml")
    new = tmp_path / "resnet18.yaml"
    new.write_text(open(old).read().replace("out_channels: 64, kernel_size: 7", "out_channels: 64, kernel_size: 5", 1))
    stored = tmp_path / "old.json"
    stored.write_text(cli("analyze", old, "-f", "json").stdout)
    for before in (old, str(stored)):  # a spec, or a stored report, on the old side
        data = json.loads(cli("diff", before, str(new), "-f", "json").stdout)
        causes = {c["name"]: c["cause"] for c in data["changed"]}
        assert [n for n, c in causes.items() if c == "direct"] == ["conv1"]
        assert len(causes) == 67 and "fc" not in causes  # 113 → 57 → … → 4: fc sees the same 512 features
    out = cli("diff", old, str(new)).stdout
    assert "~ conv1: output_shape: 1×64×112×112 → 1×64×113×113; params: 9,408 → 4,800" in out
    assert "~ 66 later layers changed only as a consequence" in out and "~ bn1" not in out
    # a layer whose inputs are unchanged changed on its own account, even with the same params
    strided = tmp_path / "strided.yaml"
    strided.write_text(open(old).read().replace("padding: 3, bias: false", "padding: 2, bias: false", 1))
    data = json.loads(cli("diff", old, str(strided), "-f", "json").stdout)
    assert data["changed"][0] == {**data["changed"][0], "name": "conv1", "cause": "direct"}


def test_sweep_takes_the_specs_batch_unless_told(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text("input: 3x8x8\nbatch: 4\nlayers:\n  - {type: conv2d, out_channels: 2, kernel_size: 3}\n")
    rows = json.loads(cli("sweep", str(spec), "-i", "3x8x8", "-f", "json").stdout)
    assert [r["batch"] for r in rows] == [4] and rows[0]["macs"] == 4 * (2 * 3 * 3 * 3) * 6 * 6
    rows = json.loads(cli("sweep", str(spec), "-i", "3x8x8", "-b", "1,2", "-f", "json").stdout)
    assert [r["batch"] for r in rows] == [1, 2]
