"""``gentool demo``: a static site that runs exports in the browser with onnxruntime-web.

The site holds everything it runs: the exports' files, each family's driver module (its
``RuntimeSpec.web``), onnxruntime-web's JavaScript and WebAssembly and @huggingface/tokenizers,
copied from an npm install. Nothing is fetched from elsewhere when the page runs. The layout
is in docs/javascript.md.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from gentoolkit.errors import GentoolError

ASSETS = Path(__file__).parent
MARKER = "site.json"  # what makes a folder a demo site this command may replace
# what the page loads from each npm package (the WebAssembly build of onnxruntime-web, single- and
# multi-threaded in one file, and the tokenizers' ES module)
VENDOR = {
    "onnxruntime-web": ("dist", ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]),
    "@huggingface/tokenizers": ("dist", ["tokenizers.min.mjs"]),
}
INSTALL = "npm install onnxruntime-web @huggingface/tokenizers"
# ONNX files an export may hold beside the one the page runs (a transformers.js folder's other variants)
MODEL_SUFFIXES = (".onnx", ".onnx.data", ".onnx_data")


def find_node_modules(given: str | Path | None) -> Path:
    """The node_modules folder with the packages in ``VENDOR``: ``given``, or the first one found in
    the current folder or above it, as Node looks."""
    if given is not None:
        candidates = [Path(given)]
    else:
        here = Path.cwd().resolve()
        candidates = [p / "node_modules" for p in (here, *here.parents)]
    for folder in candidates:
        if all((folder / name / "package.json").is_file() for name in VENDOR):
            return folder
    if given is not None:
        missing = [name for name in VENDOR if not (Path(given) / name / "package.json").is_file()]
        raise GentoolError(f"--node-modules {str(given)!r} lacks {', '.join(missing)}; run: {INSTALL}")
    raise GentoolError(f"gentool demo copies onnxruntime-web and @huggingface/tokenizers into the site and found "
                       f"them in no node_modules here or above; run: {INSTALL} (or pass --node-modules DIR)")


def _version(folder: Path) -> str:
    return str(json.loads((folder / "package.json").read_text(encoding="utf-8")).get("version", "?"))


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}-{k}", k + 1
    taken.add(slug)
    return slug


def _export_files(folder: Path, manifest: dict) -> list[str]:
    """The files the page needs: the manifest's, less the ONNX files of variants it does not run."""
    model = manifest["model_file"]
    keep = {model, model + ".data", model + "_data"}
    names = manifest.get("files") or [p.name for p in folder.iterdir() if p.is_file()]
    return sorted(n for n in names if (folder / n).is_file() and (n in keep or not n.endswith(MODEL_SUFFIXES)))


