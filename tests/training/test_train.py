"""The trial loop (train_trial) and `nas-convnext train`: reproducible, honest about divergence,
free of Ray, and refusing bad input with one line. Nothing here is timed (see bench/)."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nas_convnext import complexity, presets
from nas_convnext.cli import main
from nas_convnext.training import trial as train_mod
from nas_convnext.training.data import Dataset, load_dataset
from nas_convnext.training.proxy import get_proxy
from nas_convnext.training.trial import (
    _augment,
    _lr_lambda,
    check_resolution,
    train_trial,
)

ROOT = Path(__file__).resolve().parents[1]
REPORT_KEYS = {"epoch", "top1", "top5", "loss", "images_per_s", "elapsed_s"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A private dataset cache, so tests neither read nor litter the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("nas-convnext-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_CONVNEXT_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def synthetic(cache_dir):
    # The default dataset, generated once into the cache: the CLI tests load it from there.
    return load_dataset("synthetic")


@pytest.fixture(autouse=True)
def _restore_threads():
    # train_trial(threads=...) sets torch's global thread count; do not leak it to other tests.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def tiny(**changes):
    return dataclasses.replace(get_proxy("cpu-tiny"), **changes)


def arch(name="resnet50"):
    return presets()[name]


# ----- train_trial -----
def test_same_seed_same_history_other_seed_differs(synthetic):
    proxy = tiny(epochs=2)
    calls = []
    a = train_trial(arch("convnext_t"), proxy, synthetic, seed=3, report=calls.append, threads=1)
    b = train_trial(arch("convnext_t"), proxy, synthetic, seed=3, threads=1)
    c = train_trial(arch("convnext_t"), proxy, synthetic, seed=4, threads=1)
    assert a.status == b.status == c.status == "completed"
    def hist(r):
        return [(h["loss"], h["val_loss"], h["top1"], h["top5"]) for h in r.history]

    assert len(a.history) == 2
    assert hist(a) == hist(b)                       # bit for bit, not approximately
    assert (a.top1, a.loss) == (b.top1, b.loss)
    assert [h["loss"] for h in c.history] != [h["loss"] for h in a.history]
    # report: once per epoch, in order, with the documented keys and sane values
    assert [m["epoch"] for m in calls] == [1, 2]
    for m, h in zip(calls, a.history):
        assert REPORT_KEYS <= set(m)
        assert 0.0 <= m["top1"] <= m["top5"] <= 1.0
        assert math.isfinite(m["loss"]) and m["loss"] > 0
        assert m["images_per_s"] > 0
        assert m["loss"] == h["loss"] and m["top1"] == h["top1"]
    assert calls[1]["elapsed_s"] > calls[0]["elapsed_s"] > 0
    # accuracies are fractions of the validation set: multiples of 1/val_size
    n_val = proxy.val_size
    assert round(a.top1 * n_val) == pytest.approx(a.top1 * n_val, abs=1e-6)
    assert a.epochs == 2 and a.top1 == a.history[-1]["top1"]
    assert a.compute_s > 0 and a.eval_s > 0 and a.elapsed_s >= a.compute_s + a.eval_s


def test_early_epochs_are_scored_on_a_balanced_part_and_the_last_on_every_image(
        synthetic, monkeypatch):
    # early_val_size: the epochs before the last (read only by ASHA's rungs) are scored on a
    # class-balanced part of the validation set; the last, the trial's result, on all of it.
    proxy = tiny(epochs=3, val_size=240, early_val_size=60)
    scored = []
    real = train_mod.evaluate

    def spy(model, vx, vy, *args):
        scored.append(vy.clone())
        return real(model, vx, vy, *args)

    monkeypatch.setattr(train_mod, "evaluate", spy)
    r = train_trial(arch("convnext_t"), proxy, synthetic, seed=1, threads=1)
    full = tiny(epochs=3, val_size=240)
    monkeypatch.setattr(train_mod, "evaluate", real)
    plain = train_trial(arch("convnext_t"), full, synthetic, seed=1, threads=1)
    assert [len(y) for y in scored] == [60, 60, 240]
    counts = torch.bincount(scored[0], minlength=synthetic.num_classes)
    assert counts.max() - counts.min() <= 1                 # every class, as evenly as can be
    assert torch.equal(scored[0], scored[1])                 # the same part every early epoch
    for h in r.history[:2]:
        assert round(h["top1"] * 60) == pytest.approx(h["top1"] * 60, abs=1e-6)
    # training is untouched and the result is the full set's: the same as without the option
    assert [h["loss"] for h in r.history] == [h["loss"] for h in plain.history]
    assert r.top1 == plain.top1 and r.history[-1]["val_loss"] == plain.history[-1]["val_loss"]


def test_proxy_switch_must_be_a_boolean():
    with pytest.raises(ValueError, match="augment='yes' must be true or false"):
        tiny(augment="yes")


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "all"])
def test_early_val_size_that_is_not_a_count_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"early_val_size=.* must be a positive integer"):
        tiny(val_size=240, early_val_size=value)


def test_early_val_size_above_the_validation_set_means_all_of_it(synthetic, monkeypatch):
    # A smaller val_size override (the benchmark table's 512 under `cpu`) needs no second one.
    seen = []
    real = train_mod.evaluate
    monkeypatch.setattr(train_mod, "evaluate",
                        lambda model, vx, vy, *a: seen.append(len(vy)) or real(model, vx, vy, *a))
    train_trial(arch("resnet50"), tiny(epochs=2, val_size=100, early_val_size=2000), synthetic,
                seed=0, threads=1)
    assert seen == [100, 100]
    cpu = get_proxy("cpu", val_size=512, train_size=1024)    # bench/build_table.py's proxy
    assert cpu.early_val_size > cpu.val_size


def _nan_after(monkeypatch, n_good: int):
    """Make the training loss NaN from training step n_good + 1 on; evaluation is untouched."""
    real = F.cross_entropy
    seen = {"train": 0}

    def fake(logits, target, *args, **kwargs):
        loss = real(logits, target, *args, **kwargs)
        if kwargs.get("reduction", "mean") == "mean":      # the training loss, not evaluation's
            seen["train"] += 1
            if seen["train"] > n_good:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(train_mod.F, "cross_entropy", fake)
    return seen


def test_nan_loss_ends_trial_as_diverged_keeping_last_good_epoch(synthetic, monkeypatch):
    proxy = tiny(epochs=3)
    steps = proxy.train_size // proxy.batch_size
    seen = _nan_after(monkeypatch, steps + 2)   # NaN at step 3 of epoch 2
    calls = []
    r = train_trial(arch(), proxy, synthetic, seed=0, report=calls.append, threads=1)
    assert r.status == "diverged"
    assert seen["train"] == steps + 3           # stopped at the first NaN, did not go on
    assert r.epochs == 1 and len(r.history) == 1 and len(calls) == 1
    good = r.history[0]
    assert (r.top1, r.top5, r.loss, r.val_loss) == (good["top1"], good["top5"], good["loss"],
                                                    good["val_loss"])
    assert math.isfinite(r.top1) and math.isfinite(r.loss)
    assert "epoch 2" in r.message and "step 3" in r.message and "nan" in r.message


def test_nan_in_first_epoch_leaves_no_metrics(synthetic, monkeypatch):
    _nan_after(monkeypatch, 0)
    r = train_trial(arch(), tiny(epochs=2), synthetic, seed=0, threads=1)
    assert r.status == "diverged" and r.epochs == 0 and r.history == []
    assert math.isnan(r.top1) and "epoch 1" in r.message


def test_nan_validation_loss_is_divergence_too(synthetic, monkeypatch):
    real = F.cross_entropy
    evals = {"n": 0}

    def fake(logits, target, *args, **kwargs):
        loss = real(logits, target, *args, **kwargs)
        if kwargs.get("reduction") == "sum":
            evals["n"] += 1
            if evals["n"] > 1:                  # cpu-tiny validates in one batch per epoch
                return loss * float("nan")
        return loss

    monkeypatch.setattr(train_mod.F, "cross_entropy", fake)
    r = train_trial(arch(), tiny(epochs=3), synthetic, seed=0, threads=1)
    assert r.status == "diverged" and r.epochs == 1
    assert r.val_loss == r.history[0]["val_loss"] and math.isfinite(r.val_loss)
    assert "validation" in r.message and "epoch 2" in r.message


def test_grayscale_data_trains(synthetic):
    # 1-channel, 28x28 images (MNIST-like): the stem takes one channel, images are padded to 32.
    def gray(x):
        return x.float().mean(dim=1, keepdim=True)[..., 2:30, 2:30].round().to(torch.uint8)

    ds = Dataset("gray", gray(synthetic.train_x[:600]), synthetic.train_y[:600].clone(),
                 gray(synthetic.val_x[:300]), synthetic.val_y[:300].clone(), 12)
    assert ds.channels == 1 and ds.resolution == 28
    r = train_trial(arch("convnext_t"), tiny(), ds, seed=0, threads=1)
    assert r.status == "completed" and r.epochs == 1
    assert 0.0 <= r.top1 <= r.top5 <= 1.0 and math.isfinite(r.loss)


def test_resolution_too_small_is_refused_before_training(synthetic):
    # ConvNeXt-T halves 16 pixels to 4, 2, 1, 0: its last stage would be empty. It needs 32.
    calls = []
    with pytest.raises(ValueError, match=r"resolution 16 .*at least 32"):
        train_trial(arch("convnext_t"), tiny(resolution=16), synthetic, report=calls.append)
    assert calls == []
    check_resolution(arch("convnext_t"), 32)     # the smallest that works is accepted
    with pytest.raises(ValueError, match="at least 32"):
        check_resolution(arch("convnext_t"), 31)
    check_resolution(arch("resnet50"), 16)       # ResNet's stride-2 3x3 convs keep one pixel


def test_train_trial_imports_neither_ray_timm_nor_dynamo():
    # Every trial worker pays for what a trial imports: timm (with torchvision and all its
    # models) costs about 1 s, and a proxy without drop path or mixup needs none of it;
    # torch._dynamo, which torch's optimizers import on their first step, about 2.3 s.
    # Both optimizers: AdamW (the modern recipe) and SGD (ResNet's original).
    code = textwrap.dedent("""
        import sys
        import nas_convnext.training.trial as t
        from nas_convnext import presets
        from nas_convnext.training.data import generate_synthetic
        from nas_convnext.training.proxy import get_proxy
        import dataclasses
        ds = generate_synthetic(n_train=48, n_val=24, use_cache=False)
        p = dataclasses.replace(get_proxy("cpu-tiny"), train_size=48, val_size=24, batch_size=16)
        for recipe in ("modern", "original"):
            r = t.train_trial(presets()["resnet50"], p.with_recipe(recipe), ds, seed=0, threads=1)
            print(recipe, "status", r.status, "epochs", r.epochs)
        print("ray imported:", "ray" in sys.modules, "tune imported:", "ray.tune" in sys.modules)
        print("timm imported:", "timm" in sys.modules, "torchvision:", "torchvision" in sys.modules)
        print("dynamo imported:", "torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "modern status completed epochs 1" in out.stdout
    assert "original status completed epochs 1" in out.stdout
    assert "ray imported: False tune imported: False" in out.stdout
    assert "timm imported: False torchvision: False" in out.stdout
    assert "dynamo imported: False" in out.stdout


@pytest.mark.parametrize("recipe", ["modern", "original"])
def test_the_optimizer_steps_exactly_as_torchs_and_keeps_its_hooks(recipe):
    # Ours skips torch's compile wrappers; the parameters after a few steps under the warmup and
    # cosine schedule must equal, bit for bit, those that torch's own class gives (the same
    # groups and settings), and step hooks registered on ours must still run around each step.
    from nas_convnext import build_model

    proxy = get_proxy("cpu-tiny").with_recipe(recipe)
    models = [build_model(presets()["convnext_t"], num_classes=10, width_mult=0.125)
              for _ in range(2)]
    start = {k: v.clone() for k, v in models[0].state_dict().items()}
    models[1].load_state_dict(start)
    ours = train_mod.make_optimizer(models[0], proxy)
    base = torch.optim.SGD if recipe == "original" else torch.optim.AdamW
    assert isinstance(ours, base) and type(ours) is not base
    by_name = dict(models[1].named_parameters())
    name_of = {id(p): n for n, p in models[0].named_parameters()}
    theirs = base([{**{k: v for k, v in g.items() if k != "params"},
                    "params": [by_name[name_of[id(p)]] for p in g["params"]]}
                   for g in ours.param_groups],
                  **{k: v for k, v in ours.defaults.items() if k != "decoupled_weight_decay"})
    assert theirs.defaults == ours.defaults
    calls = []
    ours.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    ours.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, train_mod._lr_lambda(6, 2))
              for o in (ours, theirs)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        x = torch.randn(4, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (4,), generator=gen)
        for m, o, sch in zip(models, (ours, theirs), scheds):
            o.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y).backward()
            o.step()
            sch.step()
    assert calls == ["pre", "post"] * 6
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.equal(a, b), name
    # the steps changed the weights, so "equal" is not "both left alone"
    assert sum(not torch.equal(a, start[n]) for n, a in models[0].named_parameters()) > 10


