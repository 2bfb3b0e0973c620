import os
import pickle
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lsi_app.data.images import (
    EMPTY_CLASS_REASON,
    HIDDEN_REASON,
    OUTSIDE_CLASS_REASON,
    ImageFiles,
    check_image_file,
    load_image,
    open_image_folder,
    open_manifest,
    to_rgb,
)
from lsi_app.data.samples import ItemError, ItemKind, SkippedItem

RED = (200, 30, 40)
BLUE = (20, 40, 220)


def _save(path: Path, color=RED, size=(8, 6), mode="RGB", **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **options)
    return path


def _header_only_png(path: Path, width: int, height: int) -> Path:
    """Write a PNG whose header claims ``width`` x ``height`` pixels but that has no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def _truncated_jpeg(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _pixel(image: Image.Image, xy=(0, 0)) -> tuple[int, int, int]:
    assert image.mode == "RGB"
    return image.getpixel(xy)


# --- to_rgb -----------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, color, expected",
    [
        ("RGB", (10, 20, 30), (10, 20, 30)),
        ("L", 100, (100, 100, 100)),
        ("1", 1, (255, 255, 255)),
        ("1", 0, (0, 0, 0)),
        ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
        ("RGBA", (255, 0, 0, 0), (255, 255, 255)),
        ("RGBA", (0, 0, 0, 128), (127, 127, 127)),
        ("LA", (50, 255), (50, 50, 50)),
        ("LA", (0, 0), (255, 255, 255)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("CMYK", (255, 0, 0, 0), (0, 255, 255)),
    ],
)
def test_to_rgb_plain_modes(mode, color, expected):
    image = Image.new(mode, (2, 2), color)

    converted = to_rgb(image)

    assert converted.size == (2, 2)
    assert _pixel(converted) == expected


def test_to_rgb_palette_transparency_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([*RED, *BLUE])
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "palette.png", transparency=0)

    with Image.open(tmp_path / "palette.png") as reopened:
        assert reopened.mode == "P"
        converted = to_rgb(reopened)

    assert _pixel(converted, (0, 0)) == (255, 255, 255)
    assert _pixel(converted, (1, 0)) == BLUE


def test_to_rgb_palette_without_transparency():
    image = Image.new("P", (1, 1))
    image.putpalette([*BLUE])

    assert _pixel(to_rgb(image)) == BLUE


def test_to_rgb_16bit_uses_actual_range(tmp_path):
    values = np.array([[1000, 2000, 3000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")

    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "I;16"
        converted = to_rgb(image)

    assert [_pixel(converted, (x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_to_rgb_32bit_and_float_ranges():
    integers = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))
    floats = Image.fromarray(np.array([[np.nan, 0.5, 1.5, np.inf]], dtype=np.float32))
    constant = Image.fromarray(np.full((2, 2), 4000, dtype=np.uint16))

    assert integers.mode == "I"
    assert [_pixel(to_rgb(integers), (x, 0)) for x in range(2)] == [(0, 0, 0), (255, 255, 255)]
    assert floats.mode == "F"
    assert [_pixel(to_rgb(floats), (x, 0))[0] for x in range(4)] == [0, 0, 255, 255]
    assert _pixel(to_rgb(constant)) == (0, 0, 0)


def test_to_rgb_returns_rgb_unchanged():
    image = Image.new("RGB", (3, 3), RED)

    assert to_rgb(image) is image


# --- check_image_file and load_image ----------------------------------------


def test_check_image_file_reasons(tmp_path):
    good = _save(tmp_path / "good.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a JPEG")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    bare = tmp_path / "README"
    bare.write_text("hello")

    assert check_image_file(good) is None
    assert check_image_file(empty) == "empty file (0 bytes)"
    assert check_image_file(text) == "not an image file (extension .txt)"
    assert check_image_file(bare) == "not an image file (no extension)"
    assert check_image_file(fake).startswith("not a readable image: cannot identify image file")
    assert check_image_file(tmp_path / "absent.png") == "file not found"


def test_check_image_file_upper_case_suffix(tmp_path):
    assert check_image_file(_save(tmp_path / "PHOTO.JPG")) is None


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_check_image_file_pixel_limit(tmp_path):
    small = _save(tmp_path / "small.png", size=(20, 10))
    huge = _header_only_png(tmp_path / "huge.png", 12000, 12000)

    assert check_image_file(small, max_pixels=200) is None
    assert check_image_file(small, max_pixels=199) == "image too large: 20x10 pixels (0.0 megapixels, limit 0.0)"
    assert check_image_file(huge) == "image too large: 12000x12000 pixels (144.0 megapixels, limit 100.0)"


def test_check_image_file_decompression_bomb(tmp_path):
    # 400 megapixels exceed twice PIL's own limit, so Image.open itself raises.
    bomb = _header_only_png(tmp_path / "bomb.png", 20000, 20000)

    reason = check_image_file(bomb, max_pixels=10**12)

    assert reason.startswith("image too large: ")
    assert "400000000 pixels" in reason


def test_truncated_jpeg_fails_on_load(tmp_path):
    truncated = _truncated_jpeg(tmp_path / "cut.jpg")

    assert check_image_file(truncated) is None
    with pytest.raises(ItemError, match=r"^truncated or corrupt image: .*truncated"):
        load_image(truncated)
    with pytest.raises(ItemError, match="truncated"):
        ImageFiles((str(truncated),)).thumbnail(0)


def test_load_image_errors_are_item_errors(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"garbage bytes")

    with pytest.raises(ItemError, match="not a readable image"):
        load_image(fake)
    with pytest.raises(ItemError, match="^file not found$"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(ItemError, match=r"image too large: 8x6 pixels"):
        load_image(_save(tmp_path / "small.png"), max_pixels=10)


def test_load_image_converts_to_rgb(tmp_path):
    gray = _save(tmp_path / "gray.png", color=77, mode="L")

    image = load_image(gray)

    assert image.mode == "RGB"
    assert image.size == (8, 6)
    assert _pixel(image) == (77, 77, 77)


def test_load_image_first_gif_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), RED), Image.new("RGB", (4, 4), BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)

    pixel = _pixel(load_image(tmp_path / "anim.gif"))

    assert np.abs(np.subtract(pixel, RED)).max() <= 8


# --- ImageFiles -------------------------------------------------------------


def test_image_files_reader(tmp_path):
    paths = [str(_save(tmp_path / f"{i}.png", color=(i * 40, 0, 0))) for i in range(3)]
    reader = ImageFiles(paths, max_pixels=1000)

    restored = pickle.loads(pickle.dumps(reader))
    part = reader.subset(np.array([2, 0]))

    assert reader.kind is ItemKind.IMAGE
    assert reader.paths == tuple(paths)
    assert restored == reader
    assert len(restored) == 3
    assert part.paths == (paths[2], paths[0])
    assert part.max_pixels == 1000
    assert _pixel(part.load(0)) == (80, 0, 0)


def test_thumbnail_small_image_not_enlarged(tmp_path):
    reader = ImageFiles((str(_save(tmp_path / "small.png", size=(10, 5))),))

    thumbnail = reader.thumbnail(0)

    assert thumbnail.shape == (5, 10, 3)
    assert thumbnail.dtype == np.uint8


def test_thumbnail_of_large_jpeg(tmp_path):
    big = _save(tmp_path / "big.jpg", size=(3000, 2000), quality=90)
    transparent = _save(tmp_path / "alpha.png", color=(0, 0, 0, 0), size=(300, 100), mode="RGBA")
    reader = ImageFiles((str(big), str(transparent)))

    thumbnail = reader.thumbnail(0)
    alpha_thumbnail = reader.thumbnail(1, size=30)

    assert thumbnail.shape == (43, 64, 3)
    assert np.abs(thumbnail.astype(int) - RED).max() <= 6
    assert alpha_thumbnail.shape == (10, 30, 3)
    assert (alpha_thumbnail == 255).all()


def test_thumbnail_converts_deep_and_palette(tmp_path):
    Image.fromarray(np.tile(np.arange(0, 4000, 40, dtype=np.uint16), (50, 1))).save(tmp_path / "deep.png")
    palette = Image.new("P", (200, 100))
    palette.putpalette([*RED, *BLUE])
    palette.save(tmp_path / "palette.png", transparency=1)
    reader = ImageFiles((str(tmp_path / "deep.png"), str(tmp_path / "palette.png")))

    deep = reader.thumbnail(0, size=20)
    flat = reader.thumbnail(1, size=20)

    assert deep.shape == (10, 20, 3)
    assert deep[:, 0].max() < 30
    assert deep[:, -1].min() > 225
    assert flat.shape == (10, 20, 3)
    assert (flat == RED).all()


# Measures the peak resident memory of a fresh process around one thumbnail.
_PEAK_MEMORY_SCRIPT = """
import resource, sys
from lsi_app.data.images import ImageFiles
reader = ImageFiles((sys.argv[1],))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader.thumbnail(0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_thumbnail_memory_below_full_decode(tmp_path):
    # tracemalloc cannot see PIL's C allocations, so measure the process's peak RSS instead.
    width, height = 4000, 3000
    big = _save(tmp_path / "big.jpg", size=(width, height))
    full_decode_kib = width * height * 3 // 1024

    output = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY_SCRIPT, str(big)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    )
    growth_kib = int(output.stdout.strip())

    assert growth_kib < full_decode_kib / 4, f"thumbnail raised peak memory by {growth_kib} KiB"


