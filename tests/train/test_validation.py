"""Validation loss: the held-out split, the fixed draws (across epochs and a resume), the value
itself against a hand computation, and the progress events (CPU, tiny models)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.train import validation
from lib_train_tools.train.cli import main
from lib_train_tools.train.data import DataOptions, ImageItem, TrainingDataset
from lib_train_tools.train.data.held_out import held_out_count, split_held_out
from lib_train_tools.train.data.seeds import derive_seed
from lib_train_tools.train.protocol import ValidationEvent, event_to_json, parse_event

from .test_training_run import _StopAfter, events, make_dataset, run_args


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("base") / "tiny-sd1.safetensors", family="sd1", seed=3)


@pytest.fixture
def one_thread():
    """One CPU thread: with several, reductions split differently from call to call (see test_training_run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _item(folder: str, name: str, is_reg: bool = False) -> ImageItem:
    return ImageItem(Path("/data") / folder / name, "", None, 1, is_reg, "demo", folder, (64, 64))


def _items() -> list[ImageItem]:
    train = [_item("2_a", f"{i:02d}.png") for i in range(6)] + [_item("1_b", f"{i:02d}.png") for i in range(4)]
    return train + [_item("1_reg", f"{i:02d}.png", is_reg=True) for i in range(5)]


# ----- the split -----

def test_the_split_is_deterministic_and_independent_of_the_listing_order():
    items = _items()
    first = split_held_out(items, 0.2, seed=5)
    shuffled = list(items)
    random.Random(1).shuffle(shuffled)
    again = split_held_out(shuffled, 0.2, seed=5)
    assert len(first.held_out) == 2 == held_out_count(10, 0.2)
    assert set(first.held_out) == set(again.held_out)
    assert first.train == tuple(i for i in items if i not in first.held_out)  # the listing order kept
    others = {frozenset(split_held_out(items, 0.2, seed=s).held_out) for s in range(20)}
    assert len(others) > 3  # the seed chooses


def test_regularisation_images_are_never_held_out_and_every_folder_keeps_one():
    items = _items()
    split = split_held_out(items, 0.9, seed=3)
    assert all(not item.is_reg for item in split.held_out)
    assert [i for i in split.train if i.is_reg] == [i for i in items if i.is_reg]
    kept = {item.folder for item in split.train if not item.is_reg}
    assert kept == {"2_a", "1_b"}
    assert len(split.held_out) == 8 and split.note is None  # round(0.9 * 10) = 9, one short: a folder keeps one


def test_too_few_images_give_a_note_not_an_error():
    one = [_item("3_solo", "00.png"), _item("1_reg", "00.png", is_reg=True)]
    split = split_held_out(one, 0.5, seed=1)
    assert split.held_out == () and split.train == tuple(one)
    assert split.note and "too few" in split.note and "without a validation loss" in split.note
    assert split_held_out(one, 0.0, seed=1).note is None  # not asked: nothing to say
    assert held_out_count(4, 0.125) == 1 and held_out_count(4, 0.1) == 0  # 0.5 rounds up, 0.4 down


def test_held_out_images_are_never_in_a_training_batch(tmp_path):
    data = make_dataset(tmp_path, count=4)
    options = DataOptions(train_dir=data, seed=7, flip_aug=True, validation_split=0.5, validation_seed=11)
    dataset = TrainingDataset.from_folders(options)
    held = dataset.held_out
    assert held is not None and len(held.items) == 2 and len(dataset.items) == 2
    held_paths = {item.path for item in held.items}
    for epoch in range(4):
        for batch in dataset.epoch_batches(epoch):
            assert not {dataset.items[s.item].path for s in batch.samples} & held_paths
    assert dataset.batches_per_epoch() == 4  # 2 images x 2 repeats
    assert {job.path for job in dataset.latent_jobs()} == {item.path for item in held.items + dataset.items}
    loaded = held.load_item(0)
    assert loaded.flipped == (False,) and loaded.captions[0].startswith("demo, colour")
    same = TrainingDataset.from_folders(options).held_out
    assert same is not None and [i.path for i in same.items] == [i.path for i in held.items]
    assert "2 image(s) held out" in dataset.describe_steps(dataset.plan_steps(max_train_epochs=1))


# ----- the protocol -----

def test_the_validation_event_round_trips_and_older_readers_skip_it():
    event = ValidationEvent(step=12, epoch=2, epoch_end=True, loss=0.25, images=3, draws=4, time=5.0)
    assert parse_event(event_to_json(event)) == event
    assert '"type": "validation"' in event_to_json(event)
    assert parse_event(event_to_json(ValidationEvent(loss=float("nan")))).loss is None


# ----- runs -----

def _record_draws(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every (noise, timesteps) the validation draws, in order."""
    drawn: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = validation.add_training_noise

    def recording(latents, settings, generator):
        noisy, noise, t = real(latents, settings, generator)
        drawn.append((noise.clone(), t.clone()))
        return noisy, noise, t

    monkeypatch.setattr(validation, "add_training_noise", recording)
    return drawn


def _validations(out: Path) -> list[ValidationEvent]:
    return [e for e in events(out) if e.type == "validation"]


COMMON = dict(max_train_steps=None, max_train_epochs=2, save_precision="float", network_dropout=0.1,
              validation_split=0.5, validation_seed=11)


def test_every_epoch_measures_the_same_draws(tiny_ckpt, tmp_path, monkeypatch, one_thread):
    drawn = _record_draws(monkeypatch)
    data, out = make_dataset(tmp_path, count=4), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, **COMMON)) == 0
    checks = _validations(out)
    assert [(e.epoch, e.step, e.epoch_end, e.images, e.draws) for e in checks] == [(1, 4, True, 2, 4),
                                                                                   (2, 8, True, 2, 4)]
    per_epoch = 2 * validation.DRAWS_PER_IMAGE
    assert len(drawn) == 2 * per_epoch
    for (noise_1, t_1), (noise_2, t_2) in zip(drawn[:per_epoch], drawn[per_epoch:]):
        assert torch.equal(noise_1, noise_2) and torch.equal(t_1, t_2)
    assert len({int(t) for _, t in drawn[:per_epoch]}) > 1  # several timesteps, not one repeated
    assert checks[0].loss != checks[1].loss  # the weights changed in between, the draws did not


def test_a_resumed_run_measures_what_an_uninterrupted_one_does(tiny_ckpt, tmp_path, monkeypatch, one_thread):
    data = make_dataset(tmp_path, count=4)
    straight, split, resumed = tmp_path / "straight", tmp_path / "split", tmp_path / "resumed"
    drawn = _record_draws(monkeypatch)
    assert main(run_args(tiny_ckpt, data, straight, **COMMON)) == 0
    straight_draws = list(drawn)
    drawn.clear()
    import lib_train_tools.train.cli as cli
    monkeypatch.setattr(cli, "StopFlag", lambda: _StopAfter(6))  # stop in epoch 2, after epoch 1 was measured
    assert main(run_args(tiny_ckpt, data, split, **COMMON)) == 0
    assert events(split)[-1].status == "cancelled"
    monkeypatch.setattr(cli, "StopFlag", cli.StopFlag)
    assert main(run_args(tiny_ckpt, data, resumed, resume=split / "tiny-state", **COMMON)) == 0
    assert len(drawn) == len(straight_draws) == 16
    for (noise_a, t_a), (noise_b, t_b) in zip(straight_draws, drawn):
        assert torch.equal(noise_a, noise_b) and torch.equal(t_a, t_b)
    expected = [(e.epoch, e.loss) for e in _validations(straight)]
    got = [(e.epoch, e.loss) for e in _validations(split) + _validations(resumed)]
    assert [epoch for epoch, _ in got] == [1, 2]
    for (_, a), (_, b) in zip(expected, got):
        assert b == pytest.approx(a, abs=1e-6)


def test_measuring_does_not_change_the_training(tiny_ckpt, tmp_path, one_thread):
    """Dropout, the LoRA multiplier and the training's random numbers are as they were after a measurement."""
    data = make_dataset(tmp_path, count=4)
    measured, unmeasured = tmp_path / "measured", tmp_path / "unmeasured"
    assert main(run_args(tiny_ckpt, data, measured, validate_every_n_steps=1, **COMMON)) == 0
    assert main(run_args(tiny_ckpt, data, unmeasured, validate_every_n_epochs=5, **COMMON)) == 0
    assert len(_validations(measured)) == 8 + 2 - 1 and not _validations(unmeasured)  # not at the last step
    losses = [[e.loss for e in events(out) if e.type == "step"] for out in (measured, unmeasured)]
    assert losses[0] == losses[1]


def test_too_few_images_warn_and_train_without_validation(tiny_ckpt, tmp_path):
    data, out = make_dataset(tmp_path, count=1, folder="4_one"), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=2, validation_split=0.3)) == 0
    warnings = [e.message for e in events(out) if e.type == "warning"]
    assert any("too few to hold one out" in w for w in warnings), warnings
    assert not _validations(out) and events(out)[-1].status == "completed"


