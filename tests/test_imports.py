"""The wall between the host and its families, as import rules read from the source (not from a run).

1. The host (``gentoolkit/``) never imports a plugin package (``gentoolkit_*``).
2. No plugin imports another plugin.
3. ``gentoolkit/runtime/`` and every plugin's ``runtime.py`` (what apps embed), with every module of
   the plugin that it imports, import neither torch nor click, at any level, inside functions too.
4. No import cycles, in the host or in any plugin: an import inside a function counts (a cycle hidden
   behind a lazy import is still a cycle), and so does a lazy reference string; an import under
   ``if TYPE_CHECKING:`` (for type checkers alone: it never runs) does not.

An import is an ``import`` or ``from`` statement, or a lazy reference string
``"package.module:attribute"`` (what specs name their code with), which is an import by another name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gentoolkit.cli.architecture import cycles, import_graph, source_files

ROOT = Path(__file__).resolve().parents[1]
LAZY = re.compile(r"^(gentoolkit_\w+)[\w.]*:\w")
EMBEDDED_BANNED = ("torch", "click")


def _package_of(path: Path, root: Path) -> str | None:
    """``gentoolkit`` for the host, the plugin's package name for a plugin file, None otherwise."""
    rel = path.relative_to(root).parts
    if rel[0] == "gentoolkit":
        return "gentoolkit"
    if rel[0] == "plugins":
        inner = rel[3:] if len(rel) > 3 and rel[2] == "src" else rel[1:]
        return inner[0] if inner and inner[0].startswith("gentoolkit_") else None
    return None


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY.match(node.value):
            out.append((node.lineno, node.value.partition(":")[0]))
    return out


def _runtime_closure(root: Path) -> set[Path]:
    """Each plugin's ``runtime.py`` and every module of its own plugin that it imports, transitively."""
    files = source_files(root)
    graph = import_graph(root)
    todo = [m for m, p in files.items() if p.name == "runtime.py" and not m.startswith("gentoolkit.")]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [t for t in graph.get(m, {}) if t.split(".")[0] == m.split(".")[0]]
    return {files[m] for m in seen}


def violations(root: Path) -> list[str]:
    found = []
    files = [p for base in ("gentoolkit", "plugins") for p in (root / base).rglob("*.py")]
    runtime_closure = _runtime_closure(root)
    for path in sorted(files):
        pkg = _package_of(path, root)
        if pkg is None or "tests" in path.relative_to(root).parts:
            continue
        embedded = (pkg == "gentoolkit" and "runtime" in path.relative_to(root / "gentoolkit").parts[:1]) or (
            pkg != "gentoolkit" and path in runtime_closure)
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            top = module.split(".")[0]
            where = f"{path.relative_to(root)}:{line}"
            if pkg == "gentoolkit" and top.startswith("gentoolkit_"):
                found.append(f"{where}: the host imports the plugin {top}")
            elif pkg != "gentoolkit" and top.startswith("gentoolkit_") and top != pkg:
                found.append(f"{where}: plugin {pkg} imports plugin {top}")
            if embedded and top in EMBEDDED_BANNED:
                found.append(f"{where}: an embedded runtime module imports {top}")
    return found


def test_the_tree_keeps_the_import_rules():
    assert violations(ROOT) == []


def test_a_planted_violation_of_each_rule_is_found(tmp_path):
    files = {
        "gentoolkit/__init__.py": "",
        "gentoolkit/bad_host.py": "def f():\n    from gentoolkit_gan.task import GANTask\n",
        "gentoolkit/lazy_host.py": 'REF = "gentoolkit_autoregressive.model:build"\n',
        "gentoolkit/runtime/__init__.py": "def g():\n    import torch.nn\n",
        "plugins/gentoolkit_one/plugin.py": "import gentoolkit_two.config\nfrom .own import x\nimport gentoolkit\n",
        "plugins/gentoolkit_one/runtime.py": "import click\n",
        "plugins/gentoolkit-three/src/gentoolkit_three/task.py": "from gentoolkit_one import plugin\n",
        "plugins/gentoolkit_two/config.py": "import numpy\nimport gentoolkit_two.other\n",  # its own: allowed
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = violations(tmp_path)
    assert len(found) == 6, found
    for part in ("bad_host.py:2: the host imports the plugin gentoolkit_gan",
                 "lazy_host.py:1: the host imports the plugin gentoolkit_autoregressive",
                 "runtime/__init__.py:2: an embedded runtime module imports torch",
                 "gentoolkit_one/plugin.py:1: plugin gentoolkit_one imports plugin gentoolkit_two",
                 "gentoolkit_one/runtime.py:1: an embedded runtime module imports click",
                 "gentoolkit_three/task.py:1: plugin gentoolkit_three imports plugin gentoolkit_one"):
        assert any(part in f for f in found), (part, found)


def test_no_import_cycle_in_the_host_or_any_plugin():
    graph = import_graph(ROOT)
    assert len(graph) > 80  # the host's and the plugins' modules were all read
    found = cycles(graph)
    assert found == [], "\n".join(" <-> ".join(c) for c in found)


def test_a_planted_cycle_is_found_however_it_is_hidden(tmp_path):
    files = {
        "gentoolkit/__init__.py": "",
        "gentoolkit/a.py": "from .b import x\n",
        "gentoolkit/b.py": "def f():\n    from gentoolkit import a\n",  # hidden in a function
        "gentoolkit/c.py": "from gentoolkit.a import y\n",  # imports into the cycle: not in it
        "gentoolkit/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gentoolkit.e import E\n",
        "gentoolkit/e.py": "from gentoolkit.d import x\n",  # d imports e for type checkers alone: no cycle
        "plugins/gentoolkit_one/__init__.py": "",
        "plugins/gentoolkit_one/plugin.py": 'REF = "gentoolkit_one.task:Task"\n',  # a lazy reference string
        "plugins/gentoolkit_one/task.py": "from . import plugin\n",
        "plugins/gentoolkit_one/model.py": "from .task import Task\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert cycles(import_graph(tmp_path)) == [["gentoolkit.a", "gentoolkit.b"],
                                               ["gentoolkit_one.plugin", "gentoolkit_one.task"]]