# --- image folders ----------------------------------------------------------


def _skipped_by_path(dataset, root: Path) -> dict[str, str]:
    return {Path(item.item).relative_to(root).as_posix(): item.reason for item in dataset.skipped}


def test_open_image_folder_classes_and_skips(tmp_path):
    root = tmp_path / "data"
    _save(root / "dog" / "b.png", BLUE)
    _save(root / "dog" / "nested" / "a.jpg", BLUE)
    _save(root / "cat" / "c.png")
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images here")
    _save(root / ".ipynb_checkpoints" / "x.png")
    _save(root / "cat" / ".ipynb_checkpoints" / "c-checkpoint.png")
    _save(root / "__MACOSX" / "cat" / "._c.png")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    _save(root / "stray.png")
    (root / "cat" / "zero.png").write_bytes(b"")

    dataset = open_image_folder(root)

    assert dataset.class_names == ("cat", "dog", "empty")
    assert dataset.sample_ids.tolist() == ["cat/c.png", "dog/b.png", "dog/nested/a.jpg"]
    assert dataset.labels.tolist() == [0, 1, 1]
    assert dataset.paths.tolist() == [str(root / "cat/c.png"), str(root / "dog/b.png"), str(root / "dog/nested/a.jpg")]
    assert dataset.name == str(root)
    assert dataset.columns == {}
    assert _skipped_by_path(dataset, root) == {
        ".DS_Store": HIDDEN_REASON,
        ".ipynb_checkpoints": HIDDEN_REASON,
        "__MACOSX": HIDDEN_REASON,
        "cat/.DS_Store": HIDDEN_REASON,
        "cat/.ipynb_checkpoints": HIDDEN_REASON,
        "stray.png": OUTSIDE_CLASS_REASON,
        "cat/zero.png": "empty file (0 bytes)",
        "empty/readme.txt": "not an image file (extension .txt)",
        "empty": EMPTY_CLASS_REASON,
    }
    assert len(dataset.skipped) == 9
    assert _pixel(dataset.reader.load(1)) == BLUE


