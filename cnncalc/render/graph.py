"""The network as a graph: Graphviz DOT, Mermaid, and the SVG drawing of the HTML report.

Node 0 is the network input, node i + 1 the report's layer i; an edge runs from each layer's
inputs to it. Every label is made of visible characters and escaped for its language.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from cnncalc.analysis.report import Report
from cnncalc.safe import visible


@dataclass
class Node:
    name: str
    kind: str
    shape: str
    detail: str  #: params and MACs, or '' for the input


def nodes_edges(report: Report) -> tuple[list[Node], list[tuple[int, int]]]:
    from cnncalc.units import human, shape_str

    nodes = [Node("input", "input", shape_str(report.input_shape), "")]
    index = {"input": 0}
    edges = []
    for i, r in enumerate(report.layers, 1):
        detail = " · ".join(x for x in (f"{r.params:,} params" if r.params else "",
                                        f"{human(r.macs)} MACs" if r.macs else "") if x)
        nodes.append(Node(visible(r.name), r.type, shape_str(r.output_shape), detail))
        edges += [(index[src], i) for src in r.inputs if src in index]
        index[r.name] = i
    return nodes, edges


def _dot_text(s: str) -> str:
    """A DOT label: backslash and quote escaped, & as an entity (Graphviz reads entities in labels)."""
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def to_dot(report: Report) -> str:
    """Graphviz: `cnncalc analyze net.yaml -f dot | dot -Tsvg > net.svg`."""
    nodes, edges = nodes_edges(report)
    lines = ["digraph cnncalc {", f'  label="{_dot_text(visible(report.name))}"; labelloc=t; rankdir=TB;',
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10];']
    for i, n in enumerate(nodes):
        label = "\\n".join(_dot_text(x) for x in (n.name, f"{n.kind} · {n.shape}" if i else n.shape, n.detail) if x)
        lines.append(f'  n{i} [label="{label}"' + (", shape=ellipse, fillcolor=\"#fdf2d0\"" if i == 0 else "") + "];")
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    return "\n".join(lines) + "\n}\n"


#: characters a Mermaid label keeps as they are; every other is written as its entity code (#NN;)
_MERMAID_PLAIN = frozenset(" ._-·×,:/()+*=–")


def _mermaid_text(s: str) -> str:
    """Text for a quoted Mermaid label (or the comment line): visible, and each character that is
    not a letter, digit or plain punctuation written as Mermaid's entity code ``#NN;`` — quotes,
    brackets, ``%`` (no ``%%`` directive or comment can form: Mermaid scans the whole text for
    them), ``#``, ``;``, ``<``, ``&``, backticks and backslashes alike."""
    return "".join(c if c.isalnum() or c in _MERMAID_PLAIN else f"#{ord(c)};" for c in visible(s))


def to_mermaid(report: Report) -> str:
    """Mermaid flowchart (renders in GitHub Markdown inside a ```mermaid fence)."""
    nodes, edges = nodes_edges(report)
    lines = [f"%% {_mermaid_text(report.name)}", "flowchart TD"]
    for i, n in enumerate(nodes):
        label = "<br/>".join(_mermaid_text(x) for x in (n.name, f"{n.kind} · {n.shape}" if i else n.shape, n.detail)
                             if x)
        lines.append(f'  n{i}(["{label}"])' if i == 0 else f'  n{i}["{label}"]')
    lines += [f"  n{a} --> n{b}" for a, b in edges]
    return "\n".join(lines) + "\n"


# ---- SVG drawing ------------------------------------------------------------------------------
BOX_W, BOX_H, LANE_W, ROW_H, PAD = 230, 36, 270, 48, 20


