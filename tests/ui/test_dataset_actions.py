"""Dataset tab handlers: upload of files and zips, preprocessing, duplicates, auto-tagging."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lib_train_tools.contracts import Availability
from lib_train_tools.datasets.taggers import TaggerUnavailable
from lib_train_tools.projects import StoreError
from lib_train_tools.ui import dataset_actions as actions
from lib_train_tools.ui.gallery import processed_image_count

from .conftest import CAPTIONS, write_pictures, write_zip

FORM = (64, 64, "keep_aspect", "center", 0, False, "keep", "png")  # the preprocessing form's fields


def test_upload_files_and_a_zip_lists_accepted_and_refused(services, selection, tmp_path: Path):
    loose = write_pictures(tmp_path / "loose", 4, captions=CAPTIONS)
    zipped = write_zip(tmp_path / "more.zip", write_pictures(tmp_path / "zipped", 2, start=10))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")
    calls = []
    reply = actions.upload_files(services, selection, [str(p) for p in loose + [zipped, broken]], False,
                                 lambda done, total, name: calls.append((done, total)))
    report, gallery, note, picker, caption = reply.values
    assert "Accepted (10)" in report  # 4 pictures + 4 captions + 2 pictures from the zip
    assert "Refused (1)" in report and "broken.png" in report
    assert len(gallery) == 6 and "not preprocessed yet" in note
    assert picker.get("choices") == []  # captions are edited after preprocessing
    assert calls[-1][0] == calls[-1][1] == 11
    assert reply.notice.kind == "warning"  # one file was refused
    assert reply.notice.text.startswith("6 image(s) and 4 caption(s) added, 1 refused, 0 skipped")


def test_a_caption_alone_adds_no_image_and_says_so(services, selection, tmp_path: Path):
    lonely = tmp_path / "lonely.txt"
    lonely.write_text("a caption without its picture", encoding="utf-8")
    reply = actions.upload_files(services, selection, [str(lonely)], False)
    assert reply.notice.kind == "warning"
    assert reply.notice.text == ("no images were added (0 refused, 0 skipped; 1 caption(s) wait for an image of "
                                 "the same name: lonely.txt)")
    form = (64, 64, "keep_aspect", "center", 0, False, "keep", "png")
    done = actions.run_preprocess(services, selection, *form)
    assert done.notice.kind == "warning" and done.notice.text.startswith("no training images")
    picture = write_pictures(tmp_path / "pic", 1)[0].rename(tmp_path / "pic" / "lonely.png")
    matched = actions.upload_files(services, selection, [str(picture)], False)
    assert matched.notice.kind == "ok" and matched.notice.text.startswith("1 image(s) and 0 caption(s) added")


def test_upload_without_a_version_is_refused(services):
    with pytest.raises(StoreError, match="choose or create"):
        actions.upload_files(services, "", ["x.png"], False)


def test_preprocess_shows_the_training_images_with_captions(services, selection, tmp_path: Path):
    actions.upload_files(services, selection, [str(p) for p in write_pictures(tmp_path / "in", 3, captions=CAPTIONS)],
                         False)
    reply = actions.run_preprocess(services, selection, 32, 32, "crop", "center", 0, True, "keep", "png")
    report, gallery, note, picker, caption, table, chosen, activation = reply.values
    assert "Accepted (6)" in report  # three pictures and their flipped copies
    assert len(gallery) == 6 and gallery[0][1] == CAPTIONS[0]
    assert "6 training image(s)" in note
    assert picker.get("value") == "pic00" and caption == CAPTIONS[0]
    assert ("1girl", 6, "100%") in table.rows
    version = services.store.version("テスト", "v1")
    with Image.open(next(version.processed_dir().glob("*.png"))) as image:
        assert image.size == (32, 32)


def test_preprocess_uses_the_repeats_setting(services, selection, tmp_path: Path):
    from lib_train_tools.projects import update_settings

    version = services.store.version("テスト", "v1")
    update_settings(version, {"repeats": 7})
    actions.upload_files(services, selection, [str(p) for p in write_pictures(tmp_path / "in", 2)], False)
    actions.run_preprocess(services, selection, *FORM)
    assert version.processed_dir().name == "7_テスト"
    assert processed_image_count(version) == 2


def test_bad_preprocess_options_are_refused(services, processed):
    with pytest.raises(ValueError, match="mode 'stretch'"):
        actions.run_preprocess(services, processed, 64, 64, "stretch", "center", 0, False, "keep", "png")
    with pytest.raises(ValueError, match="needs a width and a height"):
        actions.run_preprocess(services, processed, None, 64, "crop", "center", 0, False, "keep", "png")


def test_duplicates_are_grouped_and_can_be_dropped(services, selection, tmp_path: Path):
    files = write_pictures(tmp_path / "in", 3)
    copy = tmp_path / "in" / "copy.png"
    Image.open(files[0]).resize((80, 80)).save(copy)  # a resized copy (uploads need 64 pixels)
    actions.upload_files(services, selection, [str(p) for p in files + [copy]], False)
    reply = actions.find_duplicate_groups(services, selection)
    groups, offered = reply.values
    assert "copy.png, pic00.png" in groups
    assert offered.get("choices") == ["copy.png", "pic00.png"]
    reply = actions.drop_chosen(services, selection, ["copy.png"])
    gallery = reply.values[2]
    assert len(gallery) == 3 and not (services.store.version("テスト", "v1").origin / "copy.png").exists()
    with pytest.raises(ValueError, match="choose the files"):
        actions.drop_chosen(services, selection, [])


class FakeTagger:
    name = "fake tagger"

    def __init__(self):
        self.thresholds = []

    def availability(self):
        return Availability(True)

    def tag(self, image):
        return ["generated tag", "shape"]

    def with_threshold(self, threshold):
        self.thresholds.append(threshold)
        return self


class FakeHost:
    """The standalone host with one extra tagger."""

    def __init__(self, host, taggers):
        self._host = host
        self._taggers = taggers

    def __getattr__(self, name):
        return getattr(self._host, name)

    def taggers(self):
        return self._taggers


def test_autotag_then_preprocess_merges_the_tags(services, selection, tmp_path: Path):
    tagger = FakeTagger()
    services.host = FakeHost(services.host, [tagger])
    assert actions.tagger_choices(services).values[0].get("choices") == ["fake tagger"]
    actions.upload_files(services, selection, [str(p) for p in write_pictures(tmp_path / "in", 2)], False)
    reply = actions.run_autotag(services, selection, "fake tagger", 0.5, *FORM)
    assert tagger.thresholds == [0.5]
    assert actions._tagger(services, "fake tagger", "") is tagger and tagger.thresholds == [0.5]  # none given
    gallery, table = reply.values[1], reply.values[5]
    assert gallery[0][1] == "generated tag, shape"
    assert ("shape", 2, "100%") in table.rows
    with pytest.raises(TaggerUnavailable, match="no tagger called"):
        actions.run_autotag(services, selection, "missing", 0.5, *FORM)


def test_no_tagger_tells_where_to_put_one(services):
    reply = actions.tagger_choices(services)
    assert reply.values[0].get("choices") == []
    assert "taggers" in reply.notice.text and "model.onnx" in reply.notice.text


def test_dataset_view_of_nothing_and_of_a_version(services, processed):
    empty = actions.dataset_view(services, "")
    assert empty.values[0] == [] and "Choose or create" in empty.values[1]
    full = actions.dataset_view(services, processed)
    assert len(full.values[0]) == 6 and full.values[4].rows[0][0] == "1girl"