def test_open_image_folder_flat_is_unlabelled(tmp_path):
    _save(tmp_path / "b.png")
    _save(tmp_path / "a.png")
    (tmp_path / ".hidden.png").write_bytes(b"")

    dataset = open_image_folder(tmp_path)

    assert dataset.labels is None
    assert dataset.class_names == ()
    assert dataset.sample_ids.tolist() == ["a.png", "b.png"]
    assert dataset.skipped == (SkippedItem(str(tmp_path / ".hidden.png"), HIDDEN_REASON),)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_open_image_folder_pixel_limit(tmp_path):
    _save(tmp_path / "a" / "small.png", size=(4, 4))
    _save(tmp_path / "a" / "large.png", size=(40, 30))

    dataset = open_image_folder(tmp_path, max_pixels=1000)

    assert dataset.sample_ids.tolist() == ["a/small.png"]
    assert dataset.skipped == (
        SkippedItem(str(tmp_path / "a" / "large.png"), "image too large: 40x30 pixels (0.0 megapixels, limit 0.0)"),
    )
    assert dataset.reader.max_pixels == 1000


@pytest.mark.skipif(sys.platform == "win32", reason="creating symbolic links needs privileges on Windows")
def test_open_image_folder_symlink_loop(tmp_path):
    _save(tmp_path / "cat" / "a.png")
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat", target_is_directory=True)
    (tmp_path / "cat" / "dangling.png").symlink_to(tmp_path / "absent.png")

    dataset = open_image_folder(tmp_path)

    assert dataset.sample_ids.tolist() == ["cat/a.png"]
    assert _skipped_by_path(dataset, tmp_path) == {
        "cat/loop": "folder already scanned through a symbolic link, ignored",
        "cat/dangling.png": "not a regular file (broken link, device or socket), ignored",
    }


