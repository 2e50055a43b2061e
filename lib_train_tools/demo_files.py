"""Files for the standalone app's demo: a tiny base model, a small dataset and a CPU preset.

``prepare_demo(checkpoints, dataset, output_root)`` writes a random-weight SD1 checkpoint with
tiny widths into the checkpoints folder, six small generated pictures with captions into the
dataset folder (four loose, two inside ``more-pictures.zip``, so both upload paths are
tried), and the preset ``demo-cpu`` (64-pixel training that finishes on a CPU in about a
minute) into ``<output_root>/presets/``. Existing files are reused, so a second start is quick.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .presets import list_presets, save_preset

DEMO_PRESET = "demo-cpu"
DEMO_CHECKPOINT = "demo-sd1.safetensors"
ZIP_NAME = "more-pictures.zip"
# (file stem, background, shape colour, shape, caption)
PICTURES = (
    ("red-circle", (245, 240, 230), (200, 40, 40), "circle", "red circle, white background"),
    ("blue-square", (245, 240, 230), (40, 70, 200), "square", "blue square, white background"),
    ("green-circle", (30, 30, 40), (50, 190, 80), "circle", "green circle, dark background"),
    ("yellow-square", (30, 30, 40), (230, 200, 40), "square", "yellow square, dark background"),
    ("purple-circle", (220, 230, 245), (140, 60, 170), "circle", "purple circle, blue background"),
    ("orange-square", (220, 230, 245), (240, 140, 30), "square", "orange square, blue background"),
)
LOOSE_PICTURES = 4
# Small enough for a CPU: 64-pixel images, a narrow LoRA, two epochs (a 2-row preview grid).
DEMO_SETTINGS = {
    "resolution": "64", "network_dim": 8, "network_alpha": 4.0, "train_batch_size": 2,
    "max_train_epochs": 2, "repeats": 4, "learning_rate": 0.01, "save_every_n_epochs": 1,
    "sample_prompt": "demo, red circle --w 64 --h 64 --s 8", "base_model": DEMO_CHECKPOINT,
}


@dataclass(frozen=True)
class DemoFiles:
    checkpoint: Path
    dataset: Path
    loose_files: tuple[Path, ...]
    zip_file: Path
    preset: str


def picture(background, colour, shape: str, size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    box = (size // 5, size // 5, size - size // 5, size - size // 5)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    return image


def prepare_demo(checkpoints: Path, dataset: Path, output_root: Path) -> DemoFiles:
    checkpoint = checkpoints / DEMO_CHECKPOINT
    if not checkpoint.is_file():
        from .models.checkpoint_factory import write_checkpoint

        write_checkpoint(checkpoint, family="sd1", seed=0)
    dataset.mkdir(parents=True, exist_ok=True)
    loose: list[Path] = []
    zip_path = dataset / ZIP_NAME
    with zipfile.ZipFile(zip_path, "w") as archive:
        for index, (stem, background, colour, shape, caption) in enumerate(PICTURES):
            image = picture(background, colour, shape)
            text = f"demo, {caption}"
            if index < LOOSE_PICTURES:
                image.save(dataset / f"{stem}.png")
                (dataset / f"{stem}.txt").write_text(text, encoding="utf-8")
                loose += [dataset / f"{stem}.png", dataset / f"{stem}.txt"]
            else:
                archive.writestr(f"pictures/{stem}.png", _png_bytes(image))
                archive.writestr(f"pictures/{stem}.txt", text)
    presets_dir = output_root / "presets"
    if DEMO_PRESET not in list_presets(presets_dir):
        save_preset(presets_dir, DEMO_PRESET, DEMO_SETTINGS)
    return DemoFiles(checkpoint, dataset, tuple(loose), zip_path, DEMO_PRESET)


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def instructions(files: DemoFiles, url: str, lora_dir: Path | None = None) -> str:
    """What to click, printed when the demo app starts."""
    published = f" ({lora_dir})" if lora_dir else ""
    return "\n".join([
        f"[demo] base model: {files.checkpoint}",
        f"[demo] dataset: {files.dataset} ({LOOSE_PICTURES} pictures with captions, and {files.zip_file.name})",
        f"[demo] open {url} in a browser, then:",
        "  1. Project: type a name (any language, e.g. shapes), press Create project; type v1, press Create version",
        f"  2. Dataset: drop every file of {files.dataset.resolve()} (the zip too) on the drop zone "
        "(or Choose files…); set width and height to 64 under Preprocessing and press Preprocess",
        "  3. Tags (further down the Dataset tab): type an activation tag, e.g. shapes, press Set activation tag",
        f"  4. Train: open 'Presets and other versions', choose {files.preset}, press Load preset",
        "  5. Press Begin train: the bar, the loss chart and the samples follow the run (about a minute on a CPU)",
        "  6. Results: choose the run; Width and Height should be 64 (the run's size), set Steps to 8 (the demo "
        "model is tiny), press Render preview (rows: epochs, columns: LoRA weights; the prompt starts with the "
        "activation tag)",
        f"  7. Publish: the finished run is already in the LoRA folder{published} as <project>-v1 (published when "
        "training ended, as the run's summary says); type another name and press Publish, then Rename instead",
    ])