# ----- augmentation and schedule -----
def _find_shift(x, out, pad=4):
    """All (dy, dx, flip) for which `out` is x shifted by (dy, dx) (zero fill), maybe flipped."""
    c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    found = []
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            crop = xp[:, oy:oy + h, ox:ox + w]
            for flip in (False, True):
                if torch.equal(crop.flip(-1) if flip else crop, out):
                    found.append((oy - pad, ox - pad, flip))
    return found


def test_augment_is_a_shifted_and_maybe_flipped_copy():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 12, 10), dtype=torch.uint8)   # non-square: catches h/w mixups
    out = _augment(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    again = _augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(out, again)                     # the generator alone decides
    moves = []
    for i in range(len(x)):
        found = _find_shift(x[i], out[i])
        assert len(found) == 1, f"image {i}: not a shifted copy of its input ({found})"
        moves.append(found[0])
    # Random per image: several offsets, and both flipped and unflipped images in 64.
    assert len(set(moves)) > 10
    assert {m[2] for m in moves} == {False, True}
    assert any(m[0] != 0 for m in moves) and any(m[1] != 0 for m in moves)
    # One image by hand: its crop, taken from the zero-padded input at the found offset.
    dy, dx, flip = moves[0]
    manual = torch.zeros_like(x[0])
    src = x[0]
    ys, xs = slice(max(0, dy), 12 + min(0, dy)), slice(max(0, dx), 10 + min(0, dx))
    yd, xd = slice(max(0, -dy), 12 - max(0, dy)), slice(max(0, -dx), 10 - max(0, dx))
    manual[:, yd, xd] = src[:, ys, xs]
    assert torch.equal(manual.flip(-1) if flip else manual, out[0])


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = _lr_lambda(total=100, warmup=10)
    lrs = [f(s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))           # linear warmup
    assert lrs[9] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))           # then never rises
    assert lrs[55] == pytest.approx(0.5, abs=0.02)                    # cosine: half way, half
    assert lrs[-1] < 0.01 and f(100) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("design, recipe", [("convnext_t", "modern"), ("resnet50", "original"),
                                            ("convnext_t", "original")])
