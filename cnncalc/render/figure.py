"""The receptive-field figure as an image file (matplotlib, optional)."""
from __future__ import annotations

from cnncalc.analysis.report import Report
from cnncalc.analysis.status import of_field
from cnncalc.errors import CnnError
from cnncalc.safe import visible
from cnncalc.units import human


def plain_text(text: object) -> str:
    """Foreign text for matplotlib: visible (one line), with each `$` escaped so that none starts
    mathtext (a `$` pair would be parsed as TeX: a malformed one is an error, a valid one not
    what was written)."""
    return visible(text).replace("$", "\\$")


def figure(report: Report, path: str) -> None:
    """A PNG/SVG with four panels: MACs, params and activation memory per layer, and receptive
    field and output size against depth (matplotlib, the `plot` extra)."""
    try:
        import matplotlib
    except ImportError:
        raise CnnError.single("plotting to a file needs matplotlib: pip install 'cnncalc[plot]' "
                              "(or use `cnncalc plot SPEC` for the terminal version)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.layers
    idx = list(range(len(rows)))
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), constrained_layout=True)
    for ax, key, title in ((axes[0][0], "macs", "MACs per layer"), (axes[0][1], "params", "parameters per layer"),
                           (axes[1][0], "activation_bytes", "activation bytes per layer")):
        ax.bar(idx, [getattr(r, key) for r in rows], color="#4C72B0")
        ax.set_title(title)
        ax.set_xlabel("layer index")
    ax = axes[1][1]
    rf = [(i, float(r.receptive_field[0].size)) for i, r in enumerate(rows) if r.receptive_field]
    rough = [(i, float(r.receptive_field[0].size)) for i, r in enumerate(rows)
             if r.receptive_field and (s := of_field(r.receptive_field)) is not None and s.marker]
    size = [(i, r.output_shape[2]) for i, r in enumerate(rows) if len(r.output_shape) > 2]
    if rf:
        ax.plot(*zip(*rf), label="receptive field (axis 0)", color="#C44E52")
    if rough:  # the `~` of the tables: estimated fields, marked where they are drawn
        ax.plot(*zip(*rough), linestyle="none", marker="o", fillstyle="none", color="#C44E52",
                label="~ estimated field")
    if size:
        ax.plot(*zip(*size), label="output size (axis 0)", color="#55A868")
    ax.set_title("receptive field and output size vs depth")
    ax.set_xlabel("layer index")
    ax.legend()
    fig.suptitle(f"{plain_text(report.name)}: {report.totals['params']:,} params, {human(report.totals['macs'])} MACs")
    try:
        fig.savefig(path)
    except OSError as exc:
        raise CnnError.single(f"cannot write the figure: {exc.strerror or exc}", file=path) from None
    finally:
        plt.close(fig)
