"""Flags of the Dataset tab's gallery: small images, over-long captions, images without a caption,
and "Drop small images"."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lib_train_tools.projects import update_settings
from lib_train_tools.ui import dataset_actions as actions
from lib_train_tools.ui import gallery_flags
from lib_train_tools.ui.gallery import gallery_values

from .conftest import picture

LONG_CAPTION = ", ".join(f"tag{i} word{i}" for i in range(30))  # 189 CLIP tokens: 150 < 189 <= 225


def _files(folder: Path, sizes: dict[str, tuple[int, int]], captions: dict[str, str] | None = None) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, (stem, size) in enumerate(sizes.items()):
        picture(seed, size).save(folder / f"{stem}.png")
        paths.append(str(folder / f"{stem}.png"))
        if captions and stem in captions:
            (folder / f"{stem}.txt").write_text(captions[stem], encoding="utf-8")
            paths.append(str(folder / f"{stem}.txt"))
    return paths


def _labels(gallery: list) -> dict[str, str]:
    return {Path(path).stem: label for path, label in gallery}


def _version(services, selection: str, resolution: str = "256"):
    version = services.store.version("テスト", "v1")
    update_settings(version, {"resolution": resolution})
    return version


def test_small_uploads_are_flagged_in_the_gallery_and_the_note(services, selection, tmp_path: Path):
    version = _version(services, selection)
    sizes = {"big": (256, 256), "tiny": (8, 8), "wee": (64, 64)}
    actions.upload_files(services, selection, _files(tmp_path / "in", sizes, {"big": "a cat", "tiny": "a dot"}), False)
    gallery, note, _, _ = gallery_values(version)
    labels = _labels(gallery)
    assert labels == {"big": "a cat", "tiny": "a dot", "wee": ""}  # the captions (nothing to train as yet)
    assert ("⚠ 2 small images (training at 256x256 enlarges them: expect blur): tiny.png 8x8 32x, "
            "wee.png 64x64 4x; Drop small images sets them aside") in note
    assert note.index("3 uploaded image(s)") < note.index("small images")  # the count first


def test_small_uploads_are_named_once_after_preprocessing(services, selection, tmp_path: Path):
    version = _version(services, selection)
    sizes = {"big": (256, 256), "strip": (16, 64)}
    actions.upload_files(services, selection, _files(tmp_path / "in", sizes, {"big": "a", "strip": "b"}), False)
    actions.run_preprocess(services, selection, 64, 64, "keep_aspect", "center", 2, True, "keep", "png")
    gallery, note, _, _ = gallery_values(version)
    labels = _labels(gallery)
    assert len(labels) > 4 and labels["big-flip"] == "a" and labels["strip-part1-flip"] == "b"  # parts, flips
    assert "⚠ 1 small image (training at 256x256 enlarges it: expect blur): strip.png 16x64 8x; " in note
    assert note.count("strip") == 1


def test_long_and_missing_captions_are_flagged(services, selection, tmp_path: Path):
    version = _version(services, selection, "64")  # nothing is small
    captions = {"long": LONG_CAPTION, "short": "a cat"}
    sizes = {"long": (64, 64), "none": (64, 64), "short": (64, 64)}
    actions.upload_files(services, selection, _files(tmp_path / "in", sizes, captions), False)
    actions.run_preprocess(services, selection, 64, 64, "keep_aspect", "center", 0, False, "keep", "png")
    gallery, note, _, caption = gallery_values(version, "long")
    labels = _labels(gallery)
    assert caption == LONG_CAPTION  # the caption box is the caption itself, never the flags
    assert labels["short"] == "a cat" and labels["none"] == "(no caption: trained as 'テスト')"
    tokens = labels["long"].split(" tokens")[0].removeprefix("⚠ ")
    assert tokens == "189" and labels["long"] == f"⚠ 189 tokens, only 75 trained — {LONG_CAPTION}"
    assert ("⚠ 1 caption over the token window (only the first 75 tokens are trained): long 189 tokens; "
            "set max_token_length to 150 or 225 to keep more (225 keeps every word), or shorten those captions") in note
    assert "⚠ 1 image without a caption, trained as &#x27;テスト&#x27;: none" in note
    update_settings(version, {"max_token_length": 225, "caption_prefix": "photo of"})
    gallery, note, _, _ = gallery_values(version)
    labels = _labels(gallery)
    assert labels["none"] == "(no caption: trained as 'photo of テスト')"
    assert labels["long"] == LONG_CAPTION and "over the token window" not in note


def test_the_no_caption_text_is_what_the_trainer_reads(processed, services, tmp_path: Path):
    from lib_train_tools.train.data.folders import scan_folder

    version = services.store.version("テスト", "v1")
    folder = version.processed_dir()
    for text in folder.glob("*.txt"):
        text.unlink()  # a hand-made folder: captions come from the files (none now)
    items = scan_folder(folder, False, (".txt",))
    assert {item.caption for item in items} == {gallery_flags.class_tokens(version)} == {"テスト"}


def test_a_caption_check_that_cannot_run_is_said_and_the_gallery_still_shows(processed, services, monkeypatch):
    def broken(version):
        raise RuntimeError("open_clip is not installed")

    monkeypatch.setattr(gallery_flags, "long_captions", broken)
    gallery, note, _, _ = gallery_values(services.store.version("テスト", "v1"))
    assert len(gallery) == 6 and "caption lengths not checked: open_clip is not installed" in note


def test_drop_small_images_sets_exactly_those_aside(services, selection, tmp_path: Path):
    version = _version(services, selection)
    sizes = {"big": (256, 256), "tiny": (8, 8), "wee": (64, 64)}
    actions.upload_files(services, selection, _files(tmp_path / "in", sizes, {"tiny": "a dot"}), False)
    reply = actions.drop_small(services, selection)
    report, duplicates, drop_choice, gallery, note = reply.values[:5]
    assert "dropped 2 small image(s) into" in reply.notice.text and "press Preprocess" in reply.notice.text
    assert "Dropped (2)" in report and "tiny.png: 8x8, training would enlarge it 32x" in report
    assert "wee.png: 64x64, training would enlarge it 4x" in report and "not deleted" in report
    assert duplicates == "" and drop_choice.get("choices") == []
    assert [Path(p).stem for p, _ in gallery] == ["big"] and "small image" not in note
    target = next((version.dataset / "dropped").iterdir())
    assert sorted(p.name for p in target.iterdir()) == ["tiny.png", "tiny.txt", "wee.png"]
    again = actions.drop_small(services, selection)
    assert "no small images to drop" in again.notice.text and "nothing was dropped" in again.values[0]
    with Image.open(version.origin / "big.png") as image:
        assert image.size == (256, 256)