def test_the_optimizer_is_the_one_timm_builds(design, recipe):
    # Same class and settings, and the same tensors with and without weight decay (ConvNeXt's
    # layer scales, every norm and bias without), as timm's factory, which the paper's code uses.
    from timm.optim import create_optimizer_v2

    from nas_convnext import build_model

    model = build_model(presets()[design], num_classes=10, width_mult=0.25)
    proxy = get_proxy("cpu").with_recipe(recipe)
    ours = train_mod.make_optimizer(model, proxy)
    extra = {"momentum": 0.9} if proxy.optimizer == "sgd" else {}
    theirs = create_optimizer_v2(model, proxy.optimizer, lr=proxy.scaled_lr,
                                 weight_decay=proxy.weight_decay, **extra)
    assert isinstance(ours, type(theirs))  # a subclass that skips torch.compile's wrappers
    assert ours.defaults == theirs.defaults
    assert len(ours.param_groups) == len(theirs.param_groups) == 2
    for mine, timms in zip(ours.param_groups, theirs.param_groups):
        assert [id(p) for p in mine["params"]] == [id(p) for p in timms["params"]]
        assert {k: v for k, v in mine.items() if k != "params"} == \
            {k: v for k, v in timms.items() if k != "params"}
    no_decay = {id(p) for p in ours.param_groups[0]["params"]}
    named = dict(model.named_parameters())
    assert ours.param_groups[0]["weight_decay"] == 0 and ours.param_groups[1]["weight_decay"] > 0
    assert all((id(p) in no_decay) == (p.ndim == 1) for p in named.values())
    assert any(name.endswith("gamma") for name in named) == (design == "convnext_t")


