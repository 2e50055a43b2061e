"""The built-in demo: a tiny generated model, loaded and run end to end on a CPU in seconds.

``python -m lib_train_tools.demo`` writes a random-weight checkpoint in the real SD1.5 single-file
layout (tiny widths), loads it through the same code path as a user's checkpoint, and runs one
forward pass of each part: tokenizer -> text encoder -> U-Net -> VAE decoder -> VAE encoder.
Then it trains a LoRA for a few steps on four generated images through the real trainer entry
point and prints the loss and the file it wrote.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import cast

import torch

from PIL import Image

from .models.checkpoint_factory import FAMILIES, write_checkpoint
from .models.loader import load_checkpoint
from .models.text_conditioning import encode_sd, encode_sdxl, sdxl_time_ids
from .models.tokenizer import PAD_TOKEN_BY_LAYOUT, ClipTokenizer
from .models.unet import sdxl_size_embedding
from .train.cli import main as train_main
from .train.protocol import DoneEvent, StepEvent, parse_event

DEFAULT_OUTPUT = Path("demo_output")
PROMPT = "1girl, blonde hair, full body, on chair"


def run_demo(output_dir: Path, family: str = "sd1", seed: int = 0, train_steps: int = 30) -> dict[str, tuple[int, ...]]:
    """Build, load and run the demo model, then train a LoRA briefly; returns each stage's output shape."""
    torch.manual_seed(seed)
    ckpt = output_dir / f"demo-{family}.safetensors"
    t0 = time.perf_counter()
    write_checkpoint(ckpt, family=family, seed=seed)
    print(f"[demo] wrote tiny {family} checkpoint {ckpt} ({ckpt.stat().st_size / 2**20:.1f} MiB) "
          f"in {time.perf_counter() - t0:.2f} s")

    models = load_checkpoint(ckpt)
    print(f"[demo] loaded in {models.seconds:.2f} s: {models.architecture.describe()}")
    print(f"[demo] prediction: {models.prediction.name} ({models.prediction.reason})")

    unet, vae = models.unet, models.vae
    assert unet is not None and vae is not None  # load_checkpoint loads every part by default
    shapes: dict[str, tuple[int, ...]] = {}
    with torch.no_grad():
        context, y = _encode_prompt(models, PROMPT)
        shapes["text"] = tuple(context.shape)
        print(f"[demo] text encoder(s): {PROMPT!r} -> context {tuple(context.shape)}")

        latents = torch.randn(1, unet.config.in_channels, 8, 8)
        t = torch.tensor([500])
        eps = unet(latents, t, context, y)
        shapes["unet"] = tuple(eps.shape)
        print(f"[demo] U-Net: latents {tuple(latents.shape)} at t=500 -> prediction {tuple(eps.shape)}")

        image = vae.decode_latents(latents)
        shapes["vae_decode"] = tuple(image.shape)
        print(f"[demo] VAE decoder: latents {tuple(latents.shape)} -> image {tuple(image.shape)}")

        again = vae.encode_latents(image.clamp(-1, 1), sample=False)
        shapes["vae_encode"] = tuple(again.shape)
        print(f"[demo] VAE encoder: image {tuple(image.shape)} -> latents {tuple(again.shape)}")
    print("[demo] every part of the model stack ran")
    if train_steps:
        shapes["lora"] = _train(output_dir, ckpt, train_steps, seed)
    return shapes


def _make_dataset(folder: Path) -> Path:
    """Four small images with captions, in sd-scripts' <repeats>_<name> folder layout."""
    sub = folder / "img" / "2_demo"
    sub.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate([(210, 50, 50), (50, 190, 70), (40, 70, 210), (230, 210, 40)]):
        image = Image.new("RGB", (64, 64), colour)
        for x in range(0, 64, 4):
            image.putpixel((x, (x * (i + 2)) % 64), (255, 255, 255))
        image.save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text(f"demo, colour {i}", encoding="utf-8")
    return folder / "img"


def _train(output_dir: Path, ckpt: Path, steps: int, seed: int) -> tuple[int, ...]:
    """A short LoRA training run through the real trainer entry point."""
    data = _make_dataset(output_dir)
    progress = output_dir / "train-progress.jsonl"
    progress.unlink(missing_ok=True)
    args = ["--pretrained_model_name_or_path", str(ckpt), "--train_data_dir", str(data),
            "--output_dir", str(output_dir / "lora"), "--output_name", "demo-lora", "--resolution", "64",
            "--network_dim", "8", "--network_alpha", "4", "--learning_rate", "2e-3", "--max_train_steps",
            str(steps), "--seed", str(seed), "--progress_file", str(progress)]
    print(f"[demo] training a LoRA for {steps} steps on 4 generated images (python -m lib_train_tools.train ...)")
    code = train_main(args)
    events = [parse_event(line) for line in progress.read_text(encoding="utf-8").splitlines()]
    # The trainer's own "step" lines parse to StepEvents with a loss; its last line is the "done" event.
    step_events = cast("list[StepEvent]", [e for e in events if e.type == "step"])
    losses = cast("list[float]", [e.loss for e in step_events])
    if code != 0:
        raise SystemExit(f"[demo] training failed: {[e for e in events if e.type == 'error']}")
    done = cast(DoneEvent, events[-1])
    print(f"[demo] trained: loss {sum(losses[:5]) / 5:.3f} (first 5 steps) -> {sum(losses[-5:]) / 5:.3f} "
          f"(last 5); LoRA written to {done.path}")
    return (len(losses),)


def _encode_prompt(models, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    ids = [ClipTokenizer(PAD_TOKEN_BY_LAYOUT[slot.layout])([prompt]) for slot in models.architecture.text_encoders]
    if models.family != "sdxl":
        return encode_sd(models.text_encoders[0], ids[0]), None
    context, pooled = encode_sdxl(models.text_encoders[0], models.text_encoders[1], ids[0], ids[1])
    time_ids = sdxl_time_ids((64, 64), (0, 0), (64, 64))
    return context, torch.cat([pooled, sdxl_size_embedding(time_ids)], dim=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT, help="where the demo files go")
    parser.add_argument("--family", choices=FAMILIES, default="sd1", help="which model family to build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=30, help="LoRA training steps (0: skip training)")
    args = parser.parse_args(argv)
    run_demo(args.output_dir, args.family, args.seed, args.train_steps)


if __name__ == "__main__":
    main()