def lanes(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """A lane (column) per node, in file order: a node continues the lane of its first input
    that is still its lane's last node, else takes the lowest lane whose last node has no
    consumers left (or a new one)."""
    import heapq

    waiting = [0] * n
    incoming: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        waiting[a] += 1
        incoming[b].append(a)
    lane = [0] * n
    tail: dict[int, int] = {}  # lane -> its last node
    free: list[int] = []       # a heap of lanes to reuse
    for i in range(n):
        src = next((a for a in incoming[i] if tail.get(lane[a]) == a), None)
        if src is not None:
            lane[i] = lane[src]
        else:
            while free and waiting[tail[free[0]]]:  # taken since it was freed
                heapq.heappop(free)
            lane[i] = heapq.heappop(free) if free else len(tail)
        tail[lane[i]] = i
        for a in incoming[i]:
            waiting[a] -= 1
            if not waiting[a] and tail[lane[a]] == a:
                heapq.heappush(free, lane[a])
        if not waiting[i]:
            heapq.heappush(free, lane[i])
    return lane


def to_svg(report: Report) -> str:
    """The graph drawn top to bottom, one row per layer; long edges arc to the right."""
    nodes, edges = nodes_edges(report)
    lane = lanes(len(nodes), edges)
    width = (max(lane) + 1) * LANE_W + 2 * PAD + 80
    height = len(nodes) * ROW_H + 2 * PAD

    def x(i: int) -> float:
        return PAD + lane[i] * LANE_W

    def y(i: int) -> float:
        return PAD + i * ROW_H

    last_in_lane: dict[int, int] = {}
    previous = {}
    for i in range(len(nodes)):
        previous[i] = last_in_lane.get(lane[i])
        last_in_lane[lane[i]] = i
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="layer graph">',
           '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#667"/></marker></defs>']
    for a, b in edges:
        if lane[a] == lane[b] and previous[b] == a:  # straight down to the next node of the lane
            d = f"M{x(a) + BOX_W / 2},{y(a) + BOX_H} L{x(b) + BOX_W / 2},{y(b)}"
        elif lane[a] == lane[b]:  # skips nodes of its own lane: arc to the right
            bulge = 30 + min(b - a, 12) * 3
            d = (f"M{x(a) + BOX_W},{y(a) + BOX_H / 2} C{x(a) + BOX_W + bulge},{y(a) + BOX_H / 2} "
                 f"{x(b) + BOX_W + bulge},{y(b) + BOX_H / 2} {x(b) + BOX_W},{y(b) + BOX_H / 2}")
        elif lane[a] < lane[b]:  # out of the source's right side, into the target's top
            d = (f"M{x(a) + BOX_W},{y(a) + BOX_H / 2} C{x(b) + BOX_W / 2},{y(a) + BOX_H / 2} "
                 f"{x(b) + BOX_W / 2},{y(b) - ROW_H / 2} {x(b) + BOX_W / 2},{y(b)}")
        else:  # back to a lane on the left: out of the bottom, into the target's right side
            d = (f"M{x(a) + BOX_W / 2},{y(a) + BOX_H} C{x(a) + BOX_W / 2},{y(b) + BOX_H / 2} "
                 f"{x(b) + BOX_W + 40},{y(b) + BOX_H / 2} {x(b) + BOX_W},{y(b) + BOX_H / 2}")
        out.append(f'<path d="{d}" fill="none" stroke="#889" stroke-width="1.2" marker-end="url(#arrow)"/>')
    for i, n in enumerate(nodes):
        name = n.name if len(n.name) <= 30 else n.name[:29] + "…"
        sub = f"{n.kind} · {n.shape}" if i else n.shape
        title = " · ".join(filter(None, (n.name, sub, n.detail)))
        out.append(f'<g class="node"><title>{html.escape(title)}</title>'
                   f'<rect x="{x(i)}" y="{y(i)}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                   f'fill="{"#fdf2d0" if i == 0 else "#eef3fb"}" stroke="#7a8bb0"/>'
                   f'<text x="{x(i) + 8}" y="{y(i) + 15}" font-size="12" font-weight="600">{html.escape(name)}</text>'
                   f'<text x="{x(i) + 8}" y="{y(i) + 29}" font-size="11" fill="#445">'
                   f'{html.escape(sub if len(sub) <= 36 else sub[:35] + "…")}</text></g>')
    out.append("</svg>")
    return "\n".join(out)
