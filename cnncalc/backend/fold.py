"""Batch-norm folding checked in torch: each layer class says whether it folds (`folds`,
`affine_map`) or absorbs a fold (`absorbs_affine`, `absorb`)."""
from __future__ import annotations

from typing import Any

from cnncalc.analysis.fold import bn_folds, fused_totals
from cnncalc.analysis.report import Report
from cnncalc.backend.build import build_model
from cnncalc.backend.kit import Kit


def check_bn_folding(report: Report, t: Kit, dev: Any) -> dict:
    """Fold every foldable batch norm into its conv in a copy of the model (random running
    statistics and affine parameters, eval mode) and check that outputs agree and that the
    folded model has the analytic fused parameter count."""
    torch = t.torch
    torch.manual_seed(0)
    model = build_model(report, t).eval().to(dev)
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # compare in true float32
    try:
        return _fold_and_compare(report, t, dev, model)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _fold_and_compare(report: Report, t: Kit, dev: Any, model: Any) -> dict:
    torch = t.torch
    pairs = bn_folds(report)
    with torch.no_grad():
        for _, bn_row in pairs:  # random statistics and affine parameters: a fold that drops one shows
            for tensor in [*model.layers[f"l{bn_row.index}"].parameters(), *model.layers[f"l{bn_row.index}"].buffers()]:
                if tensor.is_floating_point():
                    tensor.uniform_(0.5, 2)
        x = torch.randn(report.input_shape, device=dev)
        before = model(x)
        for conv_row, bn_row in pairs:
            bn_key, conv_key = f"l{bn_row.index}", f"l{conv_row.index}"
            scale, shift = bn_row.layer.affine_map(model.layers[bn_key], t)
            conv_row.layer.absorb(model.layers[conv_key], scale, shift, t)
            model.layers[bn_key] = t.nn.Identity()
        after = model(x)
    outs = before if isinstance(before, tuple) else (before,)
    outs2 = after if isinstance(after, tuple) else (after,)
    err = max(float((a - b).abs().max() / (a.abs().max() + 1e-12)) for a, b in zip(outs, outs2))
    analytic = fused_totals(report)
    measured = sum(p.numel() for p in model.parameters())
    return {"folded": analytic["folded"], "analytic_params": analytic["params"], "torch_params": measured,
            "max_relative_output_difference": err, "ok": measured == analytic["params"] and err < 1e-4}
