"""``gentool plugin new NAME``: write a working plugin skeleton.

The skeleton is a separate distribution ``gentoolkit-NAME`` with its own
``pyproject.toml`` and entry point, one model (a diagonal Gaussian fitted to
vectors by maximum likelihood through the host's training loop), one loss, one
latent sampler, and tests that pass once it is installed.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from gentoolkit.errors import GentoolError

TEMPLATE_DIR = Path(__file__).parent / "scaffold_template"
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def new_plugin(name: str, parent: str | Path = ".") -> Path:
    """Create ``parent/gentoolkit-NAME`` from the templates; returns its path."""
    if not NAME_RE.match(name):
        raise GentoolError(f"plugin name {name!r} must be lowercase letters and digits, words joined by '-' (e.g. 'my-flow')")
    package = "gentoolkit_" + name.replace("-", "_")
    target = Path(parent) / f"gentoolkit-{name}"
    if target.exists():
        raise GentoolError(f"{str(target)!r} already exists; pick another name or --dir")
    from gentoolkit import __version__
    from gentoolkit.files import atomic_dir

    values = {"name": name, "package": package, "gentoolkit_version": __version__}
    with atomic_dir(target) as tmp:
        for src in sorted(TEMPLATE_DIR.rglob("*.tmpl")):
            rel = Path(str(src.relative_to(TEMPLATE_DIR)).replace("PACKAGE", package).removesuffix(".tmpl"))
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Template(src.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
    return target
