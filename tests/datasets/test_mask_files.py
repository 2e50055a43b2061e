"""Importing loss masks into origin/ (datasets/mask_files.py): names, sizes, no silent overwrite, counts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.datasets.mask_files import import_masks, mask_counts, mask_source, matching_stem
from lib_train_tools.datasets.origin_files import drop_images, list_origin
from lib_train_tools.datasets.upload import upload

from .conftest import noise_image


def _upload_images(version, tmp_path: Path, names: dict[str, Image.Image]) -> None:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    paths = []
    for name, image in names.items():
        image.save(folder / name)
        paths.append(folder / name)
    upload(version, paths)


def _stripes(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """An 8-bit mask with a distinct pattern per seed: random 0, 128 and 255 pixels."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(size[1], size[0]))


def _write(path: Path, values: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values, "L").convert(mode).save(path)
    return path


def _stored(version, stem: str) -> np.ndarray:
    with Image.open(version.origin / f"{stem}.mask.png") as mask:
        assert mask.mode == "L"
        return np.asarray(mask)


def test_mask_names_match_their_image_by_stem() -> None:
    stems = {"cat", "dog", "cat_mask"}
    assert matching_stem("dog.png", stems) == "dog"
    assert matching_stem("dog.mask.png", stems) == "dog"
    assert matching_stem("dog_MASK.webp", stems) == "dog"
    assert matching_stem("dog-mask.jpg", stems) == "dog"
    assert matching_stem("cat_mask.png", stems) == "cat_mask"  # the whole stem first: an image has that name
    assert matching_stem("cat.mask.png", stems) == "cat"
    assert matching_stem("bird.png", stems) is None
    assert matching_stem("dogmask.png", stems) is None  # the tail needs its separator
    assert matching_stem("a:b_mask.png", {"a_b"}) == "a_b"  # cleaned like the upload cleans image names


def test_import_stores_greyscale_masks_beside_their_images(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (48, 32)), "dog.jpg": noise_image(2, (40, 40))})
    cat = _stripes((48, 32), 1)
    colour = np.stack([cat, cat, cat], axis=-1)  # an RGB mask: its luminance counts
    Image.fromarray(colour, "RGB").save(tmp_path / "cat_mask.png")
    dog = _stripes((40, 40), 2)
    archive = tmp_path / "masks.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("masks/dog.png", _png(dog))
        handle.writestr("masks/bird.png", _png(dog))
        handle.writestr("masks/readme.txt", "hello")
    seen = []
    result = import_masks(version, [tmp_path / "cat_mask.png", archive],
                          progress=lambda done, total, name: seen.append((done, total)))
    assert result.added == (("cat_mask.png", "cat.mask.png"), ("masks.zip:masks/dog.png", "dog.mask.png"))
    assert result.unmatched == ("masks.zip:masks/bird.png",)
    assert [r.name for r in result.refused] == ["masks.zip:masks/readme.txt"]
    assert "not a mask image" in result.refused[0].reason
    assert seen[-1] == (4, 4)
    assert np.array_equal(_stored(version, "cat"), cat) and np.array_equal(_stored(version, "dog"), dog)
    assert [item.stem for item in list_origin(version)] == ["cat", "dog"]  # a mask is no image
    assert not [p for p in version.origin.iterdir() if p.name.startswith(".")]  # no temporaries left
    assert mask_counts(version).text() == "2 of 2 images have a mask (0 from alpha)"


def test_transparent_parts_of_a_mask_count_as_black(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (16, 16))})
    rgba = np.full((16, 16, 4), 255, dtype=np.uint8)
    rgba[:, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cat.mask.png")
    import_masks(version, [tmp_path / "cat.mask.png"])
    stored = _stored(version, "cat")
    assert (stored[:, :8] == 0).all() and (stored[:, 8:] == 255).all()


def test_a_smaller_mask_of_the_same_shape_is_resized_bilinearly(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (64, 32))})
    half = np.zeros((16, 32), dtype=np.uint8)
    half[:, 16:] = 255
    result = import_masks(version, [_write(tmp_path / "cat.png", half)])
    assert [(r.name, r.reason) for r in result.resized] == [("cat.png", "32x16 -> 64x32")]
    stored = _stored(version, "cat")
    assert stored.shape == (32, 64)
    assert (stored[:, :30] == 0).all() and (stored[:, 34:] == 255).all()  # far from the edge: unchanged
    assert 0 < stored[0, 31] < 255 or 0 < stored[0, 32] < 255  # the edge: bilinear, not nearest


