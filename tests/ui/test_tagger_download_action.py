"""The Dataset tab's "Download tagger" action: into <output_root>/taggers, progress in MiB, list refreshed.

The download itself is tested against a stand-in hub in tests/datasets/test_tagger_download.py; here
``download_tagger`` is replaced by one that writes the two files, so only the action's job is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_train_tools.contracts import TAGGERS_FOLDER
from lib_train_tools.datasets.tagger_download import TaggerDownloadError
from lib_train_tools.ui import dataset_actions as actions

MIB = 1 << 20


@pytest.fixture
def fake_download(monkeypatch):
    calls = []

    def download(repo_id, cache_root, progress=None):
        folder = Path(cache_root) / repo_id.split("/")[-1]
        calls.append((repo_id, Path(cache_root)))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "selected_tags.csv").write_text("tag_id,name,category,count\n0,smile,0,1\n")
        (folder / "model.onnx").write_bytes(b"model")
        if progress is not None:
            progress(3 * MIB, 10 * MIB + 1, "model.onnx")
        return folder

    monkeypatch.setattr(actions, "download_tagger", download)
    return calls


def test_download_puts_the_tagger_where_the_list_looks_and_chooses_it(services, fake_download):
    assert actions.downloadable_taggers()[0] == "wd-swinv2-tagger-v3" and len(actions.downloadable_taggers()) == 8
    steps = []
    reply = actions.download_known_tagger(services, "wd-vit-tagger-v3", lambda d, t, n: steps.append((d, t, n)))
    root = Path(services.host.output_root()) / TAGGERS_FOLDER
    assert fake_download == [("SmilingWolf/wd-vit-tagger-v3", root)]
    assert steps == [(3, 11, "MiB, model.onnx")]
    update = reply.values[0]
    assert "WD14 (wd-vit-tagger-v3)" in update.get("choices") and update.get("value") == "WD14 (wd-vit-tagger-v3)"
    assert "WD14 (wd-vit-tagger-v3)" in reply.notice.text and str(root / "wd-vit-tagger-v3") in reply.notice.text
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert reply.notice.kind == "warning" and "pip install onnxruntime" in reply.notice.text


def test_unknown_tagger_and_offline_errors_reach_the_caller(services, monkeypatch):
    with pytest.raises(ValueError, match="choose one of the taggers to download"):
        actions.download_known_tagger(services, "not-a-tagger")

    def offline(repo_id, cache_root, progress=None):
        raise TaggerDownloadError("could not reach the hub ([Errno 111] Connection refused): put ...")

    monkeypatch.setattr(actions, "download_tagger", offline)
    with pytest.raises(TaggerDownloadError, match="could not reach the hub"):
        actions.download_known_tagger(services, "wd-vit-tagger-v3")
