"""Tests for lib_train_tools/train/data/folders.py: folder names, captions, image sizes, errors."""

from __future__ import annotations

from PIL import Image
import pytest

from lib_train_tools.train.data.errors import DataError
from lib_train_tools.train.data.folders import parse_folder_name, read_image_size, scan_dataset
from lib_train_tools.train.data.latent_cache import cache_path_for

from .helpers import make_folder, write_caption, write_image


def test_parse_folder_name_keeps_underscores_in_class_tokens(tmp_path):
    assert parse_folder_name(tmp_path / "10_sks dog") == (10, "sks dog")
    assert parse_folder_name(tmp_path / "3_my_char") == (3, "my_char")
    assert parse_folder_name(tmp_path / "5_") == (5, "")


@pytest.mark.parametrize("name", ["mychar", "x_mychar", "10mychar", "-1_a"])
def test_parse_folder_name_rejects_missing_prefix(tmp_path, name):
    with pytest.raises(DataError, match="must be named like `10_mychar`") as info:
        parse_folder_name(tmp_path / name)
    assert name in str(info.value)


def test_parse_folder_name_rejects_zero_repeats(tmp_path):
    with pytest.raises(DataError, match="0 repeats"):
        parse_folder_name(tmp_path / "0_char")


def test_scan_reads_captions_and_falls_back_to_class_tokens(tmp_path):
    folder = tmp_path / "train" / "10_sks dog"
    a = write_image(folder / "a.png", (32, 24))
    write_caption(a, "a photo of sks dog, grass\nsecond line ignored")
    write_image(folder / "b.png", (20, 40))
    c = write_image(folder / "c.jpg", (16, 16))
    write_caption(c, "from caption file", ext=".caption")
    items = scan_dataset(tmp_path / "train")
    assert [i.path.name for i in items] == ["a.png", "b.png", "c.jpg"]
    assert [i.caption for i in items] == ["a photo of sks dog, grass", "sks dog", "from caption file"]
    assert items[1].caption_file is None and items[2].caption_file == c.with_suffix(".caption")
    assert {i.repeats for i in items} == {10} and not any(i.is_reg for i in items)
    assert [i.size for i in items] == [(32, 24), (20, 40), (16, 16)]


def test_first_listed_caption_extension_wins(tmp_path):
    image = write_image(tmp_path / "t" / "2_x" / "a.png", (16, 16))
    write_caption(image, "txt caption", ".txt")
    write_caption(image, "caption caption", ".caption")
    assert scan_dataset(tmp_path / "t")[0].caption == "txt caption"
    assert scan_dataset(tmp_path / "t", caption_extensions=("caption",))[0].caption == "caption caption"


def test_scan_skips_non_images_hidden_and_nested_folders(tmp_path):
    folder = tmp_path / "t" / "1_x"
    image = write_image(folder / "a.png", (16, 16))
    cache_path_for(image).write_bytes(b"not an image")
    (folder / "notes.md").write_text("hi")
    write_image(folder / "nested" / "deep.png", (16, 16))
    write_image(tmp_path / "t" / ".thumbs" / "t.png", (16, 16))
    assert [i.path.name for i in scan_dataset(tmp_path / "t")] == ["a.png"]


def test_reg_folder_items_are_marked(tmp_path):
    make_folder(tmp_path / "train", "4_char", 2)
    make_folder(tmp_path / "reg", "1_person", 3)
    items = scan_dataset(tmp_path / "train", tmp_path / "reg")
    assert [i.is_reg for i in items] == [False, False, True, True, True]
    assert items[-1].caption == "person" and items[-1].repeats == 1


def test_exif_rotation_swaps_reported_size(tmp_path):
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 24), (1, 2, 3)).save(path, exif=exif)
    assert read_image_size(path) == (24, 40)


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "train" / "10_empty").mkdir(parents=True)
    with pytest.raises(DataError, match="no training images found in"):
        scan_dataset(tmp_path / "train")


def test_missing_train_dir_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        scan_dataset(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_bad_folder_name_inside_train_dir(tmp_path):
    make_folder(tmp_path / "train", "mychar", 1)
    with pytest.raises(DataError, match="10_mychar") as info:
        scan_dataset(tmp_path / "train")
    assert "'" + str(tmp_path / "train" / "mychar") + "'" in str(info.value)


def test_images_directly_in_train_dir_are_an_error(tmp_path):
    write_image(tmp_path / "train" / "loose.png", (16, 16))
    with pytest.raises(DataError, match="loose.png.*10_mychar"):
        scan_dataset(tmp_path / "train")


def test_corrupt_image_is_named(tmp_path):
    make_folder(tmp_path / "train", "2_x", 1)
    bad = tmp_path / "train" / "2_x" / "broken.png"
    bad.write_bytes(b"\x89PNG but not really an image")
    with pytest.raises(DataError, match="cannot read image") as info:
        scan_dataset(tmp_path / "train")
    assert str(bad) in str(info.value)


def test_caption_errors_name_the_file(tmp_path):
    image = write_image(tmp_path / "t" / "1_x" / "a.png", (16, 16))
    caption = image.with_suffix(".txt")
    caption.write_bytes(b"\xff\xfe\xfa bad")
    with pytest.raises(DataError, match="not UTF-8") as info:
        scan_dataset(tmp_path / "t")
    assert str(caption) in str(info.value)
    caption.write_text("  \n\n", encoding="utf-8")  # empty: the folder's class tokens, as with no file
    (item,) = scan_dataset(tmp_path / "t")
    assert (item.caption, item.caption_file, item.empty_caption_file) == ("x", caption, True)
