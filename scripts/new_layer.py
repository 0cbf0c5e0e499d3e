"""Scaffold a new layer type: the class, its case row and its README entry, then the checklist.

    python scripts/new_layer.py glu --family activation [--torch GLU] [--dry-run]

Writes
  cnncalc/layers/<family>.py   a class `<Torch>(Layer)` with `type: Literal["<name>"]`, a docstring
                               to state the rules as formulas, and the rules to fill in
  tests/layer_cases.py         a case row whose expected numbers are None: the layer tests fail
                               until the hand arithmetic is written there
  README.md                    the type in the "Layer vocabulary" paragraph
and prints the hooks a layer may override (the Layer contract in cnncalc/layers/base.py) with
what each default does, so that nothing is left at a wrong default. Nothing else needs editing:
the registry, the JSON Schema, `cnncalc layers`, the parity, memory, export and import tests all
read the class.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FAMILIES = ("activation", "conv", "linear", "merge", "modern", "norm", "pool", "reshape")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

CHECKLIST = [  # (hook, its default: what to check)
    ("shape(ctx)", "output = input shape; raise LayerError(message, field) for what torch refuses"),
    ("weights(ctx) / buffers(ctx)", "none; name them as torch's state_dict does"),
    ("macs(ctx) / elementwise(ctx)", "0 / 0 (counting conventions: README 'Counting conventions')"),
    ("rf(ctx, fields) / reads(...)", "point-wise field; a window layer returns RF.step(...)"),
    ("saved(ctx, grads)", "autograd keeps nothing: read the op in torch's derivatives.yaml"),
    ("scratch(ctx, b) / backward_scratch(...)", "no temporaries in forward / backward"),
    ("aliases(training) / moves_data()", "a new output tensor / data moved"),
    ("build(ctx, t)", "REQUIRED: the torch module (t.nn, t.F, t.ext for cnncalc's own modules)"),
    ("probe(ctx, t)", "identity stand-in: a window layer needs a positive linear stand-in (a window sum)"),
    ("folds() / affine_map / absorb", "not folded into a neighbouring conv"),
    ("torch_names / from_torch(m)", "imported from the torch class of the same name, fields read by name"),
    ("torch_functions", "no traced functional form: add TorchForm(('F.x', 'torch.x', 'Tensor.x'), short, reader) "
                        "rows (factories in cnncalc/layers/routes.py: module, activation_forms, merge, along_dim)"),
    ("onnx_ops", "not read from ONNX: add OnnxForm(('OpType',), reader) rows (node → spec entry, weights)"),
    ("no_import", "None: tests/layers/test_registry.py fails unless a module, a function or an ONNX op reads the type, "
                  "or this states why none does"),
    ("ClassVars", "category, min_inputs/max_inputs, absorbs_affine"),
    ("Flags", "rf_size_dependent / passes_gradient / memory_exact = Flag(False / False / True); "
              "@Flag.rule def ...(self) -> bool where the answer depends on the fields"),
]


def class_text(name: str, torch: str, family: str) -> str:
    return f'''

class {torch}(Layer):
    """TODO state the rules as formulas (`cnncalc layers {name}` prints this):
    output shape = …; params = …; MACs = …; element-wise ops = …; RF …"""

    category: ClassVar[str] = "{family}"
    type: Literal["{name}"]

    def build(self, ctx: Ctx, t: Any) -> Any:
        return t.nn.{torch}()
'''


def case_text(name: str) -> str:
    return (f'    ("{name}", (3, 8, 8), 2, [C(type="{name}")],\n'
            f'     dict(shape=None, params=None, macs=None, ew=None)),  # TODO the hand arithmetic\n')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the spec's type, e.g. glu")
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--torch", help="torch's class name (default: the name in CamelCase)")
    ap.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--dry-run", action="store_true", help="print what would be written")
    args = ap.parse_args(argv)
    if not NAME.match(args.name):
        ap.error(f"the type must be snake_case ASCII, at most 40 characters: {args.name[:60]!r}")
    torch = args.torch or "".join(p.capitalize() for p in args.name.split("_"))
    if not re.match(r"^[A-Z][A-Za-z0-9]{0,39}$", torch):
        ap.error(f"--torch must be a class name: {torch[:60]!r}")
    from cnncalc.layers import REGISTRY

    if args.name in REGISTRY:
        ap.error(f"'{args.name}' is a layer type already ({REGISTRY[args.name].__module__})")
    module = os.path.join(args.root, "cnncalc", "layers", f"{args.family}.py")
    cases = os.path.join(args.root, "tests", "layer_cases.py")
    readme = os.path.join(args.root, "README.md")
    source = open(module).read()
    if re.search(rf"^class {torch}\b", source, re.M):
        ap.error(f"{module} has a class {torch} already: choose --torch")
    rows = open(cases).read()
    end = rows.index("\n]\n", rows.index("CASES = ["))
    rows = rows[: end + 1] + case_text(args.name) + rows[end + 1:]
    text = open(readme).read()
    vocab = text.index("Layer vocabulary: ")
    stop = text.index("\n\n", vocab)
    text = text[:stop] + f"; {args.name} (new: describe it)" + text[stop:]
    writes = {module: source.rstrip("\n") + "\n" + class_text(args.name, torch, args.family), cases: rows, readme: text}
    for path, content in writes.items():
        if args.dry_run:
            print(f"--- would write {os.path.relpath(path, args.root)}")
        else:
            with open(path, "w") as fh:
                fh.write(content)
            print(f"wrote {os.path.relpath(path, args.root)}")
    print(f"\nNext, in the class {torch} ({os.path.relpath(module, args.root)}), override what differs from the "
          "default (cnncalc/layers/base.py):")
    for hook, default in CHECKLIST:
        print(f"  - {hook:42} default: {default}")
    print(f"Then write the case row's hand arithmetic in tests/layer_cases.py and run\n"
          f"  python -m pytest -q tests/layers/test_layers.py tests/layers/test_parity.py \\\n"
          f"      tests/analysis/test_memory.py -k {args.name}\n"
          "  python -m pytest -q tests/layers/test_registry.py   # its case row, import route, probe, README entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
