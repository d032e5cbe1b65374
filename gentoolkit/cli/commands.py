"""Bodies of the ``gentool`` commands that do real work (imported inside the click callbacks)."""

from __future__ import annotations

import json

import click

from gentoolkit.errors import GentoolError
from gentoolkit.plugin.manager import get_model
from gentoolkit.plugin.specs import resolve
from gentoolkit.runtime.folder import is_export
from gentoolkit.train.run import Run


def _entry(spec, what: str):
    ref = getattr(spec, what)
    if ref is None:
        raise GentoolError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not support '{what}'")
    return resolve(ref)


def _json_flag(fn, family: str, as_json: bool) -> dict:
    """``{"as_json": True}`` for a family's sample function that takes it; an error where it does not."""
    import inspect

    if not as_json:
        return {}
    param = inspect.signature(fn).parameters.get("as_json")
    if param is None or param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
        raise GentoolError(f"the {family} family's sample does not print JSON; drop --json")
    return {"as_json": True}


def _load_export(path, device: str):
    """An export folder through the runtime, on the CUDA provider with ``--device cuda``."""
    from gentoolkit.runtime import load

    return load(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else None)


def sample_command(path, *, n, seed, sampler, sampler_opts, out, device, options, as_json: bool = False) -> None:
    """``gentool sample``: an export through its family's runtime driver (``cli_sample``), a run through
    its model's ``sample`` entry (PyTorch). Both take the options the family declared and resolve
    them with :func:`gentoolkit.plugin.options.resolve_sampling`."""
    from gentoolkit.plugin.manager import get_registries
    from gentoolkit.plugin.options import check_options, given_options

    options = given_options(options)
    try:
        if is_export(path):
            model = _load_export(path, device)
            check_options(options, get_registries().runtimes.get(model.family).sample_options, model.family)
            model.cli_sample(n=n, seed=seed, out=out, sampler=sampler, sampler_opts=sampler_opts, **options,
                             **_json_flag(model.cli_sample, model.family, as_json))
            return
        run = Run.open(path)
        spec = get_model(run.model_name)
        check_options(options, spec.sample_options, spec.family)
        entry = _entry(spec, "sample")
        entry(run, n=n, seed=seed, out=out, device=device, sampler=sampler, sampler_opts=sampler_opts, **options,
              **_json_flag(entry, spec.family, as_json))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception alone
        from gentoolkit.runtime.session import is_onnxruntime_error

        if not is_onnxruntime_error(exc):
            raise
        detail = " ".join(str(exc).split())[:300]
        raise GentoolError(f"onnxruntime failed running {path} ({detail}); export the run again") from None


def _taken(fn, family: str, options: dict) -> dict:
    """The options given (not None) that ``fn`` takes as keywords; one it does not take is an error."""
    import inspect

    given = {k: v for k, v in options.items() if v is not None}
    params = inspect.signature(fn).parameters
    for name in given:
        if name not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise GentoolError(f"the {family} family's eval does not take --{name.replace('_', '-')}; drop it")
    return given


def eval_command(path, *, data, as_json, device, window=None, stride=None) -> None:
    """``gentool eval``: a run through its model's ``evaluate`` entry (PyTorch), an export through its runtime
    driver's ``evaluate`` method (onnxruntime), where the family has one. ``window`` and ``stride`` go to
    a family whose evaluate takes them (a language model's sliding windows)."""
    options = {"window": window, "stride": stride}
    if is_export(path):
        model = _load_export(path, device)
        if not callable(getattr(model, "evaluate", None)):
            raise GentoolError(f"the {model.family} runtime cannot evaluate an export; evaluate the run it came from: "
                               "gentool eval RUN")
        result = model.evaluate(data=data, **_taken(model.evaluate, model.family, options))
    else:
        run = Run.open(path)
        spec = get_model(run.model_name)
        entry = _entry(spec, "evaluate")
        result = entry(run, data=data, device=device, **_taken(entry, spec.family, options))
    if as_json:
        click.echo(json.dumps(result))
        return
    from gentoolkit.samples.metrics import format_metric

    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        click.echo(f"{key:>{width}}: {format_metric(key, value)}")