def test_open_image_folder_non_ascii_names(tmp_path):
    names = ["café/ünï.png", "猫/写真.jpg", "café/e\u0301.png"]
    for name in names:
        _save(tmp_path / name)

    dataset = open_image_folder(tmp_path)

    assert dataset.class_names == ("café", "猫")
    assert sorted(dataset.sample_ids.tolist()) == sorted(names)
    # "e" + combining accent stays decomposed, as on disk.
    assert "café/e\u0301.png" in dataset.sample_ids.tolist()
    assert unicodedata.normalize("NFC", "café/e\u0301.png") not in dataset.sample_ids.tolist()
    assert dataset.paths.tolist() == [str(tmp_path / name) for name in dataset.sample_ids]
    for index in range(len(dataset)):
        assert dataset.reader.load(index).size == (8, 6)


def test_open_image_folder_progress(tmp_path):
    for i in range(5):
        _save(tmp_path / "c" / f"{i}.png")
    reports = []

    open_image_folder(tmp_path, progress=lambda fraction, message: reports.append((fraction, message)))

    assert reports[-1] == (1.0, "Scanning images: 5/5")
    assert (0.0, "Scanning images: 0/5") in reports
    assert [fraction for fraction, _ in reports] == sorted(fraction for fraction, _ in reports)


def test_open_image_folder_errors(tmp_path):
    not_folder = _save(tmp_path / "file.png")
    unusable = tmp_path / "unusable"
    (unusable / "cls").mkdir(parents=True)
    (unusable / "cls" / "a.txt").write_text("x")
    (unusable / "cls" / "b.png").write_bytes(b"")

    with pytest.raises(ValueError, match=r"image folder .*missing not found"):
        open_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"file.png is not a folder"):
        open_image_folder(not_folder)
    with pytest.raises(ValueError, match=r"unusable contains no usable image \(2 items skipped, first: .*a.txt: not an image"):
        open_image_folder(unusable)


def test_open_image_folder_fingerprint(tmp_path):
    image = _save(tmp_path / "c" / "a.png")
    _save(tmp_path / "c" / "b.png")

    first = open_image_folder(tmp_path).fingerprint
    again = open_image_folder(tmp_path).fingerprint
    _save(image, BLUE, size=(9, 6))
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    changed = open_image_folder(tmp_path).fingerprint

    assert first == again
    assert changed != first


# --- manifests --------------------------------------------------------------


def _write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_open_manifest_csv(tmp_path):
    _save(tmp_path / "img" / "a.png")
    _save(tmp_path / "img" / "b.png", BLUE)
    _save(tmp_path / "img" / "ü.png")
    outside = _save(tmp_path / "elsewhere" / "c.png")
    manifest = _write_csv(
        tmp_path / "lists" / "manifest.csv",
        " Path ,LABEL,Split,note\n"
        "../img/a.png,dog,train,x\n"
        "../img/b.png,cat,test,\n"
        f"{outside},dog,train,\n"
        "../img/missing.png,cat,train,\n"
        "../img/./a.png,cat,train,\n"
        ",cat,train,\n"
        "..\\img\\ü.png,cat,val,\n",
        bom=True,
    )

    dataset = open_manifest(manifest)

    assert dataset.sample_ids.tolist() == ["../img/a.png", "../img/b.png", str(outside), "../img/ü.png"]
    assert dataset.paths.tolist() == [
        str(tmp_path / "img" / "a.png"), str(tmp_path / "img" / "b.png"), str(outside), str(tmp_path / "img" / "ü.png"),
    ]
    assert dataset.class_names == ("cat", "dog")
    assert dataset.labels.tolist() == [1, 0, 1, 0]
    assert dataset.columns["split"].tolist() == ["train", "test", "train", "val"]
    assert dataset.skipped == (
        SkippedItem(str(tmp_path / "img" / "missing.png"), "file not found (row 4)"),
        SkippedItem(str(tmp_path / "img" / "a.png"), "duplicate of row 1"),
        SkippedItem("row 6", "empty path (row 6)"),
    )
    assert dataset.name == str(manifest)
    assert _pixel(dataset.reader.load(1)) == BLUE


