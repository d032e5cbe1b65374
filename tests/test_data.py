"""Picture sets: ``gentool data`` (the emoji of Noto Color Emoji, any registered image dataset, any folder)
and the rules of an image folder (transparency on white, centre crops, grayscale, labels, clear errors)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from PIL import Image

from gentoolkit.errors import DataError
from gentoolkit.samples.data import image_folder, load

from .conftest import one_error_line, run_cli


def _emoji_here() -> bool:
    from gentoolkit.samples.emoji import emoji_test_path, font_path

    try:
        font_path(), emoji_test_path()
    except DataError:
        if os.environ.get("CI"):
            raise  # .ci/run installs fonts-noto-color-emoji and unicode-data
        return False
    return True


@pytest.fixture(scope="module")
def emoji_folder(tmp_path_factory):
    if not _emoji_here():
        pytest.skip("fonts-noto-color-emoji or unicode-data is not installed (CI installs both)")
    out = tmp_path_factory.mktemp("emoji") / "set"
    r = run_cli("data", "emoji", "-o", str(out), "--size", "32")
    assert r.exit_code == 0, r.output
    return out


def test_the_emoji_set_is_the_fonts_bitmaps_labelled_with_their_group(emoji_folder):
    with open(emoji_folder / "labels.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pictures = sorted(emoji_folder.glob("*.png"))
    assert len(pictures) == len(rows) > 3000
    groups = {r["label"] for r in rows}
    assert {"Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
            "Activities", "Objects", "Symbols", "Flags"} <= groups
    grin = next(r for r in rows if r["code_points"] == "1F600")
    assert grin["name"] == "grinning face" and grin["label"] == "Smileys & Emotion"
    with Image.open(emoji_folder / grin["file"]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
        a = np.asarray(im, dtype=np.int64)
    assert (a[0, 0] == 255).all() and (a[-1, -1] == 255).all()  # laid on white
    r, g, b = a[16, 16]
    assert r > 200 and g > 150 and b < 120, a[16, 16]  # the grinning face is yellow
    # the folder reads back with its labels, and a second sample of the same font gives the same pixels
    s = load(str(emoji_folder), image_size=32)
    assert s.x.shape == (len(rows), 3, 32, 32) and s.extra["classes"] == sorted(groups)
    again = load("emoji", image_size=32)
    assert np.abs(again.x - s.x).max() <= 1 / 255 + 1e-6


def test_gentool_data_never_writes_into_a_folder_that_exists(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    line = one_error_line(run_cli("data", "digits", "-o", str(out)))
    assert "exists" in line and (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


def test_digits_round_trip_through_a_folder_with_their_labels(tmp_path):
    r = run_cli("data", "digits", "-o", str(tmp_path / "digits"), "--size", "16")
    assert r.exit_code == 0, r.output
    s = load(str(tmp_path / "digits"), image_size=16)
    d = load("digits")
    assert s.x.shape == (1797, 1, 16, 16)  # grayscale stays one channel
    assert [int(c) for c in s.extra["classes"]] == list(range(10))
    assert (np.array([int(s.extra["classes"][k]) for k in s.labels]) == d.labels).all()


def _save(folder, name, im):
    folder.mkdir(parents=True, exist_ok=True)
    im.save(folder / name)


def test_an_image_folder_lays_transparency_on_white_and_crops_to_a_square(tmp_path):
    folder = tmp_path / "pics"
    for i in range(16):
        im = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # transparent, wider than high
        im.paste((255, 0, 0, 255), (15, 5, 25, 15))  # a red square in the middle
        _save(folder, f"{i:02d}.png", im)
    s = image_folder(folder, size=16)
    assert s.x.shape == (16, 3, 16, 16) and s.labels is None
    a = s.x[0]
    assert np.allclose(a[:, 0, 0], 1.0)  # the transparent corner is white, not black
    assert a[0, 8, 8] > 0.9 and a[1, 8, 8] < 0.1  # the red square, in the middle of the centre crop


@pytest.mark.parametrize("case, part", [
    ("too few", "at least 16"),
    ("tiny", "pictures need at least 8 on a side"),
    ("unreadable", "cannot read image"),
    ("mixed", "mixes grayscale"),
    ("labels", "has no label for"),
])
def test_an_image_folder_that_cannot_be_learned_from_is_one_clear_error(tmp_path, case, part):
    folder = tmp_path / case
    for i in range(4 if case == "too few" else 16):
        mode = "L" if case == "mixed" and i % 2 else "RGB"
        _save(folder, f"{i:02d}.png", Image.new(mode, (4, 4) if case == "tiny" and i == 3 else (12, 12)))
    if case == "unreadable":
        (folder / "07.png").write_bytes(b"not a picture")
    if case == "labels":
        (folder / "labels.csv").write_text("file,label\n00.png,a\n")
    with pytest.raises(DataError, match=part):
        image_folder(folder, size=16)
    line = one_error_line(run_cli("data", str(folder), "-o", str(tmp_path / "out")))
    assert part in line and not (tmp_path / "out").exists()


def test_mixed_pictures_train_in_the_channels_asked_for(tmp_path):
    folder = tmp_path / "mixed"
    for i in range(16):
        _save(folder, f"{i:02d}.png", Image.new("L" if i % 2 else "RGB", (12, 12), 128))
    assert image_folder(folder, size=8, channels=3).x.shape == (16, 3, 8, 8)
    assert image_folder(folder, size=8, channels=1).x.shape == (16, 1, 8, 8)