def test_trial_uses_the_schedule_at_the_scaled_lr(synthetic, monkeypatch):
    # The learning rate each training step actually ran with, read from the optimizer.
    proxy = tiny(epochs=2, batch_size=32)              # 16 steps an epoch, 32 in all, warmup 3
    seen_opt = {}
    real_make = train_mod.make_optimizer

    def make(model, p):
        seen_opt["opt"] = real_make(model, p)
        return seen_opt["opt"]

    lrs = []
    real_ce = F.cross_entropy

    def ce(logits, target, *args, **kwargs):
        if kwargs.get("reduction", "mean") == "mean":
            lrs.append(seen_opt["opt"].param_groups[0]["lr"])
        return real_ce(logits, target, *args, **kwargs)

    monkeypatch.setattr(train_mod, "make_optimizer", make)
    monkeypatch.setattr(train_mod.F, "cross_entropy", ce)
    r = train_trial(arch(), proxy, synthetic, seed=0, threads=1)
    assert r.status == "completed" and len(lrs) == 32
    peak = proxy.scaled_lr
    assert peak == pytest.approx(proxy.lr * 32 / 256)
    assert lrs[0] == pytest.approx(peak / 3) and lrs[2] == pytest.approx(peak)
    assert max(lrs) == pytest.approx(peak)
    assert all(a >= b - 1e-15 for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[-1] < 0.02 * peak


# ----- the CLI -----
def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_writes_metrics_json(synthetic, capsys, tmp_path):
    target = tmp_path / "m.json"
    code, out, err = run(capsys, "train", "resnet50", "kernel=5", "--proxy", "cpu-tiny", "--dataset", "synthetic",
                         "--epochs", "2", "--seed", "0", "--threads", "1", "--out", str(target),
                         "--json")
    assert code == 0, err
    data = json.loads(target.read_text())
    assert json.loads(out) == data                    # --json prints the same on stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]   # no temp file left
    want = complexity(dataclasses.replace(arch(), kernel=5))
    assert (data["flops"], data["params"]) == (want.flops, want.params)
    assert data["kernel"] == 5 and data["depths"] == [3, 4, 6, 3] and data["stem"] == "resnet"
    assert data["proxy"]["name"] == "cpu-tiny" and data["proxy"]["epochs"] == 2
    assert data["status"] == "completed" and data["epochs"] == 2 and data["seed"] == 0
    assert len(data["history"]) == 2 and data["top1"] == data["history"][-1]["top1"]
    assert REPORT_KEYS <= set(data["history"][0])
    assert 0.0 <= data["top1"] <= data["top5"] <= 1.0
    # the same trial through the API gives the same numbers (--seed also seeds the synthetic
    # data, so seed 0 is the seed of the `synthetic` fixture)
    r = train_trial(dataclasses.replace(arch(), kernel=5), tiny(epochs=2), synthetic, seed=0,
                    threads=1)
    assert [h["loss"] for h in r.history] == [h["loss"] for h in data["history"]]
    # progress: not a terminal here, so one line per epoch on stderr
    assert "epoch 1/2" in err and "epoch 2/2" in err and "Traceback" not in err


def test_cli_train_prints_summary(synthetic, capsys):
    code, out, err = run(capsys, "train", "convnext_t", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--threads", "1")
    assert code == 0, err
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines["status"] == "completed" and lines["epochs"] == "1/1"
    r = train_trial(arch("convnext_t"), tiny(), synthetic, seed=0, threads=1)
    assert lines["top1"].startswith(f"{r.top1:.4f}")
    assert {"images/s", "elapsed", "loss"} <= set(lines)


def test_cli_train_diverged_exits_1_and_says_so(synthetic, capsys, tmp_path, monkeypatch):
    _nan_after(monkeypatch, 0)
    target = tmp_path / "d.json"
    code, out, err = run(capsys, "train", "resnet50", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--threads", "1",
                         "--out", str(target))
    assert code == 1
    assert "diverged" in err and "Traceback" not in err
    data = json.loads(target.read_text())            # strict JSON: NaN became null
    assert data["status"] == "diverged" and data["top1"] is None and data["epochs"] == 0
    assert "status    diverged" in out


@pytest.mark.parametrize("argv,needle", [
    (["--dataset", "mnst"], "--dataset 'mnst': expected one of fashion-mnist, mnist, cifar10"),
    (["--dataset", "idx"], "--data-dir is required for dataset 'idx'"),
    # A named dataset's --data-dir is the only place looked at: the wrong files are an error.
    (["--dataset", "cifar10", "--data-dir", "/"], "does not hold dataset 'cifar10': missing"),
    (["--dataset", "mnist", "--data-dir", "/"], "does not hold dataset 'mnist': missing"),
    (["--dataset", "imagefolder"], "--data-dir is required for dataset 'imagefolder'"),
    (["--dataset", "idx", "--data-dir", "/no/such/folder"], "does not exist"),
    (["--proxy", "huge"], "unknown proxy profile 'huge': expected one of cpu-tiny"),
    (["--epochs", "0"], "must be positive"),
    (["--threads", "two"], "is not an integer"),
    (["--out", "/no/such/folder/m.json"], "folder '/no/such/folder' does not exist"),
    (["kernel=4"], "kernel"),
])
def test_cli_train_user_errors_are_one_line_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, "train", "resnet50", *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""


def test_cli_train_unknown_design_and_too_small_resolution(capsys, monkeypatch):
    code, _, err = run(capsys, "train", "convnext_x")
    assert code == 2 and "convnext_x" in err and len(err.strip().splitlines()) == 1
    # No shipped profile is below 32 pixels; a 16-pixel one must be refused before any data.
    import nas_convnext.training.proxy as proxy_mod

    small = dataclasses.replace(get_proxy("cpu-tiny"), resolution=16)
    monkeypatch.setattr(proxy_mod, "get_proxy", lambda name, **kw: small)
    monkeypatch.setattr("nas_convnext.training.data.load_dataset",
                        lambda *a, **k: pytest.fail("data loaded before the resolution check"))
    code, out, err = run(capsys, "train", "convnext_t")
    assert code == 2 and out == ""
    assert "resolution 16 is too small" in err and "at least 32" in err
    assert len(err.strip().splitlines()) == 1


# ----- does it learn? -----
# A small ResNet (one block a stage, width x0.125) under a shortened proxy: about 4 CPU seconds.
# Its validation top-1 on the built-in data is about 21% (seeds 0 to 2: 21.0, 21.6, 21.5), chance
# is 1/12 = 8.3%. The same run with the optimizer's step made a no-op, or with the validation
# labels shuffled against their images, must fall to chance: so this test fails for a training
# loop that does not train, or an evaluation that does not score the images it is given.
FAST_LEARNER = dict(depths=(1, 1, 1, 1))
FAST_PROXY = dict(train_size=2048, val_size=1024, epochs=3, augment=False, lr=8e-3,
                  width_mult=0.125)


def _no_optimizer_step(monkeypatch):
    real_make = train_mod.make_optimizer

    def make(model, proxy):
        opt = real_make(model, proxy)
        # gradients are computed, never applied (a bound method, as the LR scheduler expects)
        opt.step = types.MethodType(lambda self, *args, **kwargs: None, opt)
        return opt

    monkeypatch.setattr(train_mod, "make_optimizer", make)


def _shuffled_validation_labels(monkeypatch):
    real_prepare = train_mod.prepare

    def prepare(*args, **kwargs):
        tx, ty, vx, vy = real_prepare(*args, **kwargs)
        order = torch.randperm(len(vy), generator=torch.Generator().manual_seed(0))
        assert (vy[order] != vy).float().mean() > 0.8  # most labels now belong to other images
        return tx, ty, vx, vy[order.to(vy.device)]

    monkeypatch.setattr(train_mod, "prepare", prepare)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
@pytest.mark.parametrize("sabotage", [None, _no_optimizer_step, _shuffled_validation_labels],
                         ids=["intact", "no-optimizer-step", "shuffled-validation-labels"])
def test_proxy_learns_the_built_in_data_far_above_chance(synthetic, monkeypatch, sabotage):
    if sabotage is not None:
        sabotage(monkeypatch)
    proxy = tiny(**FAST_PROXY)
    r = train_trial(dataclasses.replace(arch("resnet50"), **FAST_LEARNER), proxy, synthetic,
                    seed=0, threads=1)
    assert r.status == "completed" and r.epochs == 3
    chance = 1 / synthetic.num_classes
    se = (chance * (1 - chance) / proxy.val_size) ** 0.5   # 0.86 points on 1,024 images
    if sabotage is None:
        assert r.top1 > 2 * chance, f"top1 {r.top1:.3f}, chance {chance:.3f}"  # ~10 SE above
        assert r.history[-1]["loss"] < r.history[0]["loss"]
    else:
        assert abs(r.top1 - chance) < 4 * se, f"top1 {r.top1:.3f}, chance {chance:.3f}"


class _LogitsByImage(torch.nn.Module):
    """Returns hand-made logits: image i carries i in its first pixel; records its mode."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float64)
        self.calls = []

    def forward(self, x):
        index = ((x[:, 0, 0, 0] + 1) * 127.5).round().long()   # undo evaluate's normalising
        self.calls.append((self.training, torch.is_grad_enabled(), len(x)))
        return self.logits[index].to(x.dtype)


def _images(n):
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return x


def _cross_entropy_by_hand(logits, labels):
    return sum(math.log(sum(math.exp(v) for v in row)) - row[y]
               for row, y in zip(logits, labels)) / len(labels)


def test_evaluate_scores_hand_made_logits():
    import contextlib

    # 7 images, 7 classes; the label's rank among each row's logits is 1, 1, 2, 5, 6, 7, 3
    logits = [[5.0, 1.0, 0.5, 0.0, -1.0, -2.0, -3.0],    # label 0: rank 1
              [0.1, 3.0, 0.2, 0.3, 0.4, 0.5, 0.6],      # label 1: rank 1
              [2.0, 1.0, 0.0, 3.0, -1.0, -2.0, -3.0],   # label 0: rank 2
              [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],      # label 4: rank 5
              [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],      # label 5: rank 6, outside the top 5
              [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],      # label 0: rank 7, the lowest
              [1.0, 2.0, 3.0, 0.5, 0.25, 0.0, -0.5]]    # label 0: rank 3
    labels = [0, 1, 0, 4, 5, 0, 0]
    model = _LogitsByImage(logits)
    model.train()
    top1, top5, loss = train_mod.evaluate(model, _images(7), torch.tensor(labels), batch=3,
                                          channels_last=False, autocast=contextlib.nullcontext)
    assert top1 == pytest.approx(2 / 7)
    assert top5 == pytest.approx(5 / 7)
    assert loss == pytest.approx(_cross_entropy_by_hand(logits, labels), rel=1e-6)
    # batches of 3, 3 and 1, in evaluation mode and without gradients
    assert model.calls == [(False, False, 3), (False, False, 3), (False, False, 1)]


def test_evaluate_with_fewer_than_five_classes_counts_top_k_of_all():
    import contextlib

    logits = [[0.0, 1.0, 2.0], [3.0, 1.0, 2.0], [0.0, 2.0, 1.0], [1.0, 0.0, -1.0]]
    labels = [0, 0, 2, 2]  # ranks 3, 1, 2, 3
    top1, top5, loss = train_mod.evaluate(_LogitsByImage(logits), _images(4),
                                          torch.tensor(labels), batch=512,
                                          channels_last=False, autocast=contextlib.nullcontext)
    assert (top1, top5) == (0.25, 1.0)  # every label is among the 3 (= min(5, classes)) best
    assert loss == pytest.approx(_cross_entropy_by_hand(logits, labels), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "convnext_t"])
def test_cpu_proxy_learns_above_chance(synthetic, name):
    proxy = get_proxy("cpu")
    r = train_trial(arch(name), proxy, synthetic, seed=0, threads=2)
    assert r.status == "completed" and r.epochs == 3
    # "Clearly above chance": more than four standard errors of a chance-level accuracy on the
    # validation subset (1/12 = 8.3%, SE 0.6 points on 2,000 images), i.e. above ~10.8%.
    chance = 1 / synthetic.num_classes
    n_val = min(proxy.val_size, len(synthetic.val_y))
    bar = chance + 4 * (chance * (1 - chance) / n_val) ** 0.5
    assert r.top1 > bar, f"{name}: top1 {r.top1:.3f}, chance {chance:.3f}, bar {bar:.3f}"
