"""The layout the code promises: torch behind one door that draws nothing, tests that stand
alone. Read from the source with ast, so a violation fails here, not in a review."""
import ast
import glob
import os

from conftest import ROOT


def imports(path: str) -> set[str]:
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


#: the layers of the package, lowest first: a module may import its own layer and those below
RANKS = [("cnncalc.safe", "cnncalc.units"), ("cnncalc.errors",), ("cnncalc.layers",), ("cnncalc.spec",),
         ("cnncalc.analysis",), ("cnncalc.render", "cnncalc.backend"), ("cnncalc.interop",),
         ("cnncalc.cli", "cnncalc.api", "cnncalc.__init__", "cnncalc.__main__")]
#: the one edge upwards: verify times the exported file (imported inside the function that does)
ALLOWED = {("cnncalc.backend.verify", "cnncalc.interop.torch_export"),
           # Report prints itself (print, rich.print, a notebook's HTML, to_dict): renderers imported in those methods
           ("cnncalc.analysis.report", "cnncalc.render.text"), ("cnncalc.analysis.report", "cnncalc.render.html"),
           ("cnncalc.analysis.report", "cnncalc.render.formats")}


def modules() -> dict[str, str]:
    out = {}
    for path in glob.glob(os.path.join(ROOT, "cnncalc", "**", "*.py"), recursive=True):
        name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
        out[name] = path
    return out


def cnncalc_imports(path: str, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(open(path).read())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnncalc"):
            assert node.level == 0, f"{path}: relative import"  # absolute, so a move is a visible edit
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cnncalc"))
    return found


def rank(module: str) -> tuple[int, str]:
    for r, group in enumerate(RANKS):
        for top in group:
            if module == top or module.startswith(top + "."):
                return r, top
    if module == "cnncalc":
        return len(RANKS) - 1, "cnncalc.__init__"
    raise AssertionError(f"{module} is in no layer of RANKS")


def test_every_import_goes_down_the_layers():
    mods = modules()
    wrong = []
    for name, path in mods.items():
        r, top = rank(name)
        for target in cnncalc_imports(path):
            if target not in mods:
                continue  # a name imported from a module (the module itself is listed too)
            tr, ttop = rank(target)
            if (tr > r or (tr == r and ttop != top and r != len(RANKS) - 1)) and (name, target) not in ALLOWED:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_no_import_cycle_at_module_level():
    mods = modules()
    edges = {n: {t for t in cnncalc_imports(p, top_level_only=True) if t in mods and t != n} for n, p in mods.items()}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for t in edges[n]:
            if state.get(t) == 1 and not (n.startswith(t + ".") and t in ("cnncalc",)):
                if not n.startswith(t):  # a package importing its own submodules is not a cycle
                    raise AssertionError(" -> ".join(stack + [n, t]))
            elif t not in state:
                visit(t, stack + [n])
        state[n] = 2

    for n in mods:
        if n not in state:
            visit(n, [])


def test_torch_only_behind_its_doors_and_rich_only_where_things_are_drawn():
    mods = modules()
    torch_users = {n for n, p in mods.items() if "torch" in imports(p)}
    doors = ("cnncalc.backend.", "cnncalc.interop.torch_", "cnncalc.interop.onnx_export")
    assert torch_users and all(n.startswith(doors) for n in torch_users), torch_users
    rich_users = {n for n, p in mods.items() if "rich" in imports(p)}
    # safe.markup borrows rich's escape (inside the function): the one leaf that knows markup
    assert all(n.startswith(("cnncalc.render.", "cnncalc.cli.")) for n in rich_users - {"cnncalc.safe"}), rich_users


def test_tests_do_not_import_each_other_or_read_outside_the_repository():
    for path in glob.glob(os.path.join(ROOT, "tests", "**", "*.py"), recursive=True):
        assert not {n for n in imports(path) if n.startswith("test_")}, path
        text = open(path).read()
        if os.path.samefile(path, __file__):
            continue  # this test names what it forbids
        assert "dirname(ROOT)" not in text and "../" not in text, path  # nothing above the clone


def test_tests_follow_the_pipeline():
    """Every test module lives in the folder of the stage it tests (a package of cnncalc), or in
    project/ for what spans the whole repository; shared helpers stay at tests/'s top."""
    package = os.path.join(ROOT, "cnncalc")
    stages = {d for d in os.listdir(package) if os.path.isfile(os.path.join(package, d, "__init__.py"))}
    tests = glob.glob(os.path.join(ROOT, "tests", "**", "test_*.py"), recursive=True)
    assert tests
    for path in tests:
        folder = os.path.relpath(os.path.dirname(path), os.path.join(ROOT, "tests"))
        assert folder in stages | {"project"}, path
