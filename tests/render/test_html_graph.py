"""The HTML report's graph as a person sees it (#24 §5): ResNet-50's tall drawing keeps its natural
size inside a frame that scrolls, so node labels render at a readable size. Measured in headless
Chromium (skipped without it); a screenshot of the graph is kept in the test's tmp_path."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLES, example

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")

#: writes what the page shows into <body data-…>: the smallest label's rendered font size (its CSS
#: font size times the SVG's scale on screen), the smallest label box, and whether the frame scrolls
MEASURE = """<script>
const svg = document.querySelector('svg[aria-label="layer graph"]');
const frame = svg.parentElement;
const scale = svg.getBoundingClientRect().height / svg.viewBox.baseVal.height;
const labels = [...svg.querySelectorAll("g.node text")];
const d = document.body.dataset;
d.labels = labels.length;
d.scale = scale;
d.font = Math.min(...labels.map(t => parseFloat(getComputedStyle(t).fontSize) * scale));
d.box = Math.min(...labels.map(t => t.getBoundingClientRect().height));
d.frame = frame.clientHeight;
d.drawing = svg.getBoundingClientRect().height;
frame.scrollTop = 3000;
d.scrolled = frame.scrollTop;
</script></body>"""


def browser(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh one per run
    profile.mkdir()
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120)


def measure(tmp_path, page: str, name: str) -> dict[str, float]:
    path = tmp_path / name
    path.write_text(page.replace("</body>", MEASURE))
    out = browser(tmp_path, "--window-size=1280,1000", "--dump-dom", path.as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", out.stdout).group(1)
    return {k: float(v) for k, v in re.findall(r'data-(\w+)="([^"]*)"', body)}


@pytest.mark.slow
@needs_chromium
def test_resnet50_graph_is_readable_and_scrolls(tmp_path):
    page = subprocess.run([sys.executable, "-m", "cnncalc", "analyze", os.path.join(EXAMPLES, "resnet50.yaml"),
                           "-f", "html"], capture_output=True, text=True, check=True).stdout
    seen = measure(tmp_path, page, "resnet50.html")
    assert seen["labels"] == 2 * (len(example("resnet50").layers) + 1)  # name and shape of each layer, and the input
    assert seen["font"] >= 10 and seen["box"] >= 10, seen  # what a person reads, in CSS pixels
    assert seen["scale"] == pytest.approx(1, abs=0.01)  # drawn at its natural size
    # the frame is a window onto the drawing (at most 900 px of it), and it scrolls
    assert seen["frame"] <= 902 and seen["drawing"] > 5 * seen["frame"] and seen["scrolled"] > 0, seen
    # the check can fail: the page as it was, the frame's class `graph` also the SVG's, whose rule caps it at 900 px
    capped = (page.replace('<div class="graph-frame">', '<div class="graph">').replace(".graph-frame > svg", ".none")
              .replace(".graph-frame", ".graph"))
    small = measure(tmp_path, capped, "capped.html")
    assert small["font"] < 5 and small["scale"] < 0.2, small
    # a screenshot of the graph, kept with the test's files
    shot_page = tmp_path / "graph.html"  # the graph's frame alone, at the top of the window
    shot_page.write_text(page.replace("</style>", 'body > :not(:has(> svg[aria-label="layer graph"])) '
                                                  "{ display: none; }</style>"))
    shot = tmp_path / "resnet50-graph.png"
    out = browser(tmp_path, "--window-size=1280,900", "--hide-scrollbars", f"--screenshot={shot}", shot_page.as_uri())
    assert out.returncode == 0 and shot.exists() and shot.stat().st_size > 20_000, out.stderr[-2000:]
