"""Taggers downloaded on first use, against a stand-in hub on 127.0.0.1 (tests/datasets/hub_standin.py).

The served model is a tiny ONNX graph built here (onnx is a test-only dependency) with a free batch
dimension: per image it averages the B, G, R channels (scaled to 0..1) and scores six tags with a
sigmoid of a linear map. A pure red image scores the ratings general 0.73 and sensitive 0.88, the
general tags red_hair 0.88 and blue_sky 0.12, the characters char_a 0.57 and char_b 0.82; a pure
blue one general 0.73, sensitive 0.50, red_hair 0.12, blue_sky 0.88, char_a 0.38, char_b 0.18.
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.contracts import find_wd14_folders
from lib_train_tools.datasets import tagger_download
from lib_train_tools.datasets.tagger_download import (
    COMPLETE_MARKER,
    KNOWN_TAGGERS,
    TaggerDownloadError,
    download_tagger,
    tagger_folder,
)
from lib_train_tools.datasets.taggers import WD14Options, WD14Tagger

from .hub_standin import HubStandIn, unused_endpoint

huggingface_hub = pytest.importorskip("huggingface_hub")

REPO = "SmilingWolf/wd-vit-tagger-v3"
TAGS_CSV = ("tag_id,name,category,count\n0,general,9,1\n1,sensitive,9,1\n2,red_hair,0,1\n3,blue_sky,0,1\n"
            "4,char_a,4,1\n5,char_b,4,1\n")
# Rows: B, G, R channel means (0..1); columns: general, sensitive, red_hair, blue_sky, char_a, char_b.
WEIGHTS = [[0.0, 0.0, 0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 2.0, 4.0, 0.0, 0.8, 3.0]]
BIAS = [1.0, 0.0, -2.0, -2.0, -0.5, -1.5]
PADDING = 200_000  # doc-string bytes, so the model downloads in several chunks


def tiny_wd14_model() -> bytes:
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["unit"]),
        helper.make_node("MatMul", ["unit", "weights"], ["linear"]),
        helper.make_node("Add", ["linear", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["output"]),
    ]
    initializers = [
        helper.make_tensor("scale", onnx.TensorProto.FLOAT, [], [1 / 255]),
        helper.make_tensor("weights", onnx.TensorProto.FLOAT, [3, 6], np.asarray(WEIGHTS).ravel().tolist()),
        helper.make_tensor("bias", onnx.TensorProto.FLOAT, [6], BIAS),
    ]
    graph = helper.make_graph(
        nodes, "tiny_wd14",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["N", 6])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], doc_string="x" * PADDING)
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def hub_env(monkeypatch):
    """huggingface_hub allowed online (whatever HF_HUB_OFFLINE says) and 127.0.0.1 not proxied."""
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    reset_sessions()
    yield monkeypatch
    reset_sessions()


@pytest.fixture
def hub(hub_env):
    server = HubStandIn(REPO, {"model.onnx": tiny_wd14_model(), "selected_tags.csv": TAGS_CSV.encode()}).start()
    hub_env.setenv("HF_ENDPOINT", server.endpoint + "/")  # a trailing slash is dropped, as huggingface_hub does
    yield server
    server.stop()


def test_known_taggers_are_smilingwolfs_eight():
    names = {t.name for t in KNOWN_TAGGERS}
    assert len(KNOWN_TAGGERS) == 8 and all(t.repo_id == f"SmilingWolf/{t.name}" for t in KNOWN_TAGGERS)
    assert {"wd-v1-4-convnext-tagger-v2", "wd-swinv2-tagger-v3", "wd-eva02-large-tagger-v3"} <= names
    assert tagger_folder(REPO, "/cache").as_posix() == "/cache/wd-vit-tagger-v3"
    with pytest.raises(ValueError, match="not a hub repository id"):
        tagger_folder("SmilingWolf/..", "/cache")


def test_download_progress_then_cache_reuse_offline(hub, hub_env, tmp_path):
    hub_env.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    hub.pieces, hub.pause = 4, 0.3
    calls = []
    folder = download_tagger(REPO, tmp_path, progress=lambda done, total, name: calls.append((done, total, name)))

    assert folder == tmp_path / "wd-vit-tagger-v3"
    assert (folder / "model.onnx").read_bytes() == hub.files["model.onnx"]
    assert (folder / "selected_tags.csv").read_text() == TAGS_CSV
    sizes = json.loads((folder / COMPLETE_MARKER).read_text())["sizes"]
    assert sizes == {"model.onnx": len(hub.files["model.onnx"]), "selected_tags.csv": len(TAGS_CSV)}
    assert find_wd14_folders(tmp_path) == [folder]  # the staging folder is hidden and removed
    assert not (tmp_path / ".downloads" / "wd-vit-tagger-v3").exists()

    total = len(hub.files["model.onnx"]) + len(TAGS_CSV)
    assert calls[-1] == (total, total, "model.onnx")
    assert all(t == total for _, t, _ in calls)
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    assert any(len(TAGS_CSV) < d < total for d, _, name in calls if name == "model.onnx"), calls
    assert [m for m, _, _ in hub.requests].count("GET") == 2

    hub.stop()
    hub_env.setenv("HF_ENDPOINT", unused_endpoint())
    assert download_tagger(REPO, tmp_path) == folder  # no network needed


class CountingSession:
    """onnxruntime's session, recording the batch size of each call."""

    def __init__(self, path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.batches = []

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, outputs, feeds):
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.session.run(outputs, feeds)


