"""Batch-norm folding checked in torch: each layer class says whether it folds (`folds`,
`affine_map`) or absorbs a fold (`absorbs_affine`, `absorb`)."""
from __future__ import annotations

from typing import Any

from ..analyzer import Report, bn_folds, fused_totals
from .build import build_model


def check_bn_folding(report: Report, t: Any, dev: Any) -> dict:
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


def _fold_and_compare(report: Report, t: Any, dev: Any, model: Any) -> dict:
    torch = t.torch
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, t.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-1, 1)
        x = torch.randn(report.input_shape, device=dev)
        before = model(x)
        for conv_row, bn_row in bn_folds(report):
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
