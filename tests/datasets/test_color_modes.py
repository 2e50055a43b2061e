"""Every Pillow mode becomes correct 8-bit RGB, the same way in preprocessing and in the trainer."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.train.color_modes import to_rgb
from lib_train_tools.datasets.image_ops import load_upright
from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.datasets.upload import upload
from lib_train_tools.train.data.images import load_rgb

WHITE = (255, 255, 255)


def pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    assert image.mode == "RGB"
    return [tuple(int(v) for v in p) for p in np.asarray(image).reshape(-1, 3)]


def grey(values) -> list[tuple[int, int, int]]:
    return [(v, v, v) for v in values]


def row(mode: str, values) -> Image.Image:
    image = Image.new(mode, (len(values), 1))
    image.putdata(list(values))
    return image


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    image = Image.fromarray(np.array([[0, 257 * 100, 65535, 1000, 128]], dtype=np.uint16))
    assert image.mode == "I;16"
    assert pixels(to_rgb(image)) == grey([0, 100, 255, 4, 0])


def test_sixteen_bit_big_endian_greyscale():
    image = Image.frombytes("I;16B", (3, 1), struct.pack(">3H", 0, 257 * 200, 65535))
    assert pixels(to_rgb(image)) == grey([0, 200, 255])


def test_thirty_two_bit_integer_holds_sixteen_bit_values_or_is_stretched():
    assert pixels(to_rgb(row("I", [0, 257 * 100, 65535]))) == grey([0, 100, 255])
    assert pixels(to_rgb(row("I", [-100, 0, 100]))) == grey([0, 128, 255])
    assert pixels(to_rgb(row("I", [0, 35000, 70000]))) == grey([0, 128, 255])


def test_float_images_by_range():
    assert pixels(to_rgb(row("F", [0.0, 0.5, 1.0]))) == grey([0, 128, 255])
    assert pixels(to_rgb(row("F", [0.0, 100.4, 255.0]))) == grey([0, 100, 255])
    assert pixels(to_rgb(row("F", [-1.0, 0.0, 1.0, 3.0]))) == grey([0, 64, 128, 255])
    assert pixels(to_rgb(row("F", [float("nan"), 0.5, 1.0]))) == grey([0, 128, 255])


def test_bilevel_greyscale_and_palette():
    assert pixels(to_rgb(row("1", [0, 1]))) == grey([0, 255])
    assert pixels(to_rgb(row("L", [0, 100, 255]))) == grey([0, 100, 255])
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putdata([0, 1])
    assert pixels(to_rgb(palette)) == [(255, 0, 0), (0, 0, 255)]
    palette.info["transparency"] = 1
    assert pixels(to_rgb(palette, (0, 255, 0))) == [(255, 0, 0), (0, 255, 0)]


def test_alpha_is_composited_onto_the_background():
    rgba = row("RGBA", [(10, 20, 30, 255), (10, 20, 30, 0), (0, 0, 0, 128)])
    assert pixels(to_rgb(rgba)) == [(10, 20, 30), WHITE, (127, 127, 127)]
    assert pixels(to_rgb(rgba, (0, 0, 0)))[1] == (0, 0, 0)
    assert pixels(to_rgb(row("LA", [(100, 255), (100, 0)]))) == [(100, 100, 100), WHITE]
    assert pixels(to_rgb(row("LA", [(100, 255)]).convert("La"))) == [(100, 100, 100)]
    assert pixels(to_rgb(row("PA", [(0, 0)]), (1, 2, 3))) == [(1, 2, 3)]
    keyed = row("RGB", [(1, 2, 3), (4, 5, 6)])
    keyed.info["transparency"] = (1, 2, 3)
    assert pixels(to_rgb(keyed, (9, 9, 9))) == [(9, 9, 9), (4, 5, 6)]


def test_other_colour_spaces():
    assert pixels(to_rgb(row("RGB", [(1, 2, 3)]))) == [(1, 2, 3)]
    assert pixels(to_rgb(row("CMYK", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)]))) == [
        WHITE, (0, 255, 255), (0, 0, 0)]
    assert pixels(to_rgb(row("YCbCr", [(128, 128, 128), (255, 128, 128)]))) == [(128, 128, 128), WHITE]
    assert pixels(to_rgb(row("HSV", [(0, 255, 255)]))) == [(255, 0, 0)]
    assert pixels(to_rgb(row("RGBX", [(7, 8, 9, 0)]))) == [(7, 8, 9)]
    red = pixels(to_rgb(row("LAB", [(136, 208, 195)])))[0]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def _png16_rgb(path: Path, values: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = values.shape
    raw = b"".join(b"\x00" + line.astype(">u2").tobytes() for line in values)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def _files(tmp_path: Path) -> dict[str, tuple[Path, list[tuple[int, int, int]]]]:
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 257 * 60, 65535]], dtype=np.uint16)).save(grey16)
    rgb16 = _png16_rgb(tmp_path / "rgb16.png", np.array([[[257 * 10, 257 * 200, 65535], [0, 257, 257 * 128]]],
                                                         dtype=np.uint16))
    rgba = tmp_path / "rgba.png"
    row("RGBA", [(10, 20, 30, 255), (10, 20, 30, 0)]).save(rgba)
    cmyk = tmp_path / "cmyk.tif"
    row("CMYK", [(255, 0, 0, 0), (0, 0, 0, 0)]).save(cmyk)
    return {
        "16-bit grey PNG": (grey16, grey([0, 60, 255])),
        "16-bit RGB PNG": (rgb16, [(10, 200, 255), (0, 1, 128)]),
        "RGBA PNG": (rgba, [(10, 20, 30), WHITE]),
        "CMYK TIFF": (cmyk, [(0, 255, 255), WHITE]),
    }


@pytest.mark.parametrize("kind", ["16-bit grey PNG", "16-bit RGB PNG", "RGBA PNG", "CMYK TIFF"])
def test_preprocessing_and_trainer_read_files_the_same_way(tmp_path, kind):
    path, expected = _files(tmp_path)[kind]
    assert pixels(load_upright(path, WHITE)) == expected
    assert pixels(load_rgb(path)) == expected


def test_a_sixteen_bit_upload_preprocesses_to_its_picture_not_to_white(version, tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    source = tmp_path / "scan.png"
    Image.fromarray(ramp).save(source)
    assert Image.open(source).mode == "I;16"
    assert upload(version, [source]).added == ("scan.png",)
    result = preprocess(version, PreprocessOptions(width=64, height=64))
    out = np.asarray(Image.open(result.folder / "scan.png").convert("L"), dtype=np.int32)
    assert np.abs(out - np.round(ramp / 257.0)).max() <= 1
