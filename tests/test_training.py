"""Training-loop tests on a tiny MONAI UNet and real ChestX-ray14 images."""

from __future__ import annotations

import torch

from xray_restore.datasets import load_cxr14_cache, to_model_space
from xray_restore.networks import build_prior_unet, build_scheduler, load_weights
from xray_restore.training import TrainConfig, Trainer, epsilon_loss, fixed_epsilon_loss

TINY = {"channels": (8, 16), "attention_levels": (False, False), "num_head_channels": 8, "norm_num_groups": 8}


def make_trainer(images, out_dir, **config):
    torch.manual_seed(0)
    scheduler = build_scheduler()
    model = build_prior_unet(**TINY)
    cfg = TrainConfig(**{"max_steps": 30, "batch_size": 8, "lr": 2e-3, "warmup_steps": 0, "val_every": 10,
                         "checkpoint_every": 10, "autocast": False, **config})
    val = images[:8]
    return Trainer(model, epsilon_loss(scheduler), images, out_dir, cfg,
                   val_fn=lambda m: fixed_epsilon_loss(m, scheduler, val, timesteps=(100, 500), autocast=False))


def test_loss_decreases_and_checkpoints_are_written(cxr14_cache, tmp_path):
    images = to_model_space(load_cxr14_cache(cxr14_cache, "train")["images"][:64, 16:48, 16:48])
    trainer = make_trainer(images, tmp_path)
    before = trainer.validate()
    trainer.fit(progress=False)
    after = fixed_epsilon_loss(trainer.model, build_scheduler(), images[:8], timesteps=(100, 500), autocast=False)
    assert after < 0.8 * before, (before, after)
    for name in ("checkpoint.pt", "model.pt", "ema_last.pt", "log.csv"):
        assert (tmp_path / name).is_file()
    assert len((tmp_path / "log.csv").read_text().strip().splitlines()) == 1 + 3
    # the shipped-weights format: a plain state dict that weights_only loading accepts
    loaded = load_weights(build_prior_unet(**TINY), tmp_path / "model.pt")
    assert not loaded.training


def test_resume_reproduces_uninterrupted_run(cxr14_cache, tmp_path):
    images = to_model_space(load_cxr14_cache(cxr14_cache, "train")["images"][:32, 16:48, 16:48])
    straight = make_trainer(images, tmp_path / "a", max_steps=12, val_every=6, checkpoint_every=6)
    straight.fit(progress=False)

    first = make_trainer(images, tmp_path / "b", max_steps=6, val_every=6, checkpoint_every=6)
    first.fit(progress=False)
    resumed = make_trainer(images, tmp_path / "b", max_steps=12, val_every=6, checkpoint_every=6)
    assert resumed.maybe_resume() and resumed.step == 6
    resumed.fit(progress=False)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    for p, q in zip(straight.ema.parameters(), resumed.ema.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_warm_start_from_saved_weights_continues_the_step_count(cxr14_cache, tmp_path):
    images = to_model_space(load_cxr14_cache(cxr14_cache, "train")["images"][:32, 16:48, 16:48])
    source = make_trainer(images, tmp_path / "a", max_steps=6, val_every=6, checkpoint_every=6)
    source.fit(progress=False)
    warm = make_trainer(images, tmp_path / "b", max_steps=10, val_every=2, checkpoint_every=2, warmup_steps=4)
    warm.warm_start(tmp_path / "a" / "model.pt", step=6)
    assert warm.step == 6 and warm._lr(6) == warm.config.lr / 4  # the warm-up restarts at the new run's start
    for p, q in zip(source.ema.module.parameters(), warm.model.parameters()):
        assert torch.equal(p, q)
    warm.fit(progress=False)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 10 and state["warm_step"] == 6
    try:
        warm.warm_start(tmp_path / "a" / "model.pt")
    except RuntimeError as e:
        assert "checkpoint.pt" in str(e)
    else:
        raise AssertionError("warm_start over an existing checkpoint must refuse")


def test_learning_rate_warms_up_holds_then_cools_down(cxr14_cache, tmp_path):
    images = to_model_space(load_cxr14_cache(cxr14_cache, "train")["images"][:16, 16:48, 16:48])
    trainer = make_trainer(images, tmp_path, max_steps=100, warmup_steps=10, decay_steps=40, min_lr_ratio=0.1)
    lr = trainer.config.lr
    assert trainer._lr(0) == lr / 10 and trainer._lr(9) == lr
    assert trainer._lr(30) == trainer._lr(60) == lr  # constant until the cooldown starts at 100 - 40
    assert abs(trainer._lr(80) - 0.55 * lr) < 1e-12 and abs(trainer._lr(100) - 0.1 * lr) < 1e-12
    cooldown = [trainer._lr(step) for step in range(60, 101)]
    assert all(a >= b for a, b in zip(cooldown, cooldown[1:]))
    # a resumed run may add the cooldown: the optimizer follows the new schedule from its current step
    trainer.step = 90
    trainer.train_step()
    assert trainer.optimizer.param_groups[0]["lr"] == trainer._lr(90) < lr
    try:
        TrainConfig(max_steps=10, decay_steps=20)
    except ValueError as e:
        assert "decay_steps" in str(e)
    else:
        raise AssertionError("a cooldown longer than the run must be refused")


def test_a_runs_network_json_loads_its_weights_and_a_bad_one_names_the_file(tmp_path):
    """``network.json`` beside weights (what ``train-prior --network`` writes) rebuilds their architecture; the
    shipped bundle's weights (none beside them) give None."""
    import json

    import pytest

    from xray_restore.errors import InputError
    from xray_restore.networks import NETWORK_FILE, prior_network_beside

    assert prior_network_beside("bundles/xray_ddrm/models/model.pt") is None

    model = build_prior_unet(**TINY)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / NETWORK_FILE).write_text(json.dumps(TINY))
    rebuilt = load_weights(prior_network_beside(tmp_path / "model.pt"), tmp_path / "model.pt")
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))
    (tmp_path / NETWORK_FILE).write_text("[48, 96]")
    with pytest.raises(InputError, match=NETWORK_FILE):
        prior_network_beside(tmp_path / "model.pt")


def test_random_shift_is_a_reflected_crop_per_image_drawn_from_the_cpu_generator():
    from xray_restore.training import random_shift

    x = torch.arange(2 * 1 * 6 * 5, dtype=torch.float32).reshape(2, 1, 6, 5)
    shifted = random_shift(x, 2, torch.Generator().manual_seed(3))
    offsets = torch.randint(0, 5, (2, 2), generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="reflect")
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(shifted[i], padded[i, :, dy : dy + 6, dx : dx + 5])
    assert shifted.is_contiguous() and random_shift(x, 0, torch.Generator()) is x


def test_ema_warm_up_follows_early_weights_then_settles_at_the_decay():
    from xray_restore.networks import make_ema

    model = torch.nn.Linear(2, 1)
    ema = make_ema(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight += 1.0
    ema.update_parameters(model)  # the first update copies
    assert torch.allclose(ema.module.weight, start + 1.0)
    with torch.no_grad():
        model.weight += 1.0
    ema.update_parameters(model)  # n = 1: decay min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.module.weight, d * (start + 1.0) + (1 - d) * (start + 2.0))
