"""Preprocessing origin/ into processed/<repeats>_<project>/: sizes, crops, splits, flips, captions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.datasets.autotag import autotag
from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.datasets.repeats import set_repeats
from lib_train_tools.datasets.tag_curation import prune_tags
from lib_train_tools.datasets.taggers import InterrogatorTagger

from .conftest import caption_for, noise_image, tree_hashes


def test_keep_aspect_round_trip_with_captions_and_progress(loaded):
    before = tree_hashes(loaded.origin)
    seen = []
    result = preprocess(loaded, progress=lambda done, total, name: seen.append((done, total, name)))
    assert result.folder == loaded.processed_parent / "25_proj" and result.repeats == 25  # 512 // 20
    assert len(result.outputs) == 20 and not result.refused
    assert len(result.small) == 20 and result.small[0] == ("img00.png", 64, 64)
    assert seen[-1] == (20, 20, "img19.png")
    for index in range(20):
        assert (result.folder / f"img{index:02d}.txt").read_text(encoding="utf-8") == caption_for(index)
        with Image.open(result.folder / f"img{index:02d}.png") as image:
            assert image.size == (64, 64)
    assert tree_hashes(loaded.origin) == before
    assert [p.name for p in loaded.processed_parent.iterdir()] == ["25_proj"]


def test_keep_aspect_shrinks_to_the_target_area(version, tmp_path):
    _put(version, "wide.png", noise_image(1, (96, 48)))
    result = preprocess(version, PreprocessOptions(width=32, height=32, repeats=3))
    with Image.open(result.folder / "wide.png") as image:
        w, h = image.size
    assert w * h <= 32 * 32 and abs(w / h - 2.0) < 0.1 and w >= 44
    assert result.small == () and result.folder.name == "3_proj"


def test_crop_centre_gives_exact_size_and_flags_small(version):
    _put(version, "a.png", noise_image(1, (100, 70)))
    _put(version, "b.png", noise_image(2, (40, 40)))
    result = preprocess(version, PreprocessOptions(width=48, height=64, mode="crop"))
    for name in ("a.png", "b.png"):
        with Image.open(result.folder / name) as image:
            assert image.size == (48, 64)
    assert result.small == (("b.png", 40, 40),)


def test_focal_crop_follows_the_detail(version):
    canvas = np.full((64, 128, 3), 255, dtype=np.uint8)
    canvas[16:48, 100:124] = np.asarray(noise_image(3, (24, 32)))
    _put(version, "detail.png", Image.fromarray(canvas))
    focal = preprocess(version, PreprocessOptions(width=64, height=64, mode="crop", crop_anchor="focal"))
    with Image.open(focal.folder / "detail.png") as image:
        assert np.asarray(image).min() < 200
    centred = preprocess(version, PreprocessOptions(width=64, height=64, mode="crop"))
    with Image.open(centred.folder / "detail.png") as image:
        assert np.asarray(image).min() == 255


def test_exif_orientation_and_transparency(version):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored 80x40, shown 40x80
    noise_image(4, (80, 40)).save(version.origin / "rotated.jpg", exif=exif)
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    clear.paste((255, 0, 0, 255), (0, 0, 32, 64))
    clear.save(version.origin / "alpha.png")
    result = preprocess(version, PreprocessOptions(width=512, height=512, background=(0, 255, 0)))
    with Image.open(result.folder / "rotated.png") as image:
        assert image.size == (40, 80)
    with Image.open(result.folder / "alpha.png") as image:
        pixels = np.asarray(image)
    assert image.mode == "RGB"
    assert tuple(pixels[10, 50]) == (0, 255, 0) and tuple(pixels[10, 10]) == (255, 0, 0)


def test_split_and_flip(version):
    _put(version, "long.png", noise_image(5, (256, 64)))
    (version.origin / "long.txt").write_text("panorama", encoding="utf-8")
    options = PreprocessOptions(width=64, height=64, mode="crop", split_ratio=2.0, split_overlap=0.2, flip_copies=True)
    result = preprocess(version, options)
    parts = [f"long-part{i}.png" for i in range(1, 6)]
    assert sorted(result.outputs) == sorted(parts + [p.replace(".png", "-flip.png") for p in parts])
    first = np.asarray(Image.open(result.folder / "long-part1.png"))
    flip = np.asarray(Image.open(result.folder / "long-part1-flip.png"))
    assert np.array_equal(first[:, ::-1], flip)
    with Image.open(result.folder / "long-part5.png") as last:
        source = np.asarray(noise_image(5, (256, 64)))
        assert np.array_equal(np.asarray(last), source[:, 192:256])
    assert (result.folder / "long-part3-flip.txt").read_text(encoding="utf-8") == "panorama"


def test_unreadable_origin_file_is_listed_and_the_rest_processed(loaded):
    (loaded.origin / "img05.png").write_bytes(b"damaged since upload")
    result = preprocess(loaded)
    assert [r.name for r in result.refused] == ["img05.png"]
    assert "cannot be processed" in result.refused[0].reason
    assert len(result.outputs) == 19


def test_rerun_keeps_curation_and_repeats(loaded):
    origin = tree_hashes(loaded.origin)
    preprocess(loaded)
    prune_tags(loaded, ["smile"])
    set_repeats(loaded, 7)
    options = PreprocessOptions(mode="crop", width=32, height=32, crop_anchor="focal", split_ratio=1.5,
                                flip_copies=True, caption_policy="append", repeats=7)
    result = preprocess(loaded, options)
    assert result.folder.name == "7_proj"
    captions = [p.read_text(encoding="utf-8") for p in result.folder.glob("*.txt")]
    assert len(captions) == 40 and not any("smile" in c for c in captions)
    assert tree_hashes(loaded.origin) == origin


def test_repeats_not_set_follow_the_image_count_of_each_run(version):
    version.origin.mkdir(parents=True, exist_ok=True)
    (version.origin / "a.txt").write_text("only a caption", encoding="utf-8")
    assert preprocess(version).repeats == 512  # no image yet: 512 / max(0, 1)
    for i in range(8):
        Image.new("RGB", (64, 64), (i * 20, 0, 0)).save(version.origin / f"img{i}.png")
    result = preprocess(version)
    assert result.repeats == 64 and result.folder.name == "64_proj"  # 512 // 8, not the 512 of the run before


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("keep", "mine, own tag"),
        ("ignore", "auto one, mine"),
        ("prepend", "auto one, mine, own tag"),
        ("append", "mine, own tag, auto one"),
    ],
)
def test_caption_policies_with_generated_tags(version, policy, expected):
    _put(version, "a.png", noise_image(1))
    _put(version, "b.png", noise_image(2))
    (version.origin / "a.txt").write_text("mine, own tag", encoding="utf-8")
    origin = tree_hashes(version.origin)
    tagger = InterrogatorTagger("fake deepbooru", lambda image: "auto_one, mine", kind="tags")
    tagged = autotag(version, tagger)
    assert tagged.tagged == 2
    assert json.loads(version.generated_tags_file.read_text(encoding="utf-8"))["b"] == ["auto_one", "mine"]
    result = preprocess(version, PreprocessOptions(caption_policy=policy))
    assert (result.folder / "a.txt").read_text(encoding="utf-8") == expected.replace("auto one", "auto_one")
    assert (result.folder / "b.txt").read_text(encoding="utf-8") == "auto_one, mine"
    assert not (version.origin / "b.txt").exists()
    assert tree_hashes(version.origin) == origin


def test_bad_options_say_what_is_wrong():
    with pytest.raises(ValueError, match="mode 'stretch'.*split_ratio 0.5"):
        PreprocessOptions(mode="stretch", split_ratio=0.5)


def _put(version, name: str, image: Image.Image) -> None:
    version.origin.mkdir(parents=True, exist_ok=True)
    image.save(version.origin / name)


def test_the_longest_accepted_project_name_can_be_preprocessed(tmp_path):
    from lib_train_tools.projects import Store
    from lib_train_tools.projects.names import MAX_NAME_BYTES

    name = "🎨" * (MAX_NAME_BYTES // 4)
    store = Store(tmp_path / "root")
    store.create_project(name)
    store.create_version(name, "v")
    version = store.version(name, "v")
    _put(version, "a.png", noise_image(1))
    result = preprocess(version, PreprocessOptions(repeats=99999))
    assert result.folder.name == f"99999_{name}" and (result.folder / "a.png").is_file()
