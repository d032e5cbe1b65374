"""3,926 colour emoji as a picture set: Noto Color Emoji's bitmaps, labelled with their Unicode group.

Nothing is downloaded: the pictures are the PNG bitmaps (136x128) in the ``CBDT`` table of Debian's
``fonts-noto-color-emoji``, read with fontTools, and the labels come from Unicode's ``emoji-test.txt``
in Debian's ``unicode-data`` (group, subgroup and name of every emoji sequence). A bitmap's emoji
sequence is its glyph's code point (the font's ``cmap``) or the components of the ligature that
makes it (the font's ``GSUB``: flags, skin tones, families, keycaps; some of its ligatures list
their parts in another order, so a ligature is matched to the one sequence of the same parts). Bitmaps that are parts of sequences, or sequences Unicode does not
recommend (subdivision flags beyond England, Scotland and Wales), are left out.

Each picture is laid on white (the bitmaps are transparent around the emoji), made square and
scaled down with a Lanczos filter once, so every size starts from the font's own pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gentoolkit.errors import DataError

if TYPE_CHECKING:
    from gentoolkit.samples.data import Samples

FONT_PLACES = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "/usr/share/fonts/noto/NotoColorEmoji.ttf",
               "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf", "/usr/local/share/fonts/NotoColorEmoji.ttf")
EMOJI_TEST_PLACES = ("/usr/share/unicode/emoji/emoji-test.txt", "/usr/share/unicode-data/emoji/emoji-test.txt")
VS16 = 0xFE0F  # the emoji presentation selector: emoji-test.txt writes it, the font's ligatures mostly do not


def _find(env: str, places: tuple[str, ...], what: str, package: str) -> Path:
    given = os.environ.get(env)
    for p in ([given] if given else []) + list(places):
        if p and Path(p).is_file():
            return Path(p)
    raise DataError(f"{what} is not on this machine; install it (Debian/Ubuntu: sudo apt install {package}) or "
                    f"name the file with {env}")


def font_path() -> Path:
    return _find("GENTOOLKIT_EMOJI_FONT", FONT_PLACES, "Noto Color Emoji (NotoColorEmoji.ttf)",
                 "fonts-noto-color-emoji")


def emoji_test_path() -> Path:
    return _find("GENTOOLKIT_EMOJI_TEST", EMOJI_TEST_PLACES, "Unicode's emoji-test.txt", "unicode-data")


@dataclass(frozen=True)
class Emoji:
    sequence: tuple[int, ...]  # code points, without U+FE0F
    group: str
    subgroup: str
    name: str


def read_emoji_test(path: Path) -> dict[tuple[int, ...], Emoji]:
    """Every sequence of ``emoji-test.txt`` (its fully-qualified and component ones), U+FE0F removed."""
    out: dict[tuple[int, ...], Emoji] = {}
    group = subgroup = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            codes, _, rest = line.partition(";")
            status, _, comment = rest.partition("#")
            if status.strip() not in ("fully-qualified", "component"):
                continue
            seq = tuple(int(c, 16) for c in codes.split() if int(c, 16) != VS16)
            name = comment.strip().split(" ", 2)[-1]  # "😀 E1.0 grinning face"
            out.setdefault(seq, Emoji(seq, group, subgroup, name))
    return out


def glyph_sequences(font) -> dict[str, tuple[int, ...]]:
    """``{glyph name: the code points it draws}`` from the font's cmap and its ligatures."""
    by_glyph: dict[str, tuple[int, ...]] = {}
    for cp, glyph in font.getBestCmap().items():
        if cp != VS16:
            by_glyph.setdefault(glyph, (cp,))
    single = dict(by_glyph)
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for sub in lookup.SubTable:
            sub = getattr(sub, "ExtSubTable", sub)
            for first, ligatures in (getattr(sub, "ligatures", None) or {}).items():
                for lig in ligatures:
                    parts = [first, *lig.Component]
                    if all(p in single for p in parts):
                        seq = tuple(c for p in parts for c in single[p])
                        by_glyph.setdefault(lig.LigGlyph, seq)
    return by_glyph


def _square_on_white(png: bytes, size: int):
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGBA")
        side = max(im.size)
        canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
        canvas.alpha_composite(im, ((side - im.width) // 2, (side - im.height) // 2))
        return canvas.convert("RGB").resize((size, size), Image.LANCZOS)


def emoji_pictures(size: int = 32) -> tuple[list, list[Emoji]]:
    """``(PIL images, their emoji)``: every bitmap of the font whose sequence ``emoji-test.txt`` names, in
    the font's order, ``size`` pixels square on white."""
    from fontTools.ttLib import TTFont

    if size < 8 or size > 128:
        raise DataError(f"emoji pictures are 8 to 128 pixels square, not {size}")
    known = read_emoji_test(emoji_test_path())
    try:
        font = TTFont(str(font_path()))
        strikes = font["CBDT"].strikeData
    except (OSError, KeyError, Exception) as exc:  # noqa: BLE001 - fontTools raises its own for a bad file
        raise DataError(f"cannot read the emoji bitmaps of {font_path()}: {exc}") from None
    sequences = glyph_sequences(font)
    bags: dict[tuple[int, ...], list[Emoji]] = {}
    for e in known.values():
        bags.setdefault(tuple(sorted(e.sequence)), []).append(e)
    images, emoji = [], []
    for glyph, bitmap in strikes[0].items():
        seq = sequences.get(glyph, ())
        info = known.get(seq)
        if info is None:  # the font's ligatures list some parts in another order: the one sequence of those parts
            same = bags.get(tuple(sorted(seq)), [])
            info = same[0] if len(same) == 1 else known.get(seq[::-1])
        data = getattr(bitmap, "imageData", None)
        if info is None or not data:
            continue  # a part of a sequence, not an emoji of its own (a lone skin tone, a tag letter)
        images.append(_square_on_white(data, size))
        emoji.append(info)
    if not images:
        raise DataError(f"{font_path()} holds no emoji bitmaps that emoji-test.txt names")
    return images, emoji


def load(n_samples: int | None = None, size: int = 32, **_) -> Samples:
    """The ``emoji`` dataset: ``(N, 3, size, size)`` in [0, 1], labels the index of the Unicode group
    (``extra["classes"]``), each picture's name and code points in ``extra``."""
    from gentoolkit.samples.data import Samples

    images, emoji = emoji_pictures(size)
    classes = sorted({e.group for e in emoji})
    x = np.stack([np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0 for im in images])
    labels = np.array([classes.index(e.group) for e in emoji], dtype=np.int64)
    return Samples(x, "images", "emoji", low=0.0, high=1.0, labels=labels,
                   extra={"classes": classes, "names": [e.name for e in emoji],
                          "sequences": ["-".join(f"{c:04X}" for c in e.sequence) for e in emoji]})