def test_the_loss_equals_a_hand_computation(tiny_ckpt, tmp_path, monkeypatch, one_thread):
    """One held-out image: L = 1/K sum_k mean((eps_theta(x_t_k, t_k, c) - eps_k)^2), with eps_k and t_k
    drawn in turn from a generator seeded by (validation_seed, "<folder>/<file>"), the LoRA at
    multiplier 1 without dropout, whatever the training had set."""
    data, out = make_dataset(tmp_path, count=4, folder="1_demo"), tmp_path / "out"
    seen: dict = {}
    real = validation.maybe_validate

    def check(s, progress, validator, epoch, step, epoch_end):
        if not epoch_end or "hand" in seen:
            return real(s, progress, validator, epoch, step, epoch_end)
        seen["hand"] = _by_hand(s, validator, seed=23)
        s.network.set_multiplier(0.5)  # what a measurement must not use, and must give back
        s.network.train()
        result = real(s, progress, validator, epoch, step, epoch_end)
        seen["result"], seen["after"] = result, ({m.multiplier for m in s.network.loras()}, s.network.training)
        return result

    import lib_train_tools.train.loop as loop
    monkeypatch.setattr(loop, "maybe_validate", check)
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=None, max_train_epochs=1, cache_latents=True,
                         network_dropout=0.5, validation_split=0.25, validation_seed=23)) == 0
    assert seen["result"].image_losses == pytest.approx([seen["hand"]], rel=1e-5)
    assert seen["result"].loss == pytest.approx(seen["hand"], rel=1e-5)
    assert seen["after"] == ({0.5}, True)
    assert _validations(out)[0].loss == pytest.approx(seen["hand"], rel=1e-5)


def _by_hand(s, validator, seed: int) -> float:
    held = validator.held_out
    assert held is not None and len(held.items) == 1
    item = held.items[0]
    from lib_train_tools.train.data import LatentJob
    latents = s.latent_cache.get(LatentJob(item.path, held.choices[0], False), False)[None].float()
    caption = item.path.with_suffix(".txt").read_text(encoding="utf-8")
    from lib_train_tools.train.step import encode_text
    generator = torch.Generator().manual_seed(derive_seed(seed, f"validation:1_demo/{item.path.name}"))
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1 - betas, 0)
    was_training = s.network.training
    s.network.eval()
    total = 0.0
    with torch.no_grad():
        context, _ = encode_text(s.models, s.tokenizers, [caption], s.settings, s.device)
        for _ in range(validation.DRAWS_PER_IMAGE):
            noise = torch.randn(latents.shape, generator=generator)
            t = torch.randint(0, 1000, (1,), generator=generator)
            a = alpha_bar[t].float().reshape(1, 1, 1, 1)
            noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
            pred = s.models.unet(noisy, t, context, None)
            total += float(((pred.float() - noise) ** 2).mean())
    s.network.train(was_training)
    return total / validation.DRAWS_PER_IMAGE
