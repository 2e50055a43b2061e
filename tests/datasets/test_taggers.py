"""Taggers: availability messages, the WebUI interrogator adapter, WD14 csv + thresholds via a fake session."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.contracts import find_wd14_folders
from lib_train_tools.datasets.autotag import autotag
from lib_train_tools.datasets.taggers import (
    InterrogatorTagger,
    TaggerError,
    TaggerUnavailable,
    WD14Options,
    WD14Tagger,
    prepare_wd14_input,
)

from .conftest import noise_image

CSV = "tag_id,name,category,count\n1,general,9,1\n2,long_hair,0,1\n3,smile,0,1\n4,^_^,0,1\n5,hatsune_miku,4,1\n"
SCORES = [0.99, 0.80, 0.30, 0.50, 0.40]  # rating 'general' is never emitted


class FakeSession:
    def __init__(self, scores, side=448):
        self.scores = np.asarray([scores], dtype=np.float32)
        self.side = side
        self.inputs = []

    def get_inputs(self):
        return [SimpleNamespace(name="input_1", shape=[1, self.side, self.side, 3])]

    def run(self, outputs, feeds):
        self.inputs.append(feeds["input_1"])
        return [self.scores]


def model_dir(tmp_path, with_model=True):
    folder = tmp_path / "wd14"
    folder.mkdir()
    (folder / "selected_tags.csv").write_text(CSV, encoding="utf-8")
    if with_model:
        (folder / "model.onnx").write_bytes(b"fake")
    return folder


def test_wd14_thresholds_and_order(tmp_path):
    session = FakeSession(SCORES, side=32)
    tagger = WD14Tagger(model_dir(tmp_path), session_factory=lambda path: session)
    assert tagger.tag(noise_image(1)) == ["long hair", "^_^", "hatsune miku"]
    assert session.inputs[0].shape == (1, 32, 32, 3) and session.inputs[0].dtype == np.float32
    strict = WD14Tagger(
        tmp_path / "wd14", WD14Options(threshold=0.6, character_threshold=0.3, underscores_to_spaces=False),
        session_factory=lambda path: FakeSession(SCORES),
    )
    assert strict.tag(noise_image(1)) == ["long_hair", "hatsune_miku"]


def test_with_threshold_copies_a_wd14_tagger_and_keeps_an_interrogator(tmp_path):
    tagger = WD14Tagger(model_dir(tmp_path), WD14Options(character_threshold=0.3),
                        session_factory=lambda path: FakeSession(SCORES))
    strict = tagger.with_threshold(0.6)
    assert strict is not tagger and strict.name == tagger.name
    assert strict.options == WD14Options(threshold=0.6, character_threshold=0.3)
    assert tagger.options.threshold == 0.35          # the original is unchanged
    assert strict.tag(noise_image(1)) == ["long hair", "hatsune miku"]
    blip = InterrogatorTagger("BLIP", lambda image: "a cat", kind="sentence")
    assert blip.with_threshold(0.9) is blip


def test_wd14_folders_are_the_folder_and_subfolders_with_a_model_file(tmp_path):
    assert find_wd14_folders(tmp_path / "absent") == []
    for name, file in (("b", "model.onnx"), ("a", "selected_tags.csv"), ("empty", None), (".hidden", "model.onnx")):
        (tmp_path / name).mkdir()
        if file:
            (tmp_path / name / file).write_bytes(b"")
    assert find_wd14_folders(tmp_path) == [tmp_path / "a", tmp_path / "b"]
    (tmp_path / "model.onnx").write_bytes(b"")
    assert find_wd14_folders(tmp_path) == [tmp_path, tmp_path / "a", tmp_path / "b"]


def test_wd14_input_is_bgr_on_white_square():
    image = noise_image(2, (40, 20)).convert("RGBA")
    image.putpixel((0, 0), (10, 20, 30, 0))
    batch = prepare_wd14_input(image, 40)
    assert batch.shape == (1, 40, 40, 3)
    assert tuple(batch[0, 0, 0]) == (255.0, 255.0, 255.0)  # padding
    red, green, blue = noise_image(2, (40, 20)).getpixel((20, 10))
    assert tuple(batch[0, 20, 20]) == (blue, green, red)


def test_wd14_unavailable_says_why_and_what_to_install(tmp_path):
    tagger = WD14Tagger(model_dir(tmp_path))
    state = tagger.availability()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert not state.available and "onnxruntime" in state.reason and "pip install onnxruntime" in state.install_hint
        with pytest.raises(TaggerUnavailable, match="pip install onnxruntime"):
            tagger.tag(noise_image(1))
    missing = WD14Tagger(tmp_path / "empty", session_factory=lambda path: FakeSession(SCORES)).availability()
    assert not missing.available and "model.onnx" in missing.reason and "selected_tags.csv" in missing.install_hint


def test_wd14_bad_csv_and_mismatched_scores(tmp_path):
    folder = model_dir(tmp_path)
    (folder / "selected_tags.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TaggerError, match="'name' and 'category'"):
        WD14Tagger(folder, session_factory=lambda path: FakeSession(SCORES)).tag(noise_image(1))
    (folder / "selected_tags.csv").write_text(CSV, encoding="utf-8")
    with pytest.raises(TaggerError, match="2 scores but the tag list has 5"):
        WD14Tagger(folder, session_factory=lambda path: FakeSession([0.5, 0.5])).tag(noise_image(1))


def test_interrogator_adapter(loaded):
    outside = InterrogatorTagger("BLIP", None, kind="sentence")
    assert not outside.availability().available and "inside the WebUI" in outside.availability().reason
    with pytest.raises(TaggerUnavailable, match="WebUI"):
        autotag(loaded, outside)
    assert not loaded.generated_tags_file.exists()
    blip = InterrogatorTagger("BLIP", lambda image: "  a photo of  a girl\n", kind="sentence")
    assert blip.tag(noise_image(1)) == ["a photo of a girl"]
    seen = []
    result = autotag(loaded, blip, progress=lambda done, total, name: seen.append(done))
    assert result.tagged == 20 and seen[-1] == 20


def test_wd14_options_are_checked():
    with pytest.raises(ValueError, match="threshold 1.5"):
        WD14Options(threshold=1.5)


# Rating rows (category 9), general (0) and character (4) rows with distinct scores.
RATED_CSV = ("tag_id,name,category,count\n0,general,9,1\n1,sensitive,9,1\n2,explicit,9,1\n"
             "3,long_hair,0,1\n4,smile,0,1\n5,hatsune_miku,4,1\n6,kagamine_rin,4,1\n")
RATED_SCORES = [0.20, 0.70, 0.05, 0.90, 0.40, 0.60, 0.95]


class BatchSession:
    """A model whose input batch is ``batch`` ("N": any); each image's scores are RATED_SCORES
    shifted by its top-left pixel's blue value / 1000, so rows can be told apart."""

    def __init__(self, batch="N", side=16):
        self.batch, self.side = batch, side
        self.calls = []

    def get_inputs(self):
        return [SimpleNamespace(name="x", shape=[self.batch, self.side, self.side, 3])]

    def run(self, outputs, feeds):
        batch = feeds["x"]
        self.calls.append(batch.shape[0])
        return [np.asarray([np.asarray(RATED_SCORES) + image[0, 0, 0] / 1000 for image in batch], dtype=np.float32)]


