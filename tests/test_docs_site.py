"""The docs site as a reader gets it: one strict ``mkdocs build``, then the built pages are read.

The API reference is generated from the code, the favicon is the toolkit's own picture, long code
blocks are never cut off, ``__name__`` in prose never turns into bold, and nothing is fetched from
the network when a page is opened (the site works offline).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def page(site: Path, md: str) -> str:
    """The built HTML of the page whose source is ``docs/<md>``."""
    rel = Path(md).with_suffix("")
    html = site / ("index.html" if rel.name == "index" and rel.parent == Path(".") else rel / "index.html")
    return html.read_text(encoding="utf-8")


def test_runtime_api_page_documents_the_public_names(site):
    import gentoolkit.runtime as runtime

    html = page(site, "api/runtime.md")
    assert "load" in runtime.__all__
    for name in runtime.__all__:
        assert f'id="gentoolkit.runtime.{name}"' in html, name
    # what load returns: the built-in families' drivers, read from their plugins' registrations
    sources = "".join(p.read_text() for p in (ROOT / "plugins").glob("gentoolkit_*/plugin.py"))
    drivers = re.findall(r'RuntimeSpec\(.*?load="([\w.]+):(\w+)"', sources, re.S)
    assert len(drivers) >= 2, drivers
    for module, cls in drivers:
        assert f'id="{module}.{cls}"' in html, (module, cls)
    assert 'id="gentoolkit_autoregressive.runtime.TextModel.generate"' in html
    assert ":meth:" not in html and ":class:" not in html, "a Sphinx role was printed as it stands"


def test_hookspecs_api_page_documents_every_hook(site):
    from gentoolkit.plugin import hookspecs

    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "gentoolkit_spec")]
    assert len(hooks) >= 2, hooks
    html = page(site, "api/hookspecs.md")
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())
    for hook in hooks:
        assert f'id="gentoolkit.plugin.hookspecs.{hook}"' in html, hook
        summary = inspect.getdoc(getattr(hookspecs, hook)).splitlines()[0].replace("``", "")
        assert summary in text, summary


def test_favicon_is_the_toolkits_own_and_every_page_links_it(site):
    favicon = re.search(r"^\s+favicon:\s*(\S+)", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert favicon, "mkdocs.yml sets no theme.favicon"
    path = favicon.group(1)
    assert (DOCS / path).is_file() and (site / path).is_file(), path
    assert (DOCS / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f'<link rel="icon" href="{path}">' in page(site, "index.md")
    assert f'<link rel="icon" href="../{path}">' in page(site, "cli.md")


def test_long_code_blocks_wrap_instead_of_being_cut_off(site):
    css = "".join(p.read_text() for p in (site / "stylesheets").glob("*.css"))
    rule = re.search(r"\.md-typeset \.language-text pre > code[^{]*\{([^}]*)\}", css)
    assert rule and "white-space: pre-wrap" in rule.group(1), "no wrapping rule for text blocks"
    assert re.search(r"\.md-typeset pre > code\s*\{[^}]*overflow-x: auto", css), "source code must scroll"
    cli = page(site, "cli.md")
    assert re.search(r'<link rel="stylesheet" href="\.\./stylesheets/[\w.-]+\.css">', cli)
    # the CLI reference's --help blocks carry the class the rule selects
    blocks = re.findall(r'<div class="([^"]*)highlight"><pre>', cli)
    assert blocks and all("language-text" in b for b in blocks), set(blocks)


def test_dunder_words_are_never_bold(site):
    checked = 0
    for md in sorted(DOCS.rglob("*.md")):
        words = set(re.findall(r"__(\w+?)__", md.read_text(encoding="utf-8")))
        if not words:
            continue
        html = page(site, md.relative_to(DOCS).as_posix())
        for word in words:
            checked += 1
            assert f"<strong>{word}</strong>" not in html, f"{md.relative_to(ROOT)}: __{word}__ renders as bold"
    assert checked, "no __name__ in the docs to check"
    assert "<strong>rue</strong>" not in page(site, "performance.md")


def test_pages_fetch_nothing_from_the_network(site):
    for html_file in site.rglob("*.html"):
        html = html_file.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html, html_file
        remote = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]+"', html)
        assert not remote, (html_file, remote[:3])
