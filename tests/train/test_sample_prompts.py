"""Tests for the sample-prompt file: .txt flags, .toml defaults and subsets, .json lists, warnings."""

from __future__ import annotations

import json

import pytest

from lib_train_tools.train.sample_prompts import (
    SamplePrompt, SamplePromptError, load_sample_prompts, parse_prompt_line, round_size,
)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_flags_comments_and_defaults(tmp_path) -> None:
    path = _write(tmp_path, "prompts.txt", "\n".join([
        "# a comment",
        "",
        "masterpiece, 1girl --n lowres, bad hands --w 770 --h 500 --d 42 --s 20 --l 5.5 --ss k_euler_a",
        "  a plain prompt  ",
    ]))
    loaded = load_sample_prompts(path, default_width=1024, default_height=768)
    assert loaded.warnings == ("line 3: --w 770 rounded to 768 (a multiple of 8, at least 64)",
                               "line 3: --h 500 rounded to 496 (a multiple of 8, at least 64)")
    assert loaded.prompts == (
        SamplePrompt("masterpiece, 1girl", "lowres, bad hands", 768, 496, 42, 20, 5.5, "k_euler_a"),
        SamplePrompt("a plain prompt", width=1024, height=768),
    )
    assert loaded.prompts[1].seed is None and loaded.prompts[1].steps == 30 and loaded.prompts[1].cfg_scale == 7.5


def test_txt_bad_and_unknown_flags_warn(tmp_path) -> None:
    prompt, warnings = parse_prompt_line("cat --w abc --s 5000 --zz 1 --g 3.5 --h 10")
    assert prompt == SamplePrompt("cat", width=512, height=64, steps=1000)
    assert warnings == ["unknown flag --zz ignored", "--w 'abc' is not a valid int; ignored",
                        "--s 5000 is outside 1..1000; using 1000",
                        "--h 10 rounded to 64 (a multiple of 8, at least 64)"]
    loaded = load_sample_prompts(_write(tmp_path, "p.txt", "--n only negative\n"))
    assert loaded.prompts == () and "no prompt text" in loaded.warnings[0]


def test_toml_defaults_merge_into_subsets(tmp_path) -> None:
    path = _write(tmp_path, "prompts.toml", """
[prompt]
negative_prompt = "lowres"
width = 640
sample_steps = 12
scale = 6

[[prompt.subset]]
prompt = "a house"
seed = 3

[[prompt.subset]]
prompt = "a tree"
width = 320
sample_sampler = "ddim"
enum = 2
""")
    loaded = load_sample_prompts(path)
    assert loaded.prompts == (
        SamplePrompt("a house", "lowres", 640, 512, 3, 12, 6.0),
        SamplePrompt("a tree", "lowres", 320, 512, None, 12, 6.0, "ddim"),
    )
    assert loaded.warnings == ("entry 2: unknown key 'enum' ignored",)


def test_json_list_of_dicts(tmp_path) -> None:
    entries = [{"prompt": "a dog", "height": 256, "seed": 9, "scale": 4.0},
               {"negative_prompt": "only"}, "not a dict", {"prompt": "x", "width": "wide"}]
    loaded = load_sample_prompts(_write(tmp_path, "p.json", json.dumps(entries)))
    assert loaded.prompts == (SamplePrompt("a dog", height=256, seed=9, cfg_scale=4.0), SamplePrompt("x"))
    assert loaded.warnings == ("entry 2: no prompt; skipped", "entry 3: expected a table of settings, got str; skipped",
                               "entry 4: width 'wide' is not a valid int; ignored")


@pytest.mark.parametrize("name, text, reason", [
    ("p.yaml", "x", "unknown prompt file type '.yaml'"),
    ("p.json", "{\"prompt\": 1}", "must hold a list"),
    ("p.json", "[{", "not valid JSON"),
    ("p.toml", "prompt = 'x'", "needs a \\[prompt\\] table"),
    ("p.toml", "[prompt\n", "not valid TOML"),
])
def test_unreadable_files_raise_with_the_path(tmp_path, name: str, text: str, reason: str) -> None:
    with pytest.raises(SamplePromptError, match=reason) as info:
        load_sample_prompts(_write(tmp_path, name, text))
    assert name in str(info.value)
    with pytest.raises(SamplePromptError, match="cannot read"):
        load_sample_prompts(tmp_path / "missing.txt")


def test_round_size() -> None:
    assert [round_size(v) for v in (0, 63, 64, 71, 72, 1023)] == [64, 64, 64, 64, 72, 1016]
