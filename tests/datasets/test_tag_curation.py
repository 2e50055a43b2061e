"""Tag curation over processed captions: frequencies, activation tag, prune, merge, add, edit, undo."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from lib_train_tools.datasets.captions import format_tags, merge_captions, parse_tags
from lib_train_tools.datasets.preprocess import preprocess
from lib_train_tools.datasets.tag_curation import (
    add_tag,
    current_captions,
    edit_caption,
    merge_tags,
    prune_tags,
    search_tag,
    set_activation_tag,
    tag_frequencies,
    underscores_to_spaces,
    undo,
)
from lib_train_tools.datasets.tag_journal import CurationError
from lib_train_tools.projects import Store, load_settings, save_settings, update_settings

from .conftest import tree_hashes


@pytest.fixture
def processed(loaded):
    preprocess(loaded)
    return loaded


def caption_file(version, stem: str) -> str:
    return (version.processed_dir() / f"{stem}.txt").read_text(encoding="utf-8")


def test_parse_and_format_rules():
    assert parse_tags(" a ,b,, a, c_d \n e ") == ["a", "b", "c_d", "e"]
    assert parse_tags("c_d, c d", underscores_to_spaces=True) == ["c d"]
    assert format_tags(["x", "y", "x"]) == "x, y"
    assert merge_captions("", ["g"], "keep") == ["g"]
    assert merge_captions("a, g", ["g", "b"], "append") == ["a", "g", "b"]


def test_frequency_table_and_search(processed):
    table = {t.tag: t for t in tag_frequencies(processed)}
    assert table["1girl"].count == 20 and table["1girl"].share == 1.0
    # blonde_hair is left out when (index + 1) % 3 == 0: indices 2, 5, 8, 11, 14, 17
    assert table["blonde_hair"].count == 14 and table["blonde_hair"].share == pytest.approx(0.7)
    assert tag_frequencies(processed)[0].tag == "1girl"
    assert "img02" not in search_tag(processed, " blonde_hair ") and len(search_tag(processed, "blonde_hair")) == 14


def test_activation_tag_sets_keep_tokens_and_undo_restores(processed):
    save_settings(processed, {"keep_tokens": 0, "epochs": 5})
    result = set_activation_tag(processed, "sks girl")
    assert len(result.changed) == 20
    assert all(caption_file(processed, f"img{i:02d}").startswith("sks girl, 1girl") for i in range(20))
    assert load_settings(processed) == {"keep_tokens": 1, "epochs": 5}
    undo(processed)
    assert caption_file(processed, "img00").startswith("1girl")
    assert load_settings(processed) == {"keep_tokens": 0, "epochs": 5}


def test_prune_merge_add_edit_and_undo_chain(processed):
    origin_before = tree_hashes(processed.origin)
    prune_tags(processed, ["smile", "outdoors"])
    assert not any("smile" in c for c in current_captions(processed).values())
    merged = merge_tags(processed, ["striped shirt", "vertical stripes"], "striped shirt")
    assert "img01" in merged.changed and "img00" not in merged.changed
    assert caption_file(processed, "img01") == "1girl, blonde_hair, striped shirt"  # was "vertical stripes"
    assert caption_file(processed, "img02") == "1girl, striped shirt"  # had both
    add_tag(processed, "red bow", ["img00", "img01"], position="start")
    assert caption_file(processed, "img01").startswith("red bow, ")
    assert "red bow" not in caption_file(processed, "img02")
    edit_caption(processed, "img03", "a completely new caption, solo, solo")
    assert caption_file(processed, "img03") == "a completely new caption, solo"
    underscores_to_spaces(processed)
    assert "blonde hair" in caption_file(processed, "img00")
    for expected_length in (4, 3, 2, 1, 0):
        assert undo(processed).journal_length == expected_length
    assert caption_file(processed, "img00") == (processed.origin / "img00.txt").read_text(encoding="utf-8")
    with pytest.raises(CurationError, match="nothing to undo"):
        undo(processed)
    assert tree_hashes(processed.origin) == origin_before


def test_bad_curation_requests_change_nothing(processed):
    before = {p.name: p.read_bytes() for p in processed.processed_dir().iterdir()}
    with pytest.raises(CurationError, match="not processed images"):
        add_tag(processed, "x", ["img00", "ghost"])
    with pytest.raises(CurationError, match="without commas"):
        set_activation_tag(processed, "a, b")
    with pytest.raises(CurationError, match="non-empty"):
        merge_tags(processed, ["smile"], "  ")
    assert {p.name: p.read_bytes() for p in processed.processed_dir().iterdir()} == before
    assert not processed.curation_journal_file.exists()


def test_curation_needs_preprocessing_first(loaded):
    with pytest.raises(CurationError, match="preprocess the dataset first"):
        prune_tags(loaded, ["smile"])


def _curate_concurrently(root: str, worker: str, image: str, count: int) -> None:
    version = Store(root).version("proj", "v1")
    for index in range(count):
        add_tag(version, f"{worker}{index}", [image])
        update_settings(version, {f"{worker}{index}": index})


def test_two_processes_curating_the_same_version_lose_nothing(store, processed):
    """Two processes add tags and settings to one version at once: every change survives, files stay valid."""
    context = multiprocessing.get_context("fork")
    jobs = {"a": "img00", "b": "img01"}
    workers = [context.Process(target=_curate_concurrently, args=(str(store.root), w, image, 8))
               for w, image in jobs.items()]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    journal = json.loads(processed.curation_journal_file.read_text(encoding="utf-8"))["ops"]
    assert len(journal) == 16
    settings = json.loads(processed.settings_file.read_text(encoding="utf-8"))
    assert settings == {f"{w}{i}": i for w in jobs for i in range(8)}
    for w, image in jobs.items():
        tags = parse_tags(caption_file(processed, image))
        assert tags[-8:] == [f"{w}{i}" for i in range(8)]
    assert {stem: caption_file(processed, stem) for stem in current_captions(processed)} == current_captions(processed)
    leftovers = [p for p in processed.root.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".build-")]
    assert leftovers == []
