"""Presets: saved without dataset-bound settings, loaded keeping the version's own ones."""

from __future__ import annotations

import pytest

from lib_train_tools.presets import PresetError, applied, delete_preset, list_presets, load_preset, save_preset
from lib_train_tools.projects import InvalidNameError


def test_save_list_load_delete(tmp_path):
    folder = tmp_path / "presets"
    assert list_presets(folder) == []
    path = save_preset(folder, "  速い ", {"network_dim": 8, "keep_tokens": 1, "activation_tag": "me"})
    assert path.name == "速い.json"
    save_preset(folder, "Alpha", {"network_dim": 4})
    assert list_presets(folder) == ["Alpha", "速い"]
    assert load_preset(folder, "速い") == {"network_dim": 8}
    delete_preset(folder, "Alpha")
    assert list_presets(folder) == ["速い"]
    with pytest.raises(PresetError, match="no preset called 'Alpha'"):
        load_preset(folder, "Alpha")


def test_bad_names_and_files_are_reported(tmp_path):
    with pytest.raises(InvalidNameError):
        save_preset(tmp_path, "a/b", {})
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PresetError, match="cannot be read"):
        load_preset(tmp_path, "broken")
    (tmp_path / "empty.json").write_text("{}", encoding="utf-8")
    with pytest.raises(PresetError, match="no settings object"):
        load_preset(tmp_path, "empty")


def test_applied_keeps_the_versions_dataset_bound_settings():
    current = {"network_dim": 4, "keep_tokens": 2, "activation_tag": "mine", "seed": 1}
    assert applied(current, {"network_dim": 16, "keep_tokens": 0}) == {
        "network_dim": 16, "keep_tokens": 2, "activation_tag": "mine"}
