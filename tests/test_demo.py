"""The README's main command: the demo builds, loads and runs every part of the tiny model."""

import pytest

from lib_train_tools.demo import run_demo


@pytest.mark.parametrize("family,context", [("sd1", (1, 77, 32)), ("sdxl", (1, 77, 128))])
def test_demo_runs_every_part(tmp_path, capsys, family, context):
    shapes = run_demo(tmp_path, family=family, train_steps=12 if family == "sd1" else 0)
    expected = {"text": context, "unet": (1, 4, 8, 8), "vae_decode": (1, 3, 64, 64), "vae_encode": (1, 4, 8, 8)}
    if family == "sd1":
        expected["lora"] = (12,)
        assert (tmp_path / "lora" / "demo-lora.safetensors").is_file()
    assert shapes == expected
    assert (tmp_path / f"demo-{family}.safetensors").is_file()
    out = capsys.readouterr().out
    assert "prediction: epsilon" in out
