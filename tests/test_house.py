"""The host names no family: no config key, decode option or graph op that only a family has.

The words a family owns are read from what the families register (their decode options, the
fields of their config sections) and from the ops their exports write; the host's own words (its
parameters, fields and variables) are taken out, so that a family's ``path`` or ``steps`` that the
host also has for itself is not counted. Every other word of a host module is then checked: its
names, attributes, keywords and strings (for ops: its comments and docstrings too).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OP = re.compile(r"""(?:make_node|\.op)\(\s*["']([A-Z]\w+)["']""")
#: words the host has by another contract than a family's
HOST_WORDS = {"prompt": "OpenAI's /v1/completions field (gentool serve), and the English word in help texts"}


def family_words(root: Path = ROOT) -> tuple[dict[str, str], dict[str, str]]:
    """``(names, ops)``: what each registered family owns, with where it comes from."""
    from gentoolkit import get_registries

    regs = get_registries(commands=False)
    names: dict[str, str] = {}
    for spec in [*regs.models, *regs.runtimes]:
        for o in spec.sample_options:
            names.setdefault(o.name, f"a decode option of {spec.name}")
    for spec in regs.models:
        for section, cls in [("model", spec.config), *(spec.sections or {}).items()]:
            if cls is not None and dataclasses.is_dataclass(cls):
                for f in dataclasses.fields(cls):
                    names.setdefault(f.name, f"the config key {section}.{f.name} of {spec.name}")
    import onnx.defs

    ops = {}
    for path in (root / "plugins").rglob("*.py"):
        if "tests" not in path.parts:
            for m in OP.finditer(path.read_text(encoding="utf-8")):
                if not onnx.defs.has(m.group(1)):  # onnxruntime's own ops, not ONNX's standard ones
                    ops.setdefault(m.group(1), f"an op {path.relative_to(root)} writes")
    return names, ops


def host_defines(files: list[Path]) -> set[str]:
    """Every name the host defines for itself: parameters, functions, classes, variables, attributes, fields."""
    out: set[str] = set()
    for path in files:
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, ast.arg):
                out.add(n.arg)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(n.name)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                out.add(n.id)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                out.add(n.attr)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "make_node" and n.args \
                    and isinstance(n.args[0], ast.Constant):
                out.add(n.args[0].value)
            elif isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "make_node" and n.args \
                    and isinstance(n.args[0], ast.Constant):
                out.add(n.args[0].value)  # an op the host writes itself (quantization)
    return out


def host_mentions(path: Path, names: dict[str, str], ops: dict[str, str]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    # names bound to other libraries' modules (import torch, import torch.nn as nn, from torch import optim): a
    # keyword given to their functions is their parameter's name (AdamW's weight_decay), not a family's key
    foreign = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            foreign |= {(a.asname or a.name).split(".")[0] for a in n.names if not a.name.startswith("gentoolkit")}
        elif isinstance(n, ast.ImportFrom) and not n.level and not (n.module or "").startswith("gentoolkit"):
            foreign |= {a.asname or a.name for a in n.names}
    foreign_keywords = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            root = n.func
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in foreign:
                foreign_keywords.update(id(k) for k in n.keywords)
    found = []
    for n in ast.walk(tree):
        words: list[str] = []
        if isinstance(n, ast.Name):
            words = [n.id]
        elif isinstance(n, ast.Attribute):
            words = [n.attr]
        elif isinstance(n, ast.keyword) and n.arg and id(n) not in foreign_keywords:
            words = [n.arg]
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            words = WORD.findall(n.value)
        found += [f"{path.name}:{n.lineno}: {w} ({names[w]})" for w in words if w in names]
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):  # ops: in prose too
        if tok.type in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            found += [f"{path.name}:{tok.start[0]}: {w} ({ops[w]})" for w in WORD.findall(tok.string) if w in ops]
    return found


def violations(root: Path, names: dict[str, str], ops: dict[str, str]) -> list[str]:
    files = sorted(p for p in (root / "gentoolkit").rglob("*.py"))
    own = host_defines(files) | set(HOST_WORDS)
    names = {k: v for k, v in names.items() if k not in own}
    ops = {k: v for k, v in ops.items() if k not in own}
    return [hit for path in files for hit in host_mentions(path, names, ops)]


def test_the_host_names_no_family_key_option_or_op():
    names, ops = family_words()
    assert {"block_size", "top_p", "z_dim", "truncation"} <= set(names)  # the families were read
    assert "GroupQueryAttention" in ops
    assert violations(ROOT, names, ops) == []


def test_a_host_module_that_names_a_family_word_is_found(tmp_path):
    names, ops = family_words()
    (tmp_path / "gentoolkit").mkdir()
    (tmp_path / "gentoolkit" / "loop.py").write_text(
        "def f(tree, steps):\n"
        "    ctx = tree['model'].block_size\n"  # a family's config key, as an attribute
        "    opts = {'top_p': 0.9}\n"  # a family's decode option, as a string
        "    # fuse into GroupQueryAttention\n"  # a family's op, in a comment
        "    import torch\n"
        "    torch.optim.AdamW([], weight_decay=0.1)\n"  # torch's parameter: not counted
        "    return steps\n")  # the host's own parameter: not counted
    found = violations(tmp_path, names, ops)
    assert [f.split(" (")[0] for f in found] == ["loop.py:2: block_size", "loop.py:3: top_p",
                                                   "loop.py:4: GroupQueryAttention"], found
