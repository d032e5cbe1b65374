"""The code's structure, read from the source (nothing is imported): the import graph of the host and the
plugins, its cycles, and the picture of it that docs/architecture.md shows.

``python -m gentoolkit.cli.docgen`` redraws ``docs/img/architecture.svg`` with :func:`draw`; a test fails when
the picture in the docs is not the one the code gives now, and another when the graph has a cycle.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from html import escape
from pathlib import Path

#: a lazy reference to code, ``"package.module:attribute"`` (what specs name their code with)
LAZY = re.compile(r"^(gentoolkit\w*)(\.\w+)*:\w+$")


def source_files(root: Path) -> dict[str, Path]:
    """``{module: file}`` of the host (``gentoolkit/``) and of every plugin package under ``plugins/`` (a
    separate distribution's ``src/`` included), tests left out."""
    out = {}
    for base in ("gentoolkit", "plugins"):
        for path in sorted((root / base).rglob("*.py")):
            rel = path.relative_to(root).parts
            if "tests" in rel:
                continue
            if rel[0] == "plugins":
                rel = rel[3:] if len(rel) > 3 and rel[2] == "src" else rel[1:]
                if not rel or not rel[0].startswith("gentoolkit_"):
                    continue
            parts = list(rel[:-1]) + ([] if path.name == "__init__.py" else [path.stem])
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """``{module: {module of ours it imports: line}}``: every ``import`` and ``from`` (relative ones
    resolved), at any level (inside functions too: a lazy import is an import), and every lazy reference
    string; not the imports under ``if TYPE_CHECKING:``, which never run."""
    files = source_files(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                       for stmt in block.body for n in ast.walk(stmt)}
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - (node.level - 1)]
                    module = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" for a in node.names] + [module]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY.match(node.value):
                targets = [node.value.partition(":")[0]]
            for t in targets:  # the most specific module of ours the import names
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.setdefault(t, node.lineno)
                    break
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# --- the picture -------------------------------------------------------------------------------------------
CORE = "gentoolkit"
ENTRY = "gentoolkit (package)"  # the package's __init__ (what plugins import) and __main__


def is_host(room_name: str) -> bool:
    return room_name in (CORE, ENTRY) or room_name.startswith(CORE + "/")


def rooms(root: Path) -> tuple[dict[str, list[str]], Counter]:
    """``({room: [its modules' short names]}, Counter({(room, room it imports): imports}))``. A room is a
    host folder (``gentoolkit/train``), the host's top-level modules (``gentoolkit``) or a plugin package."""
    files = source_files(root)
    packages = {m for m, p in files.items() if p.name == "__init__.py"}

    def room(module: str) -> str:
        parts = module.split(".")
        if parts[0] != CORE:
            return parts[0]
        if module in (CORE, CORE + ".__main__"):
            return ENTRY
        if len(parts) == 2 and module not in packages:
            return CORE
        return "/".join(parts[:2])

    members: dict[str, list[str]] = {}
    for m, path in files.items():
        members.setdefault(room(m), []).append("__init__" if path.name == "__init__.py" else path.stem)
    arrows: Counter = Counter()
    for src, edges in import_graph(root).items():
        for dst in edges:
            a, b = room(src), room(dst)
            if a != b:
                arrows[(a, b)] += 1
    return members, arrows


def _layers(names: list[str], arrows: Counter) -> list[list[str]]:
    """Rooms by floor: a room sits above every room it imports (the longest path down to a room that
    imports none of the others)."""
    depth: dict[str, int] = {}

    def d(r: str, seen: tuple = ()) -> int:
        if r in depth:
            return depth[r]
        below = [b for (a, b) in arrows if a == r and b not in seen]
        depth[r] = 0 if not below else 1 + max(d(b, seen + (r,)) for b in below)
        return depth[r]

    for r in names:
        d(r)
    top = max(depth.values(), default=0)
    return [sorted(r for r in names if depth[r] == level) for level in range(top, -1, -1)]


def draw(root: Path) -> str:
    """The SVG of the structure: each room a box listing its modules, each floor the rooms that import
    only the floors below; an arrow for each room that imports another (its width: how many imports).
    Plugins are blue and the host grey; an arrow that breaks an import rule would be red."""
    members, arrows = rooms(root)
    floors = _layers(sorted(members), arrows)
    box_w, line_h, gap_x, gap_y, pad = 190, 14, 24, 70, 24
    heights = {r: 26 + line_h * len(members[r]) for r in members}
    pos: dict[str, tuple[float, float]] = {}
    width = max(len(f) for f in floors) * (box_w + gap_x) + pad
    y = 60.0
    for floor in floors:
        x = (width - len(floor) * (box_w + gap_x) + gap_x) / 2
        for r in floor:
            pos[r] = (x, y)
            x += box_w + gap_x
        y += max(heights[r] for r in floor) + gap_y
    height = y - gap_y + 120
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="11">',
           '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
           '<marker id="r" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
           '<text x="12" y="24" font-size="15" font-weight="bold">gentoolkit: the host and its plugins, '
           'read from the code</text>',
           '<text x="12" y="42" fill="#444">A room imports only the floors below it. '
           'Drawn by python -m gentoolkit.cli.docgen; do not edit.</text>']
    for (a, b), n in sorted(arrows.items()):
        (xa, ya), (xb, yb) = pos[a], pos[b]
        bad = not is_host(b) and (is_host(a) or a != b)  # the host into a plugin, a plugin into another
        x1, y1 = xa + box_w / 2, ya + heights[a]
        x2, y2 = xb + box_w / 2, yb
        if y2 <= y1:  # an arrow up or sideways (a room on the same floor): from the box's side
            x1, y1, y2 = (xa + box_w, ya + heights[a] / 2, yb + heights[b] / 2) if xb > xa else \
                (xa, ya + heights[a] / 2, yb + heights[b] / 2)
            x2 = xb if xb > xa else xb + box_w
        w = min(4.0, 0.6 + 0.35 * n)
        colour, mark = ("#c0392b", "r") if bad else ("#555", "a")
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                   f'stroke-opacity="0.55" stroke-width="{w:.2f}" marker-end="url(#{mark})"/>')
    for r, (x, y) in sorted(pos.items()):
        plugin = not is_host(r)
        fill, edge = ("#e8f1fb", "#2e6da4") if plugin else ("#f2f2f2", "#666")
        title = {CORE: "gentoolkit/ (shared modules)", ENTRY: "gentoolkit/ (the package)"}.get(r, r + "/")
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{heights[r]}" rx="6" fill="{fill}" '
                   f'stroke="{edge}"/>')
        out.append(f'<text x="{x + 8:.1f}" y="{y + 17:.1f}" font-weight="bold">{escape(title)}</text>')
        for i, m in enumerate(sorted(members[r])):
            out.append(f'<text x="{x + 14:.1f}" y="{y + 33 + i * line_h:.1f}" fill="#333">{escape(m)}.py</text>')
    rules = ["Import rules (tests/test_imports.py, tests/test_house.py):",
             "the host imports no plugin, and no plugin another (such an arrow would be red);",
             "no module imports itself back through others (no cycle, lazy imports included);",
             "gentoolkit/runtime and every module a plugin's runtime.py imports: no torch, no click;",
             "the host names no family's config key, decode option or graph op."]
    for i, text in enumerate(rules):
        bold = ' font-weight="bold"' if i == 0 else ""
        out.append(f'<text x="12" y="{height - 92 + i * 16:.0f}" fill="#222"{bold}>{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