def rated_dir(tmp_path):
    folder = tmp_path / "rated"
    folder.mkdir()
    (folder / "selected_tags.csv").write_text(RATED_CSV, encoding="utf-8")
    (folder / "model.onnx").write_bytes(b"fake")
    return folder


def test_general_and_character_thresholds_are_separate_and_rating_is_optional(tmp_path):
    folder = rated_dir(tmp_path)

    def tags(**options):
        tagger = WD14Tagger(folder, WD14Options(underscores_to_spaces=False, **options),
                            session_factory=lambda path: FakeSession(RATED_SCORES))
        return tagger.tag(noise_image(1))

    # general 0.35: long_hair .90, smile .40; characters at the same threshold: rin .95, miku .60
    assert tags() == ["kagamine_rin", "long_hair", "hatsune_miku", "smile"]
    assert tags(character_threshold=0.8) == ["kagamine_rin", "long_hair", "smile"]
    assert tags(threshold=0.5, character_threshold=0.5) == ["kagamine_rin", "long_hair", "hatsune_miku"]
    assert tags(threshold=0.95, character_threshold=0.99) == []
    # ratings are one of four: only the top one (sensitive .70), in front, never by threshold
    assert tags(include_rating=True, character_threshold=0.8) == ["sensitive", "kagamine_rin", "long_hair", "smile"]
    assert tags(include_rating=True, threshold=0.95, character_threshold=0.99) == ["sensitive"]
    assert tags(character_tags_first=True, threshold=0.3) == ["kagamine_rin", "hatsune_miku", "long_hair", "smile"]
    assert tags(include_rating=True, exclude=("sensitive",), threshold=0.5, character_threshold=0.99) == ["long_hair"]


def test_with_options_copies_and_checks():
    tagger = WD14Tagger("/nowhere", session_factory=lambda path: FakeSession(RATED_SCORES))
    changed = tagger.with_options(character_threshold=0.8, include_rating=True, batch_size=16)
    assert changed.options == WD14Options(character_threshold=0.8, include_rating=True, batch_size=16)
    assert tagger.options == WD14Options()
    with pytest.raises(ValueError, match="batch_size 0 must be between 1 and 64"):
        tagger.with_options(batch_size=0)
    with pytest.raises(ValueError, match="character_threshold 1.2"):
        tagger.with_options(character_threshold=1.2)


def test_tag_batch_calls_the_model_batch_size_images_at_a_time(tmp_path):
    session = BatchSession()
    tagger = WD14Tagger(rated_dir(tmp_path), WD14Options(batch_size=2, threshold=0.65, character_threshold=0.9),
                        session_factory=lambda path: session)
    images = [Image.new("RGB", (16, 16), (0, 0, blue)) for blue in (0, 50, 200)]
    assert tagger.images_per_call() == 2
    assert tagger.tag_batch(images) == [["kagamine rin", "long hair"]] * 3
    assert session.calls == [2, 1]
    # blue 200 adds 0.2: smile (0.40) passes 0.55 only for the third image, so rows stay in order
    assert [t[-1] for t in tagger.with_threshold(0.55).tag_batch(images)] == ["long hair", "long hair", "smile"]


def test_a_fixed_batch_model_gets_full_batches(tmp_path):
    session = BatchSession(batch=2)
    tagger = WD14Tagger(rated_dir(tmp_path), WD14Options(batch_size=8), session_factory=lambda path: session)
    assert tagger.images_per_call() == 2
    assert len(tagger.tag_batch([noise_image(i) for i in range(3)])) == 3
    assert session.calls == [2, 2]  # the last image padded with a copy of itself


def test_autotag_batches_and_reports_progress_per_image(loaded, tmp_path):
    session = BatchSession()
    tagger = WD14Tagger(rated_dir(tmp_path), WD14Options(batch_size=8), session_factory=lambda path: session)
    seen = []
    result = autotag(loaded, tagger, progress=lambda done, total, name: seen.append((done, total)))
    assert result.tagged == 20 and result.failed == ()
    assert session.calls == [8, 8, 4]
    assert seen == [(n, 20) for n in range(1, 21)]