def test_downloaded_tagger_runs_end_to_end_with_thresholds(hub, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = download_tagger(REPO, tmp_path)
    red = Image.new("RGB", (16, 16), (255, 0, 0))  # square: no white padding
    blue = Image.new("RGB", (16, 16), (0, 0, 255))
    tagger = WD14Tagger(folder, WD14Options(threshold=0.35, character_threshold=0.85))
    assert tagger.availability().available
    assert tagger.tag(red) == ["red hair"]  # red_hair 0.88; blue_sky 0.12; char_b 0.82 and char_a 0.57 < 0.85
    assert tagger.with_options(character_threshold=0.7).tag(red) == ["red hair", "char b"]
    assert tagger.with_threshold(0.9).tag(red) == []
    loose = WD14Tagger(folder, WD14Options(threshold=0.1, character_threshold=0.5, underscores_to_spaces=False))
    assert loose.tag(red) == ["red_hair", "char_b", "char_a", "blue_sky"]  # most confident first, no rating
    assert loose.with_options(character_tags_first=True).tag(red) == ["char_b", "char_a", "red_hair", "blue_sky"]
    rated = loose.with_options(include_rating=True, threshold=0.5)
    assert rated.tag(red) == ["sensitive", "red_hair", "char_b", "char_a"]  # sensitive 0.88 > general 0.73
    assert rated.tag(blue) == ["general", "blue_sky"]  # general 0.73 > sensitive 0.50; char_a 0.38 < 0.5


def test_downloaded_tagger_tags_in_batches(hub, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = download_tagger(REPO, tmp_path)
    sessions = []

    def counting(path):
        sessions.append(CountingSession(path))
        return sessions[-1]

    tagger = WD14Tagger(folder, WD14Options(threshold=0.5, character_threshold=0.7, batch_size=2),
                        session_factory=counting)
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    assert tagger.images_per_call() == 2  # the model's batch dimension is free: the option decides
    expected = [["red hair", "char b"], ["blue sky"], ["red hair", "char b"]]
    assert tagger.tag_batch([red, blue, red]) == expected
    assert sessions[0].batches == [2, 1]


def test_truncated_download_leaves_no_tagger_and_resumes(hub, tmp_path):
    hub.truncate = {"model.onnx"}
    with pytest.raises(TaggerDownloadError, match=r"download of model.onnx .* broke off .*Run it again") as error:
        download_tagger(REPO, tmp_path)
    folder = tmp_path / "wd-vit-tagger-v3"
    assert str(folder) in str(error.value)
    assert not (folder / "model.onnx").exists() and not (folder / COMPLETE_MARKER).exists()
    assert find_wd14_folders(tmp_path) == []

    hub.truncate = set()
    assert download_tagger(REPO, tmp_path) == folder
    assert (folder / "model.onnx").read_bytes() == hub.files["model.onnx"]


def test_size_mismatch_is_refused(hub, hub_env, tmp_path):
    """The file on disk must have the size the hub announced before it is placed."""
    real = tagger_download._remote_sizes

    def lying_sizes(*args, **kwargs):
        sizes = real(*args, **kwargs)
        return {**sizes, "model.onnx": sizes["model.onnx"] + 1}

    hub_env.setattr(tagger_download, "_remote_sizes", lying_sizes)
    with pytest.raises(TaggerDownloadError, match=r"model.onnx of .* has \d+ bytes but the hub says \d+"):
        download_tagger(REPO, tmp_path)
    assert find_wd14_folders(tmp_path) == []


def test_offline_says_where_to_put_the_files(hub_env, tmp_path):
    hub_env.setenv("HF_ENDPOINT", unused_endpoint())
    folder = tmp_path / "wd-vit-tagger-v3"
    expected = r"could not reach the hub \(.*refused.*\): put model.onnx and selected_tags.csv in " + re.escape(str(folder))
    with pytest.raises(TaggerDownloadError, match=expected):
        download_tagger(REPO, tmp_path)
    assert not folder.exists()


def test_offline_mode_says_so(hub, hub_env, tmp_path):
    from huggingface_hub.utils import reset_sessions

    hub_env.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    reset_sessions()
    with pytest.raises(TaggerDownloadError, match=r"could not reach the hub \(.*HF_HUB_OFFLINE.*\): put model.onnx"):
        download_tagger(REPO, tmp_path)
    assert hub.requests == []


def test_hand_filled_folder_is_used_offline_and_a_bad_marker_is_not(hub_env, tmp_path):
    hub_env.setenv("HF_ENDPOINT", unused_endpoint())
    folder = tmp_path / "wd-vit-tagger-v3"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"model")
    (folder / "selected_tags.csv").write_text(TAGS_CSV)
    assert download_tagger(REPO, tmp_path) == folder
    (folder / COMPLETE_MARKER).write_text(json.dumps({"sizes": {"model.onnx": 6, "selected_tags.csv": len(TAGS_CSV)}}))
    with pytest.raises(TaggerDownloadError, match="could not reach the hub"):
        download_tagger(REPO, tmp_path)


def test_two_requests_for_one_tagger_download_it_once(hub, tmp_path):
    hub.pieces, hub.pause = 3, 0.2
    results = []
    threads = [threading.Thread(target=lambda: results.append(download_tagger(REPO, tmp_path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [tmp_path / "wd-vit-tagger-v3"] * 2
    assert [(m, p) for m, p, _ in hub.requests if m == "GET"] == [
        ("GET", f"/{REPO}/resolve/main/selected_tags.csv"), ("GET", f"/{REPO}/resolve/main/model.onnx")]
