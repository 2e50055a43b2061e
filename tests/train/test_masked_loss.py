"""Tests for ``masked_loss``: lib_train_tools/train/data/masks.py (where a mask comes from), its path
through images.py / dataset.py / latent_cache.py, the masked loss in loss.py / step.py, the registry
option, its metadata key, an sd-scripts TOML and a 2-step training run."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open

from lib_train_tools.train import loss as losses
from lib_train_tools.train.cli import main
from lib_train_tools.train.config import load_config
from lib_train_tools.train.data import DataOptions, LatentCache, TrainingDataset
from lib_train_tools.train.data.buckets import BucketChoice, BucketSpec
from lib_train_tools.train.data.errors import DataError
from lib_train_tools.train.data.folders import list_images
from lib_train_tools.train.data.images import prepare_image
from lib_train_tools.train.data.latent_cache import LatentJob, validity_key
from lib_train_tools.train.data.masks import latent_mask, mask_path_for
from lib_train_tools.train.step import StepSettings, compute_loss
from tests.train.test_training_run import events, make_dataset, run_args, tiny_ckpt  # noqa: F401
from tests.train.test_zero_terminal_snr import _metadata

RED = (255, 0, 0)
GREY = (90, 90, 90)


def _rgba(path: Path, size: tuple[int, int], alpha: np.ndarray) -> Path:
    """A grey RGBA PNG with the given (H, W) uint8 alpha channel."""
    rgb = np.full((size[1], size[0], 3), GREY, dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, alpha.astype(np.uint8)]), "RGBA").save(path)
    return path


def _grey(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint8), "L").save(path)
    return path


# ----- where the mask comes from -----

def test_mask_comes_from_the_alpha_channel_read_before_compositing(tmp_path) -> None:
    alpha = np.zeros((16, 32), dtype=np.uint8)
    alpha[:, 16:] = 255  # left half transparent
    alpha[0:8, 16:24] = 51  # one 8x8 block at 20 %
    path = _rgba(tmp_path / "a.png", (32, 16), alpha)
    prepared = prepare_image(path, BucketChoice((32, 16), (32, 16)), flip=False, with_mask=True)
    assert prepared.mask is not None and prepared.mask.shape == (1, 2, 4)
    expected = torch.tensor([[[0.0, 0.0, 0.2, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    torch.testing.assert_close(prepared.mask, expected)
    # the pixels are still composited onto white where transparent (the mask was taken first)
    assert torch.all(prepared.pixels[:, :, :16] == 1.0)
    assert prepared_without_mask(path).mask is None


def prepared_without_mask(path: Path):
    return prepare_image(path, BucketChoice((32, 16), (32, 16)), flip=False)


def test_mask_comes_from_the_mask_file_beside_the_image(tmp_path) -> None:
    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 16), GREY).save(image)
    values = np.full((16, 32), 255, dtype=np.uint8)
    values[:, 24:] = 0
    values[8:, 0:8] = 128  # grey: a partial weight
    assert mask_path_for(image) == tmp_path / "cat.mask.png"
    _grey(tmp_path / "cat.mask.png", values)
    mask = prepare_image(image, BucketChoice((32, 16), (32, 16)), flip=False, with_mask=True).mask
    expected = torch.tensor([[[1.0, 1.0, 1.0, 0.0], [128 / 255, 1.0, 1.0, 0.0]]])
    torch.testing.assert_close(mask, expected)
    # the mask file is no training image of its own
    assert list_images(tmp_path) == [image]


def test_an_opaque_alpha_lets_the_mask_file_apply_and_no_mask_means_ones(tmp_path) -> None:
    opaque = _rgba(tmp_path / "o.png", (32, 16), np.full((16, 32), 255))
    _grey(tmp_path / "o.mask.png", np.zeros((16, 32)))
    choice = BucketChoice((32, 16), (32, 16))
    assert torch.all(prepare_image(opaque, choice, False, with_mask=True).mask == 0.0)
    plain = tmp_path / "p.png"
    Image.new("RGB", (32, 16), GREY).save(plain)
    assert torch.equal(prepare_image(plain, choice, False, with_mask=True).mask, torch.ones(1, 2, 4))


def test_a_mask_file_of_another_size_is_refused(tmp_path) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 16), GREY).save(image)
    _grey(tmp_path / "a.mask.png", np.zeros((16, 16)))
    with pytest.raises(DataError, match=r"a.mask.png' is 16x16 but its image is 32x16"):
        prepare_image(image, BucketChoice((32, 16), (32, 16)), False, with_mask=True)


# ----- same geometry as the image -----

def _marked(tmp_path: Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> Path:
    """A grey image with a red box, and a white mask file that is black on the same box."""
    image = Image.new("RGB", size, GREY)
    image.paste(RED, box)
    path = tmp_path / "m.png"
    image.save(path)
    values = np.full((size[1], size[0]), 255, dtype=np.uint8)
    values[box[1]:box[3], box[0]:box[2]] = 0
    _grey(tmp_path / "m.mask.png", values)
    return path


def test_a_marked_corner_follows_the_flip(tmp_path) -> None:
    # 48x16 image, centred 32x16 crop from x=8: the marked block x 8..15, y 0..7 is the crop's top-left cell
    path = _marked(tmp_path, (48, 16), (8, 0, 16, 8))
    choice = BucketChoice((32, 16), (48, 16))
    plain = prepare_image(path, choice, flip=False, with_mask=True).mask
    flipped = prepare_image(path, choice, flip=True, with_mask=True).mask
    expected = torch.ones(1, 2, 4)
    expected[0, 0, 0] = 0.0
    torch.testing.assert_close(plain, expected)
    torch.testing.assert_close(flipped, expected.flip(-1))  # now the top-right cell


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_mask_gets_the_same_random_crop_and_flip_as_the_pixels(tmp_path, seed) -> None:
    path = _marked(tmp_path, (48, 24), (13, 5, 27, 19))  # not aligned to the 8-pixel grid
    choice = BucketChoice((32, 16), (48, 24))
    prepared = prepare_image(path, choice, flip=seed % 2 == 1, crop_rng=random.Random(seed), with_mask=True)
    red = ((prepared.pixels[0] > 0.9) & (prepared.pixels[1] < -0.9)).float()  # where the image is red
    torch.testing.assert_close(prepared.mask, 1.0 - latent_mask(red[None]))


def test_latent_mask_is_the_8x8_area_average() -> None:
    pixels = torch.zeros(1, 16, 24)
    pixels[0, :8, :4] = 1.0  # half of cell (0, 0)
    pixels[0, 8:, 16:] = 0.25  # all of cell (1, 2)
    torch.testing.assert_close(latent_mask(pixels), torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.0, 0.25]]]))
    with pytest.raises(ValueError, match="multiple of 8"):
        latent_mask(torch.ones(1, 12, 16))


# ----- the dataset and the latent cache -----

def _masked_dataset(tmp_path: Path, flip: bool = True) -> TrainingDataset:
    folder = tmp_path / "data" / "1_x"
    folder.mkdir(parents=True)
    alpha = np.full((32, 32), 255, dtype=np.uint8)
    alpha[:, :16] = 0
    _rgba(folder / "a.png", (32, 32), alpha)
    Image.new("RGB", (32, 32), GREY).save(folder / "b.png")
    values = np.zeros((32, 32), dtype=np.uint8)
    values[:8, :8] = 255
    _grey(folder / "b.mask.png", values)
    Image.new("RGB", (32, 32), GREY).save(folder / "c.png")
    options = DataOptions(train_dir=tmp_path / "data", batch_size=3, seed=1, flip_aug=flip, masked_loss=True,
                          buckets=BucketSpec(resolution=(32, 32), enabled=False))
    return TrainingDataset.from_folders(options)


def _encode(pixels: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(pixels, 8).repeat(1, 2, 1, 1)[:, :4]


def test_batches_carry_latent_size_masks_from_pixels_and_from_the_cache(tmp_path) -> None:
    dataset = _masked_dataset(tmp_path)
    assert [item.path.name for item in dataset.items] == ["a.png", "b.png", "c.png"]  # b.mask.png is no image
    cache = LatentCache(_encode, "fake", to_disk=True)
    assert cache.fill(dataset.latent_jobs()) == 3
    for epoch in range(3):
        planned = dataset.epoch_batches(epoch)[0]
        from_pixels = dataset.load_batch(planned, epoch)
        from_cache = dataset.load_batch(planned, epoch, cache)
        assert from_pixels.masks is not None and from_pixels.masks.shape == (3, 1, 4, 4)
        torch.testing.assert_close(from_cache.masks, from_pixels.masks)
        for sample, mask, flip in zip(planned.samples, from_pixels.masks, from_pixels.flipped):
            name = dataset.items[sample.item].path.name
            expected = {"a.png": torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(4, 4),
                        "b.png": F.pad(torch.ones(1, 1), (0, 3, 0, 3)),
                        "c.png": torch.ones(4, 4)}[name]
            torch.testing.assert_close(mask[0], expected.flip(-1) if flip else expected)
    unmasked = TrainingDataset.from_folders(DataOptions(train_dir=tmp_path / "data", batch_size=3, seed=1))
    assert unmasked.load_batch(unmasked.epoch_batches(0)[0], 0).masks is None


def test_a_changed_mask_file_invalidates_the_cached_entry(tmp_path) -> None:
    dataset = _masked_dataset(tmp_path, flip=False)
    jobs = {job.path.name: job for job in dataset.latent_jobs()}
    before = validity_key(jobs["b.png"], "fake")
    assert before["mask"].startswith("file:") and validity_key(jobs["c.png"], "fake")["mask"] == "none"
    # a job without a mask keeps the key it always had (existing caches stay valid)
    assert "mask" not in validity_key(LatentJob(jobs["b.png"].path, jobs["b.png"].choice, False), "fake")
    LatentCache(_encode, "fake", to_disk=True).fill(list(jobs.values()))
    _grey(mask_path_for(jobs["b.png"].path), np.full((32, 32), 255))
    assert validity_key(jobs["b.png"], "fake") != before
    fresh = LatentCache(_encode, "fake", to_disk=True)
    assert fresh.fill(list(jobs.values())) == 1  # only b.png is re-encoded
    assert torch.equal(fresh.get_mask(jobs["b.png"], False), torch.ones(1, 4, 4))
    mask_path_for(jobs["c.png"].path).write_bytes(mask_path_for(jobs["b.png"].path).read_bytes())
    assert LatentCache(_encode, "fake", to_disk=True).fill(list(jobs.values())) == 1  # a new mask file: c.png


def test_held_out_images_keep_their_masks_for_the_validation_loss(tmp_path) -> None:
    dataset = _masked_dataset(tmp_path)
    options = DataOptions(train_dir=tmp_path / "data", batch_size=3, seed=1, flip_aug=True, masked_loss=True,
                          validation_split=0.34, buckets=BucketSpec(resolution=(32, 32), enabled=False))
    split = TrainingDataset.from_folders(options)
    assert split.held_out is not None and len(split.held_out.items) == 1
    batch = split.held_out.load_item(0)
    assert batch.masks is not None and batch.masks.shape == (1, 1, 4, 4) and batch.flipped == (False,)
    name = split.held_out.items[0].path.name
    full = dataset.load_batch(dataset.epoch_batches(0)[0], 0)
    index = [p.name for p in full.paths].index(name)
    expected = full.masks[index].flip(-1) if full.flipped[index] else full.masks[index]
    torch.testing.assert_close(batch.masks[0], expected)


# ----- the loss -----

def test_an_all_ones_mask_gives_the_unmasked_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 4, 3, 5, generator=gen), torch.randn(2, 4, 3, 5, generator=gen)
    ones = torch.ones(2, 1, 3, 5)
    for kind in losses.LOSS_KINDS:
        torch.testing.assert_close(losses.per_sample_loss(pred, target, kind, 0.3, ones),
                                   losses.per_sample_loss(pred, target, kind, 0.3))


def test_a_half_mask_gives_the_hand_computed_loss() -> None:
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])
    # (1 * 1 + 4 * 0 + 9 * 0.5 + 16 * 0) / 4 elements (not / mask sum 1.5), as sd-scripts divides
    assert losses.per_sample_loss(pred, target, "l2", mask=mask).item() == pytest.approx(5.5 / 4)
    assert losses.per_sample_loss(pred, target, "l1", mask=mask).item() == pytest.approx((1 + 1.5) / 4)
    # a pixel-size mask is area-averaged to the loss's size first
    fine = torch.tensor([[[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]]])
    assert losses.per_sample_loss(pred, target, "l2", mask=fine).item() == pytest.approx(5.5 / 4)
    with pytest.raises(losses.LossError, match="does not fit"):
        losses.per_sample_loss(pred, target, "l2", mask=torch.ones(1, 2, 2, 2))


def test_masked_out_pixels_do_not_change_the_loss_or_its_gradient() -> None:
    settings = StepSettings(family="sd1", v_prediction=False, min_snr_gamma=5.0)
    gen = torch.Generator().manual_seed(3)
    latents, noise = torch.randn(2, 4, 4, 4, generator=gen), torch.randn(2, 4, 4, 4, generator=gen)
    t = torch.tensor([100, 700])
    masks = torch.ones(2, 1, 4, 4)
    masks[:, :, :, 2:] = 0.0
    other_noise = noise.clone()
    other_noise[:, :, :, 2:] += 5.0  # a different target where the mask is 0
    results = []
    for target_noise in (noise, other_noise):
        pred = torch.zeros(2, 4, 4, 4, requires_grad=True)
        loss = compute_loss(pred, latents, target_noise, t, torch.ones(2), settings, masks)
        loss.backward()
        assert pred.grad is not None
        assert torch.all(pred.grad[:, :, :, 2:] == 0)
        results.append((loss.detach(), pred.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    unmasked = compute_loss(torch.zeros(2, 4, 4, 4), latents, noise, t, torch.ones(2), settings)
    assert results[0][0].item() < unmasked.item()


# ----- option, metadata, TOML and a training run -----

def test_metadata_records_masked_loss(tmp_path) -> None:
    assert _metadata(tmp_path, False, False, masked_loss=True)["ss_masked_loss"] == "True"
    assert _metadata(tmp_path, False, False)["ss_masked_loss"] == "False"


def test_sd_scripts_toml_with_masked_loss_loads(tmp_path) -> None:
    path = tmp_path / "masked.toml"
    path.write_text('[model_arguments]\npretrained_model_name_or_path = "/m.safetensors"\n'
                    '[dataset_arguments]\ntrain_data_dir = "/data"\n'
                    '[training_arguments]\noutput_dir = "/out"\nmasked_loss = true\n', encoding="utf-8")
    cfg, warnings = load_config(str(path))
    assert cfg.masked_loss is True
    assert not [w for w in warnings if "masked_loss" in w or "unknown" in w], warnings


def test_two_step_run_with_masked_loss(tiny_ckpt, tmp_path) -> None:  # noqa: F811
    data, out = make_dataset(tmp_path, count=2, folder="1_demo"), tmp_path / "out"
    (data / "1_demo" / "00.png").unlink()  # 00: RGBA with a transparent half; 01: a mask file that blanks all
    alpha = np.full((64, 64), 255, dtype=np.uint8)
    alpha[:, :32] = 0
    _rgba(data / "1_demo" / "00.png", (64, 64), alpha)
    _grey(data / "1_demo" / "01.mask.png", np.zeros((64, 64)))
    code = main(run_args(tiny_ckpt, data, out, max_train_steps=2, masked_loss=True, cache_latents=True,
                         train_batch_size=1))
    assert code == 0
    step_losses = [e.loss for e in events(out) if e.type == "step"]
    assert len(step_losses) == 2
    assert sorted(loss == 0.0 for loss in step_losses) == [False, True]  # the all-black mask: loss exactly 0
    with safe_open(str(out / "tiny.safetensors"), "pt") as handle:
        assert handle.metadata()["ss_masked_loss"] == "True"
