"""The house rules that a tool keeps: no function in the package over 60 lines, and the
learner's core (numpyvae/nn/) small enough to read in an afternoon: at most 2,000 lines.

A function's length is ``end_lineno − lineno + 1`` from the AST: from its ``def`` line
(decorators aside) to its last line, docstring, comments and blank lines included;
methods and nested functions count on their own. (ruff's PLR0915 counts statements,
not lines, and misses some.) The layering is kept by import-linter: ``lint-imports``
with the contracts in setup.cfg, run by .ci/run.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "numpyvae"
MAX_LINES = 60
NN_MAX_LINES = 2000  # counted as `wc -l numpyvae/nn/*.py`


def long_functions(source: str, where: str = "<source>", limit: int = MAX_LINES
                   ) -> list[str]:
    """``where:line name (n lines)`` for every function of ``source`` longer than ``limit``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                found.append(f"{where}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_in_the_package_is_over_60_lines():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50  # the package itself, not an empty folder
    found = [f for path in files
             for f in long_functions(path.read_text(), str(path.relative_to(REPO)))]
    assert not found, (f"functions over {MAX_LINES} lines (split them into steps that "
                       "each do one job):\n" + "\n".join(found))


def _function(body_lines: int, decorators: int = 0, indent: str = "") -> str:
    """A function of 1 + body_lines lines, after ``decorators`` decorator lines."""
    lines = [f"{indent}@staticmethod"] * decorators + [f"{indent}def f(x):"]
    lines += [f"{indent}    x = x + {i}" for i in range(body_lines - 1)] + [f"{indent}    return x"]
    return "\n".join(lines) + "\n"


def test_the_count_is_the_def_line_to_the_last_line_decorators_aside():
    assert long_functions(_function(59)) == []  # 60 lines
    assert long_functions(_function(60)) == ["<source>:1 f (61 lines)"]
    assert long_functions(_function(59, decorators=3)) == []  # 63 with its decorators
    method = "class A:\n" + _function(60, indent="    ")
    assert long_functions(method) == ["<source>:2 f (61 lines)"]
    nested = "def outer():\n" + _function(60, indent="    ") + "    return f\n"
    assert [f.split()[1] for f in long_functions(nested)] == ["outer", "f"]


def nn_lines(folder: Path) -> int:
    """What `wc -l folder/*.py` totals: newline characters in the folder's own .py files."""
    return sum(path.read_bytes().count(b"\n") for path in sorted(folder.glob("*.py")))


def test_the_learners_core_stays_within_2000_lines():
    lines = nn_lines(PACKAGE / "nn")
    assert lines > 1000  # the core itself, not an empty glob
    assert lines <= NN_MAX_LINES, (f"numpyvae/nn/ holds {lines} lines, over its {NN_MAX_LINES}: "
                                   "the core must stay small enough to read in an afternoon")


def test_nn_lines_counts_as_wc_does(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n")
    (tmp_path / "b.py").write_text("z = 3")  # no final newline: wc counts 0 lines
    (tmp_path / "c.txt").write_text("\n" * 50)  # not a .py file
    assert nn_lines(tmp_path) == 2