def data_command(source: str, out: str, size: int) -> None:
    """``gentool data``: a picture set (a registered image dataset, or a folder) as a new folder of PNGs."""
    from pathlib import Path

    from gentoolkit.samples.data import load
    from gentoolkit.samples.io import write_picture_folder

    target = Path(out)
    if target.exists():
        raise GentoolError(f"{out!r} exists; gentool data writes a new folder (it never writes into or replaces "
                           "one it did not make): choose another --out")
    samples = load(source, image_size=size)
    target.parent.mkdir(parents=True, exist_ok=True)
    if samples.kind != "images":
        raise GentoolError(f"{source!r} holds {samples.kind}, not pictures; gentool data writes picture sets")
    n = write_picture_folder(samples, target, size)
    classes = samples.extra.get("classes") or []
    click.echo(f"wrote {n} pictures of {size}x{size} to {out}"
               + (f", labelled with {len(classes)} classes in labels.csv" if classes else ""))


def import_command(folder, out) -> None:
    """``gentool import``: a GGUF file goes to the model whose ``gguf_architectures`` has its
    ``general.architecture``; a folder to the one whose ``hf_model_types`` has its ``model_type``."""
    from pathlib import Path

    path = Path(folder)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    named = path.suffix.lower() == ".gguf"
    if (path.is_file() and (named or is_gguf(path))) or (named and not path.is_dir()):
        arch = gguf_architecture(path)
        _importer(arch, "gguf_architectures", "gguf_import", f"no installed model imports GGUF files of the {arch!r} "
                  "architecture; GGUF architectures gentoolkit imports")(path, out, log=log)
        return
    cfg = path / "config.json"
    if not path.is_dir() or not cfg.is_file():
        raise GentoolError(f"{str(folder)!r} is not a Hugging Face model folder (it needs config.json, "
                           "model.safetensors and tokenizer.json) nor a GGUF file")
    try:
        kind = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise GentoolError(f"cannot read {cfg}: {exc}") from None
    _importer(kind, "hf_model_types", "hf_import",
              f"no installed model imports {kind!r} checkpoints; model types gentoolkit imports")(folder, out, log=log)


def _importer(value, kinds: str, door: str, unknown: str):
    """The import function (``Interop.<door>``) of the first installed model whose ``Interop.<kinds>``
    holds ``value``; else an error, ``unknown`` followed by every value some model imports."""
    from gentoolkit.plugin.manager import get_registries

    models = get_registries().models
    specs = [s.interop for s in models if value in getattr(s.interop, kinds) and getattr(s.interop, door)]
    if not specs:
        known = sorted({k for s in models for k in getattr(s.interop, kinds)})
        raise GentoolError(f"{unknown}: {', '.join(known) or 'none'}")
    return resolve(getattr(specs[0], door))


GGUF_MAGIC = b"GGUF"


def is_gguf(path) -> bool:
    """Whether the file ``path`` starts with GGUF's magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def gguf_architecture(path) -> str:
    """``general.architecture`` of a GGUF file, read from its header alone (no gguf package, no tensors)."""
    import struct

    scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type -> bytes

    def fail(why: str) -> GentoolError:
        return GentoolError(f"{str(path)!r} is not a GGUF file gentoolkit can read ({why})")

    try:
        with open(path, "rb") as f:
            def read(n: int) -> bytes:
                data = f.read(n)
                if len(data) != n:
                    raise fail("it ends inside its header")
                return data

            def u(n: int) -> int:
                return int.from_bytes(read(n), "little")

            def skip(vtype: int) -> None:
                if vtype in scalar:
                    f.seek(scalar[vtype], 1)
                elif vtype == 8:
                    f.seek(u(8), 1)
                elif vtype == 9:
                    item, count = u(4), u(8)
                    if item in scalar:
                        f.seek(scalar[item] * count, 1)
                    else:
                        for _ in range(count):
                            skip(item)
                else:
                    raise fail(f"a value of unknown type {vtype}")

            if read(4) != GGUF_MAGIC:
                raise fail("it does not start with 'GGUF'")
            version = u(4)
            if version not in (2, 3):
                raise fail(f"GGUF version {version}; gentoolkit reads versions 2 and 3")
            _, n_kv = struct.unpack("<QQ", read(16))
            for _ in range(n_kv):
                key = read(u(8)).decode("utf-8", "replace")
                vtype = u(4)
                if key == "general.architecture" and vtype == 8:
                    return read(u(8)).decode("utf-8", "replace")
                skip(vtype)
    except FileNotFoundError:
        raise GentoolError(f"{str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise GentoolError(f"{str(path)!r} is a folder, not a GGUF file") from None
    except OSError as exc:
        raise GentoolError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    raise fail("it has no general.architecture")