def test_open_manifest_integer_labels_sort_numerically(tmp_path):
    for name in "abc":
        _save(tmp_path / f"{name}.png")
    manifest = _write_csv(tmp_path / "m.csv", "path,label\na.png,10\nb.png,2\nc.png,2\n")
    reports = []

    dataset = open_manifest(manifest, progress=lambda fraction, message: reports.append((fraction, message)))

    assert reports[-1] == (1.0, "Scanning images: 3/3")
    assert dataset.class_names == ("2", "10")
    assert dataset.labels.tolist() == [1, 0, 0]
    assert "split" not in dataset.columns


def test_open_manifest_partial_and_empty_labels(tmp_path):
    for name in "abc":
        _save(tmp_path / f"{name}.png")
    partial = _write_csv(tmp_path / "partial.csv", "path,label\na.png,cat\nb.png,\nc.png,dog\n")
    empty = _write_csv(tmp_path / "empty.csv", "path,label\na.png,\nb.png,\n")
    no_column = _write_csv(tmp_path / "none.csv", "path\na.png\n")

    labelled = open_manifest(partial)
    unlabelled = open_manifest(empty)
    without = open_manifest(no_column)

    assert labelled.sample_ids.tolist() == ["a.png", "c.png"]
    assert labelled.skipped == (SkippedItem(str(tmp_path / "b.png"), "missing label (row 2)"),)
    assert unlabelled.labels is None
    assert unlabelled.class_names == ()
    assert len(unlabelled) == 2
    assert without.labels is None


def test_open_manifest_image_check_names_row(tmp_path):
    _save(tmp_path / "a.png")
    (tmp_path / "zero.png").write_bytes(b"")
    manifest = _write_csv(tmp_path / "m.csv", "path\na.png\nzero.png\n")

    dataset = open_manifest(manifest)

    assert dataset.skipped == (SkippedItem(str(tmp_path / "zero.png"), "empty file (0 bytes) (row 2)"),)


def test_open_manifest_parquet(tmp_path):
    _save(tmp_path / "a.png")
    _save(tmp_path / "sub" / "b.png", BLUE)
    _save(tmp_path / "c.png")
    manifest = tmp_path / "m.parquet"
    table = pd.DataFrame({
        "path": ["a.png", "sub/b.png", "c.png"],
        "label": pd.array([10, 2, None], dtype="Int64"),
        "split": ["train", None, "test"],
    })
    table.to_parquet(manifest)

    dataset = open_manifest(manifest)

    assert dataset.sample_ids.tolist() == ["a.png", "sub/b.png"]
    assert dataset.class_names == ("2", "10")
    assert dataset.labels.tolist() == [1, 0]
    assert dataset.columns["split"].tolist() == ["train", ""]
    assert dataset.skipped == (SkippedItem(str(tmp_path / "c.png"), "missing label (row 3)"),)
    assert _pixel(dataset.reader.load(1)) == BLUE


def test_open_manifest_errors(tmp_path):
    _save(tmp_path / "a.png")
    no_path = _write_csv(tmp_path / "nopath.csv", "file,label\na.png,cat\n")
    nothing = _write_csv(tmp_path / "nothing.csv", "path\nmissing.png\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("path\ncaf\xe9.png\n".encode("latin-1"))
    text = tmp_path / "m.txt"
    text.write_text("path\na.png\n")

    with pytest.raises(ValueError, match=r"nopath.csv has no 'path' column \(its columns are \['file', 'label'\]\)"):
        open_manifest(no_path)
    with pytest.raises(ValueError, match=r"nothing.csv contains no usable image \(1 items skipped, first: .*file not found"):
        open_manifest(nothing)
    with pytest.raises(ValueError, match=r"latin1.csv is not valid UTF-8 .*save it as UTF-8"):
        open_manifest(latin1)
    with pytest.raises(ValueError, match=r"m.txt has an unsupported type .txt"):
        open_manifest(text)
    with pytest.raises(ValueError, match=r"absent.csv not found"):
        open_manifest(tmp_path / "absent.csv")


def test_open_manifest_fingerprint(tmp_path):
    image = _save(tmp_path / "a.png")
    manifest = _write_csv(tmp_path / "m.csv", "path,label\na.png,cat\n")
    relabelled = _write_csv(tmp_path / "r.csv", "path,label\na.png,dog\n")

    first = open_manifest(manifest).fingerprint
    again = open_manifest(manifest).fingerprint
    other_label = open_manifest(relabelled).fingerprint
    _save(image, BLUE)
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    changed = open_manifest(manifest).fingerprint

    assert first == again
    assert other_label != first
    assert changed != first
