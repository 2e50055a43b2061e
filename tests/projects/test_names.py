"""Name validation: every refusal says why; names people type (Japanese, emoji) are accepted."""

import pytest

from lib_train_tools.projects.names import InvalidNameError, validate_name


@pytest.mark.parametrize(
    "name, reason_part",
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "current and parent"),
        ("..", "current and parent"),
        ("a/b", "slash"),
        ("a\\b", "slash"),
        ("CON", "reserved device name"),
        ("con.txt", "reserved device name"),
        ("lpt1", "reserved device name"),
        ("tab\there", "control character"),
        ("what?", "Windows does not allow"),
        ("ends.", "ends with a dot"),
        (".hidden", "starts with a dot"),
        ("x" * 81, "81 characters"),
    ],
)
def test_refused_names_say_why(name, reason_part):
    with pytest.raises(InvalidNameError) as caught:
        validate_name(name, "project name")
    assert reason_part in caught.value.reason
    assert "project name" in str(caught.value)


@pytest.mark.parametrize(
    "name", ["日本語プロジェクト 🎨", "my lora v2", "Ünïcödé", "CONSOLE", "a.b", "x" * 80]
)
def test_accepted_names(name):
    assert validate_name(name) == name


def test_name_is_normalised_and_trimmed():
    decomposed = "Cafe\u0301"  # e + combining accent
    assert validate_name("  " + decomposed + " ") == "Caf\u00e9"


def test_over_long_in_bytes_is_refused():
    assert validate_name("🎨" * 50) == "🎨" * 50  # 200 bytes: room is left for "<repeats>_" and suffixes
    with pytest.raises(InvalidNameError, match="204 bytes in UTF-8 \\(at most 200\\)"):
        validate_name("🎨" * 51)