def test_a_mask_of_another_aspect_ratio_is_refused_with_both_sizes(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (64, 32))})
    result = import_masks(version, [_write(tmp_path / "cat.png", np.zeros((32, 32), dtype=np.uint8))])
    assert result.added == () and len(result.refused) == 1
    assert "32x32" in result.refused[0].reason and "64x32" in result.refused[0].reason
    assert "aspect ratio" in result.refused[0].reason
    assert not (version.origin / "cat.mask.png").exists()


def test_existing_masks_are_replaced_only_when_asked_and_then_set_aside(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (16, 16))})
    first, second = _stripes((16, 16), 1), _stripes((16, 16), 2)
    import_masks(version, [_write(tmp_path / "a" / "cat.png", first)])
    again = import_masks(version, [_write(tmp_path / "b" / "cat.png", first)])
    assert again.added == () and [r.reason for r in again.skipped] == ["the same mask is already there (cat.mask.png)"]
    refused = import_masks(version, [_write(tmp_path / "c" / "cat.png", second)])
    assert refused.added == () and "already has a different mask" in refused.refused[0].reason
    assert np.array_equal(_stored(version, "cat"), first)
    replaced = import_masks(version, [tmp_path / "c" / "cat.png"], replace=True)
    assert replaced.replaced == ("cat.mask.png",) and replaced.replaced_to is not None
    assert replaced.replaced_to.parent == version.dataset / "replaced_masks"
    assert np.array_equal(_stored(version, "cat"), second)
    with Image.open(replaced.replaced_to / "cat.mask.png") as old:
        assert np.array_equal(np.asarray(old), first)


def test_two_masks_for_one_image_in_one_import_the_first_wins(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (16, 16))})
    first = _write(tmp_path / "cat_mask.png", _stripes((16, 16), 1))
    second = _write(tmp_path / "cat.mask.png", _stripes((16, 16), 2))
    result = import_masks(version, [first, second])
    assert [name for name, _ in result.added] == ["cat_mask.png"]
    assert "cat_mask.png in this import is already the mask of cat.png" in result.refused[0].reason


def test_an_image_with_transparency_is_refused_a_mask_file(version, tmp_path: Path) -> None:
    rgba = np.asarray(noise_image(1, (16, 16), "RGBA")).copy()
    rgba[:4, :, 3] = 0
    _upload_images(version, tmp_path, {"cut.png": Image.fromarray(rgba, "RGBA"),
                                       "opaque.png": noise_image(2, (16, 16), "RGBA")})
    result = import_masks(version, [_write(tmp_path / "m" / "cut.png", _stripes((16, 16))),
                                    _write(tmp_path / "m" / "opaque.png", _stripes((16, 16)))])
    assert [name for _, name in result.added] == ["opaque.mask.png"]  # a fully opaque alpha says nothing
    assert "has transparency" in result.refused[0].reason
    assert mask_source(version.origin / "cut.png") == "alpha"
    assert mask_source(version.origin / "opaque.png") == "file"
    assert mask_counts(version).text() == "2 of 2 images have a mask (1 from alpha)"


def test_dropping_an_image_takes_its_mask_along(version, tmp_path: Path) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (16, 16)), "dog.png": noise_image(2, (16, 16))})
    import_masks(version, [_write(tmp_path / "cat.png", _stripes((16, 16)))])
    target = drop_images(version, ["cat"])
    assert sorted(p.name for p in target.iterdir()) == ["cat.mask.png", "cat.png"]
    assert sorted(p.name for p in version.origin.iterdir()) == ["dog.png"]


def test_without_uploaded_images_every_mask_is_unmatched(version, tmp_path: Path) -> None:
    result = import_masks(version, [_write(tmp_path / "cat.png", _stripes((16, 16)))])
    assert result.unmatched == ("cat.png",) and result.added == ()
    assert mask_counts(version).text() == "0 of 0 images have a mask (0 from alpha)"


@pytest.mark.parametrize("data", [b"not an image", b""])
def test_an_unreadable_mask_is_refused_with_a_reason(version, tmp_path: Path, data: bytes) -> None:
    _upload_images(version, tmp_path, {"cat.png": noise_image(1, (16, 16))})
    (tmp_path / "cat.mask.png").write_bytes(data)
    result = import_masks(version, [tmp_path / "cat.mask.png"])
    assert result.added == () and result.refused[0].name == "cat.mask.png"
    assert result.refused[0].reason  # ImageRejected's reason (empty file, not an image)


def _png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values, "L").save(buffer, format="PNG")
    return buffer.getvalue()