def check_site_target(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise GentoolError(f"-o {str(out)!r} is not a folder; give a new folder for the site")
    if out.is_dir() and any(out.iterdir()) and not _is_site(out):
        raise GentoolError(f"-o {str(out)!r} holds files that are not a gentool demo site; pick a new folder")


def _is_site(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("made_by") == "gentool demo"
    except (OSError, ValueError, AttributeError):
        return False


def check_onnxruntime_web(models: list[tuple[Path, dict, str]], modules: Path) -> None:
    """Refuse an export whose manifest names a newer onnxruntime than the onnxruntime-web in ``modules``
    (the oldest release that runs its graph), before the page meets the graph's nodes."""
    from gentoolkit.runtime.folder import onnxruntime_needed

    have = _version(modules / "onnxruntime-web")
    for p, manifest, _ in models:
        need = onnxruntime_needed(manifest, have)
        if need is not None:
            raise GentoolError(f"{str(p)!r} needs onnxruntime {need} or newer and {modules / 'onnxruntime-web'} is "
                               f"{have}: npm install onnxruntime-web@latest")


def build(paths: list[str | Path], out: str | Path, *, node_modules: str | Path | None = None, log=print) -> Path:
    """Write the demo site for the exports in ``paths`` to ``out`` (new, empty, or a previous site)."""
    from gentoolkit import __version__
    from gentoolkit.files import inside, new_temp_dir, publish_dir, remove_stale_temps, write_json
    from gentoolkit.plugin.manager import get_registries
    from gentoolkit.plugin.specs import resolve
    from gentoolkit.runtime.folder import is_export, read_manifest, validate_manifest

    if not paths:
        raise GentoolError("name at least one export folder: gentool demo EXPORT... -o SITE")
    out = Path(out)
    check_site_target(out)
    runtimes = get_registries(commands=False).runtimes
    models, drivers, taken = [], {}, set()
    for p in map(Path, paths):
        if not p.is_dir() or not is_export(p):
            raise GentoolError(f"{str(p)!r} is not an export folder; make one with gentool export RUN -o DIR")
        manifest = read_manifest(p)
        validate_manifest(manifest, str(p))
        family = manifest["family"]
        spec = runtimes.get(family) if family in runtimes else None
        if spec is None or not spec.web:
            raise GentoolError(f"{str(p)!r}: the {family} family has no JavaScript driver (RuntimeSpec.web), so the "
                               "demo cannot run it; leave it out")
        if spec.web_check is not None:
            why = resolve(spec.web_check)(manifest)
            if why:
                raise GentoolError(f"{str(p)!r} {why}")
        drivers[family] = Path(spec.web)
        models.append((p, manifest, _slug(p.resolve().name, taken)))
    modules = find_node_modules(node_modules)
    check_onnxruntime_web(models, modules)
    remove_stale_temps(out.parent, stem=out.name)
    tmp = new_temp_dir(out)
    try:
        for name in ("index.html", "app.mjs", "style.css"):
            shutil.copyfile(ASSETS / name, tmp / name)
        (tmp / "drivers").mkdir()
        for family, module in drivers.items():
            if not module.is_file():
                raise GentoolError(f"the {family} family's JavaScript driver {module} is missing; reinstall its plugin")
            shutil.copyfile(module, tmp / "drivers" / f"{family}.mjs")
        vendor = {}
        for package, (sub, files) in VENDOR.items():
            dest = tmp / "vendor" / package.split("/")[-1]
            dest.mkdir(parents=True)
            for f in files:
                src = modules / package / sub / f
                if not src.is_file():
                    raise GentoolError(f"{src} is missing; reinstall it: {INSTALL}")
                shutil.copyfile(src, dest / f)
            vendor[package] = _version(modules / package)
        entries = []
        for folder, manifest, slug in models:
            dest = tmp / "models" / slug
            for name in _export_files(folder, manifest):
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(inside(folder, name, "a file the manifest lists"), target)
            size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
            entries.append({"name": slug, "family": manifest["family"], "model": manifest["model"],
                            "path": f"models/{slug}/", "driver": f"drivers/{manifest['family']}.mjs",
                            "dtype": manifest.get("dtype"), "bytes": size})
        write_json(tmp / MARKER, {"made_by": "gentool demo", "gentoolkit_version": __version__,
                                  "vendor": vendor, "models": entries})
        publish_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"wrote {out}: {len(entries)} model{'s' * (len(entries) != 1)} "
        f"({', '.join(e['name'] for e in entries)}), onnxruntime-web {vendor['onnxruntime-web']}, {total / 1e6:.1f} MB")
    return out


def serve(site: str | Path, host: str = "127.0.0.1", port: int = 8000, log=print, ready=None,
          isolate: bool = True) -> None:
    """Serve ``site`` until interrupted. The headers make the page cross-origin isolated, so that
    onnxruntime-web may use threads (``isolate=False`` leaves them out: one thread, as on a plain
    static host); ``ready(url)`` is called once it listens."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = Path(site)
    if not _is_site(site):
        raise GentoolError(f"{str(site)!r} is not a site made by gentool demo")

    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                          ".wasm": "application/wasm", ".json": "application/json", ".onnx": "application/octet-stream"}

        def end_headers(self):
            if isolate:
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cache-Control", "no-cache")
            super().end_headers()

        def log_message(self, *args):  # quiet: one line per request would drown the address
            pass

    try:
        server = ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(site)))
    except OSError as exc:
        raise GentoolError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    url = f"http://{host}:{server.server_address[1]}/"
    log(f"serving {site} at {url} (Ctrl-C stops)")
    sys.stdout.flush()
    if ready is not None:
        ready(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
