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


def test_no_module_both_imports_torch_and_draws():
    sources = glob.glob(os.path.join(ROOT, "cnncalc", "**", "*.py"), recursive=True)
    torch_users = {os.path.relpath(p, ROOT) for p in sources if "torch" in imports(p)}
    assert torch_users and all(p.startswith(os.path.join("cnncalc", "backend")) for p in torch_users), torch_users
    assert [p for p in torch_users if "rich" in imports(os.path.join(ROOT, p))] == []


def test_tests_do_not_import_each_other_or_read_outside_the_repository():
    for path in glob.glob(os.path.join(ROOT, "tests", "*.py")):
        assert not {n for n in imports(path) if n.startswith("test_")}, path
        text = open(path).read()
        if os.path.samefile(path, __file__):
            continue  # this test names what it forbids
        assert "dirname(ROOT)" not in text and "../" not in text, path  # nothing above the clone
