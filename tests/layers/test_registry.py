"""The layer class is the only list (#26): every registered type has a case row, an import route
(a torch module, a traced torch function or an ONNX op, or a stated reason for none), a probe
stand-in wherever its field rule is not point-wise, and a place in README's vocabulary. The
importers' tables are built from the classes' forms, so a form is checked here once."""
import os
import re

import pytest

from cnncalc.layers import REGISTRY, Layer
from cnncalc.layers.routes import onnx_forms, torch_forms

from conftest import ROOT, analyze_text
from layer_cases import CASES, spec_text

README = os.path.join(ROOT, "README.md")
DIMS = re.compile(r"^(.*?)([123])d$")


def _stated(cls: type[Layer]) -> bool:
    return bool(cls.torch_names is None or cls.torch_names or cls.torch_functions or cls.onnx_ops)


def test_every_type_has_a_case_row():
    covered = {layer["type"] for case in CASES for layer in case[3]}
    assert sorted(set(REGISTRY) - covered) == []


def test_every_type_has_an_import_route_or_says_why_not():
    missing = [k for k, cls in REGISTRY.items() if not _stated(cls) and not cls.no_import]
    assert missing == []
    both = [k for k, cls in REGISTRY.items() if cls.no_import and (cls.torch_functions or cls.onnx_ops)]
    assert both == []  # a reason for no route beside a route is stale


def test_every_module_route_names_a_module_torch_or_cnncalc_has():
    """torch_names (or the class's own name) is a class of torch.nn, torchvision.ops or cnncalc's
    exported modules; a type whose module name is nowhere needs another route or a reason."""
    torch = pytest.importorskip("torch")
    from cnncalc.backend import modules as ext

    def exists(name: str) -> bool:
        if hasattr(torch.nn, name) or hasattr(ext, name):
            return True
        try:
            import torchvision.ops
        except Exception:  # noqa: BLE001 - absent, or built for another torch
            return name == "StochasticDepth"  # torchvision.ops' (cnncalc's own is in ext too)
        return hasattr(torchvision.ops, name)

    bad = []
    for k, cls in REGISTRY.items():
        names = cls.torch_names if cls.torch_names is not None else (cls.__name__,)
        if not any(exists(n) for n in names) and not (cls.torch_functions or cls.onnx_ops or cls.no_import):
            bad.append((k, names))
    assert bad == []


def test_every_torch_form_is_spelled_as_torch_spells_it_and_claimed_once():
    """Each form names at least one function or method this torch has (a name a release lacks is
    skipped by the importer), with a prefix the importer knows, and no name belongs to two forms."""
    torch = pytest.importorskip("torch")
    import operator

    import torch.nn.functional as F

    spaces = {"F": F, "torch": torch, "operator": operator, "Tensor": torch.Tensor}
    seen: dict[str, str] = {}
    none_here = []
    for form in torch_forms(REGISTRY.values()):
        assert all(name.partition(".")[0] in spaces for name in form.names), form.names
        if not any(hasattr(spaces[name.partition(".")[0]], name.partition(".")[2]) for name in form.names):
            none_here.append(form.names)
        for name in form.names:
            assert name not in seen, f"{name} claimed twice ({seen[name]}, {form.short})"
            seen[name] = str(form.short)
    assert none_here == []


def test_every_onnx_op_is_claimed_once():
    ops = [op for form in onnx_forms(REGISTRY.values()) for op in form.ops]
    assert len(ops) == len(set(ops)) and ops


def test_a_type_whose_field_rule_is_not_point_wise_has_a_probe():
    """A type overriding `rf` or `reads` states its probe stand-in, unless its field is, on every
    case row, its input's field or none (then the identity stand-in is right)."""
    missing = []
    for kind, cls in REGISTRY.items():
        overrides = cls.rf is not Layer.rf or cls.reads is not Layer.reads
        if not overrides or cls.probe is not Layer.probe:
            continue
        for case in CASES:
            if case[3][-1]["type"] != kind:
                continue
            rows = analyze_text(spec_text(case)).layers
            field = rows[-1].receptive_field
            before = rows[-2].receptive_field if len(rows) > 1 else None
            if field is not None and not (before is not None and field == before) and not (
                    len(rows) == 1 and all(r.size == 1 and r.jump == 1 and r.start == 0 for r in field)):
                missing.append(case[0])
    assert missing == []


def _vocabulary() -> str:
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    start = text.index("Layer vocabulary:")
    return text[start:text.index("\n\n", start)]


def _named(kind: str, text: str) -> bool:
    """`kind` is in the vocabulary: by its own name, or (a 1-D/2-D/3-D family member, `maxpool2d`)
    by its family's words and its dimension (`max/avg pool 1d/2d/3d`)."""
    if re.search(rf"(?<![a-z0-9_]){re.escape(kind)}(?![a-z0-9_])", text):
        return True
    m = DIMS.match(kind)
    if not m:
        return False
    stem, dim = m.groups()
    words = [w for part in stem.split("_") for w in re.split(r"(?<=.)(?=pool$|norm$|pad$)", part) if w]
    return all(w in text for w in words) and re.search(rf"(?<![0-9]){dim}d", text) is not None


def test_every_type_is_in_the_readme_vocabulary():
    text = _vocabulary()
    assert [k for k in REGISTRY if not _named(k, text)] == []


def test_the_vocabulary_check_catches_a_type_it_does_not_name():
    text = _vocabulary()
    assert not _named("glu_gate", text) and not _named("octave_conv2d", text) and _named("maxpool3d", text)
