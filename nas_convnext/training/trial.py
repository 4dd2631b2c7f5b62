"""One trial: train a design's proxy and report validation accuracy after every epoch.

No Ray here: the search runs this function inside Ray Tune, the CLI runs it directly, and the
tests run it on its own. The data lives in memory as uint8 tensors (on the GPU when there is
one), batches are cut by indexing and augmented on the device (a random crop and flip per image,
all drawn in one batched gather), so the loop's time
goes to forward, backward and the optimizer step rather than to a data pipeline.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..design.arch import Arch
from ..design.build import build_model
from ..design.plan import stage_sizes
from .optim import SGD, AdamW
from .proxy import Proxy

Report = Callable[[dict[str, Any]], None]


@dataclass
class TrialResult:
    status: str                     # completed | diverged (stopped_early/error come from search)
    epochs: int                     # epochs finished
    top1: float = math.nan          # fractions 0..1, of the last good epoch
    top5: float = math.nan
    loss: float = math.nan          # mean training loss of the last good epoch
    val_loss: float = math.nan
    images_per_s: float = math.nan  # training images per second over the trial
    elapsed_s: float = 0.0
    compute_s: float = 0.0          # time in forward, backward and optimizer step
    eval_s: float = 0.0
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def check_resolution(arch: Arch, resolution: int) -> None:
    """Refuse a resolution at which some stage's feature map would be empty."""
    sizes = stage_sizes(arch, resolution)
    if min(sizes) < 1:
        need = resolution
        while min(stage_sizes(arch, need)) < 1:
            need += 1
        raise ValueError(f"resolution {resolution} is too small for this design (stem "
                         f"{arch.stem}): stage feature maps would be {sizes}; use at least {need}")


@dataclass(frozen=True)
class MemoryNeed:
    """What training a design's proxy needs at least, in bytes, before any data is counted.

    A lower bound, so that a design is refused only when it surely cannot train: the
    parameters in float32 with their gradients and optimizer state (AdamW keeps two moments,
    SGD one), and one batch's conv and linear outputs, which backward keeps (norms and
    activations keep more).
    """

    params: int
    state_bytes: int
    activation_bytes: int
    batch: int

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes


def memory_need(arch: Arch, proxy: Proxy, num_classes: int = 2, in_chans: int = 1,
                cuda: bool = False) -> MemoryNeed:
    """The least memory `train_trial` needs for `arch` under `proxy` (analytic, microseconds)."""
    from ..design.complexity import complexity, scale_width

    c = complexity(scale_width(arch, proxy.width_mult), proxy.resolution, num_classes, in_chans)
    copies = 2 + (2 if proxy.optimizer == "adamw" else 1)   # weights, grads, optimizer state
    batch = min(proxy.batch_size, proxy.train_size)
    act_bytes = 2 if cuda else 4                             # bfloat16 autocast on a GPU
    return MemoryNeed(c.params, 4 * copies * c.params, act_bytes * c.acts * batch, batch)


def check_memory(arch: Arch, proxy: Proxy, num_classes: int = 2, in_chans: int = 1,
                 device: torch.device | None = None, name: str | None = None) -> MemoryNeed:
    """Refuse, in one line with the figures, a design whose proxy cannot fit in memory.

    Run before the model is built: a design a million channels wide would otherwise end in an
    allocator error (or take the machine's memory) instead of a message naming the design.
    """
    from ..memory import available_bytes, format_bytes

    dev = device or pick_device()
    cuda = dev.type == "cuda"
    need = memory_need(arch, proxy, num_classes, in_chans, cuda)
    if cuda:
        free = torch.cuda.mem_get_info(dev)[0]
        where = f"free on {dev}"
    else:
        free = available_bytes()
        where = "free for this process"
    if need.total > free:
        label = name or (f"the design (width {arch.width}, depths "
                         f"{','.join(map(str, arch.depths))}, expansion {arch.expansion:g})")
        opt = "AdamW" if proxy.optimizer == "adamw" else "SGD"
        raise ValueError(
            f"{label} needs at least {format_bytes(need.total)} to train under proxy "
            f"{proxy.name}: {need.params:,} parameters at width x{proxy.width_mult:g} take "
            f"{format_bytes(need.state_bytes)} with their gradients and {opt} state, and a "
            f"batch of {need.batch} at {proxy.resolution}px {format_bytes(need.activation_bytes)}"
            f" of activations; only {format_bytes(free)} is {where}: choose a narrower or "
            "shallower design, or a proxy with a smaller width or batch")
    return need


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: What `--dataset` takes: the named datasets (found or fetched for the user, see
#: `data.named`), folders in a format (`idx`, `imagefolder`, the CIFARs' own files under a
#: name) and the generated `synthetic` set (tests and smoke runs only: it cannot show the
#: choices the roadmap is about).
DATASET_CHOICES = ("fashion-mnist", "mnist", "cifar10", "cifar100", "idx", "imagefolder",
                   "synthetic")
#: Real images by default: Fashion-MNIST needs no network (it ships in the package).
DEFAULT_DATASET = "fashion-mnist"


@dataclass(frozen=True)
class DataSource:
    """Where a run's images come from, decided once in the driver.

    `kind` and `path` are what `data.load_dataset` reads (`"idx"` and a folder for the
    MNISTs, `"synthetic"` and None for generated data); `source` says where they came from
    (`"embedded subset 12000/10000"`, `"Debian /usr/share/datasets/fashion-mnist"`, ...), for
    run.json: scores on a subset and on the full set are not the same experiment.
    """

    dataset: str
    kind: str
    path: str | None
    source: str


def resolve_data(dataset: str, data_dir: str | None) -> DataSource:
    """Resolve `--dataset`/`--data-dir` into a `DataSource`; a one-line ValueError when the
    name is unknown, a named dataset is nowhere to be found, or a folder is missing.

    A named dataset is looked up in `--data-dir`, the cache, Debian's folder, a download and
    (Fashion-MNIST) the embedded subset, in that order (`data.named.resolve_dataset`).
    """
    from .data.named import NAMES, resolve_dataset

    if dataset not in DATASET_CHOICES:
        raise ValueError(f"--dataset {dataset!r}: expected one of {', '.join(DATASET_CHOICES)}")
    if dataset in NAMES:
        kind, path, source = resolve_dataset(dataset, data_dir or None)
        return DataSource(dataset, kind, str(path), source)
    if dataset == "synthetic":
        return DataSource(dataset, "synthetic", None, "generated (synthetic, seed 0)")
    if not data_dir:
        raise ValueError(f"--data-dir is required for dataset {dataset!r}: the folder holding "
                         "its files")
    return DataSource(dataset, dataset, str(data_dir), f"--data-dir {data_dir}")


def load_proxy_data(dataset: str | DataSource, data_dir: str | None, proxy: Proxy):
    """The dataset a proxy trains on.

    `dataset` is a `DataSource` (resolved once by the driver) or a `--dataset` value, then
    resolved here with `data_dir`. Synthetic data and image folders are made at a resolution:
    make them at the proxy's, so a 64-pixel proxy sees 64 pixels of detail rather than
    32-pixel images padded with zeros. The data itself is always generated from seed 0: a
    run's seed varies the trials, not the data.
    """
    import dataclasses

    from .data import load_dataset

    src = dataset if isinstance(dataset, DataSource) else resolve_data(dataset, data_dir)
    res = proxy.resolution if src.kind in ("synthetic", "imagefolder") else None
    data = load_dataset(src.kind, src.path, seed=0, resolution=res)
    if src.dataset != src.kind:  # a named dataset is called by its name, not its file format
        data = dataclasses.replace(data, name=src.dataset)
    return data


def prepare(data, proxy: Proxy, seed: int, device: torch.device):
    """The proxy's subset of the data at its resolution, moved to the device once."""
    from .data import to_resolution

    sub = data.subset(min(proxy.train_size, len(data.train_y)),
                      min(proxy.val_size, len(data.val_y)), seed=seed)
    tx = to_resolution(sub.train_x, proxy.resolution).to(device)
    vx = to_resolution(sub.val_x, proxy.resolution).to(device)
    return tx, sub.train_y.to(device), vx, sub.val_y.to(device)


def early_positions(vy: torch.Tensor, n: int | None, num_classes: int,
                    seed: int) -> torch.Tensor | None:
    """Where in the validation set the epochs before the last are scored (None: all of it).

    Only ASHA's rungs read those figures, and a rung need not see the last epoch's precision:
    scoring them on a class-balanced part (`early_val_size`) instead of every image spares
    most of the evaluation time, which grows with the validation set the last epoch needs.
    """
    from .data.dataset import balanced_indices

    if n is None or n >= len(vy):
        return None
    pos = balanced_indices(vy.cpu(), n, num_classes, seed + 2, "early validation", "proxy")
    return pos.to(vy.device)


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops (zero padding) and horizontal flips, per image, in one batched gather."""
    b, _, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
    flip = (torch.rand(b, generator=gen) < 0.5).to(dev)
    rows = oy[:, None] + torch.arange(h, device=dev)[None]
    cols = ox[:, None] + torch.arange(w, device=dev)[None]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def _normalise(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = x.float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def make_optimizer(model: torch.nn.Module, proxy: Proxy) -> torch.optim.Optimizer:
    """AdamW (the modern recipe) or Nesterov SGD with momentum 0.9 (ResNet's original).

    Norm weights, biases and layer scales (every tensor of one dimension, and every bias) are
    left out of weight decay, as the paper's code does. This is what timm's
    `create_optimizer_v2` builds (a test compares the two), written out here because importing
    timm loads torchvision and all of timm's models, about 1 s in every trial worker
    (bench/worker_startup.py). The classes are torch's, through `training.optim`, which skips
    their torch.compile wrappers (2.3 s more in every worker).
    """
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": no_decay, "weight_decay": 0.0},
              {"params": decay, "weight_decay": proxy.weight_decay}]
    if proxy.optimizer == "sgd":
        return SGD(groups, lr=proxy.scaled_lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    return AdamW(groups, lr=proxy.scaled_lr, weight_decay=0.0)


@torch.no_grad()
def evaluate(model, vx, vy, batch: int, channels_last: bool, autocast) -> tuple[float, float, float]:
    model.eval()
    correct1 = correct5 = 0
    loss_sum = 0.0
    for i in range(0, len(vy), batch):
        x = _normalise(vx[i:i + batch], channels_last)
        y = vy[i:i + batch]
        with autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top.eq(y[:, None])
        correct1 += hit[:, 0].sum().item()
        correct5 += hit.any(dim=1).sum().item()
    n = len(vy)
    return correct1 / n, correct5 / n, loss_sum / n


def train_trial(arch: Arch, proxy: Proxy, data, seed: int = 0, report: Report | None = None,
                threads: int | None = None, device: str | None = None,
                max_epochs: int | None = None,
                loss_hook: Callable[[torch.Tensor], torch.Tensor] | None = None) -> TrialResult:
    """Train `arch`'s proxy on `data`; call `report` with the metrics after every epoch.

    `arch`: the full-size design (the proxy narrows it). `proxy`: resolution, width, epochs,
    batch, recipe (`training.proxy`). `data`: a `Dataset`, of which the proxy takes a seeded,
    class-balanced subset. `seed`: model initialisation, batch order and augmentation.
    `report(metrics)`: called after each epoch with epoch, top1, top5, loss, val_loss,
    images_per_s and times. `threads`: torch's CPU threads (default: torch's choice).
    `device`: "cpu", "cuda", ... (default: a GPU when there is one). `max_epochs`: fewer
    epochs than the proxy's. `loss_hook`: applied to every training loss (the fault tests
    make it NaN; see `search.faults`).

    A NaN or infinite loss ends the trial as `diverged` with the last good epoch's metrics;
    it does not raise. `report` may raise to stop the trial (Ray Tune does so when ASHA
    stops a trial); the exception propagates.
    """
    t_start = time.perf_counter()
    check_resolution(arch, proxy.resolution)
    dev = pick_device(device)
    if threads is not None and dev.type == "cpu":
        torch.set_num_threads(max(1, int(threads)))
    torch.manual_seed(seed)
    loop = _setup(arch, proxy, data, seed, dev, max_epochs, loss_hook)
    result = TrialResult(status="completed", epochs=0)
    compute_s = eval_s = 0.0
    images = 0
    for epoch in range(1, loop.epochs + 1):
        step = _train_epoch(loop, epoch)
        compute_s += step.compute_s
        images += step.images
        if step.diverged:
            result.status, result.message = "diverged", step.diverged
            break
        t0 = time.perf_counter()
        vx, vy = loop.vx, loop.vy
        if loop.early is not None and epoch < loop.epochs:
            vx, vy = loop.early
        top1, top5, val_loss = evaluate(loop.model, vx, vy, 512, True, loop.autocast)
        eval_s += time.perf_counter() - t0
        if not math.isfinite(val_loss):
            result.status = "diverged"
            result.message = f"validation loss became {val_loss} in epoch {epoch}"
            break
        elapsed = time.perf_counter() - t_start
        metrics = {"epoch": epoch, "top1": top1, "top5": top5, "loss": step.loss,
                   "val_loss": val_loss, "images_per_s": images / max(1e-9, elapsed),
                   "elapsed_s": elapsed, "compute_s": compute_s, "eval_s": eval_s}
        result.history.append(metrics)
        result.epochs, result.top1, result.top5 = epoch, top1, top5
        result.loss, result.val_loss = metrics["loss"], val_loss
        result.images_per_s = metrics["images_per_s"]
        if report is not None:
            report(dict(metrics))
    result.elapsed_s = time.perf_counter() - t_start
    result.compute_s, result.eval_s = compute_s, eval_s
    if images:
        result.images_per_s = images / result.elapsed_s
    return result


@dataclass
class _Loop:
    """Everything the epochs of one trial share: data on the device, model, optimizer."""

    proxy: Proxy
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    mixer: Any
    autocast: Callable[[], Any]
    gen: torch.Generator
    tx: torch.Tensor
    ty: torch.Tensor
    vx: torch.Tensor
    vy: torch.Tensor
    early: tuple[torch.Tensor, torch.Tensor] | None   # (images, labels) of the epochs before
                                                      # the last; None: all of vx, vy
    dev: torch.device
    cuda: bool
    epochs: int
    batch: int
    steps: int
    loss_hook: Callable[[torch.Tensor], torch.Tensor] | None


def _setup(arch: Arch, proxy: Proxy, data, seed: int, dev: torch.device,
           max_epochs: int | None, loss_hook) -> _Loop:
    """The trial's data subset on the device, its model, optimizer, schedule and mixer."""
    gen = torch.Generator().manual_seed(seed)
    tx, ty, vx, vy = prepare(data, proxy, seed, dev)
    num_classes = int(data.num_classes)
    pos = early_positions(vy, proxy.early_val_size, num_classes, seed)
    early = None if pos is None else (vx[pos], vy[pos])   # cut once, not every epoch
    in_chans = int(tx.shape[1])
    cuda = dev.type == "cuda"
    check_memory(arch, proxy, num_classes, in_chans, dev)
    model = build_model(arch, num_classes=num_classes, width_mult=proxy.width_mult,
                        in_chans=in_chans, drop_path_rate=proxy.drop_path).to(dev)
    # Channels-last on every device: on a GPU for the tensor cores, on a CPU because oneDNN's
    # training steps run 1.3x (ResNet-50, ConvNeXt-T) to 3.2x (11x11 kernels) faster in it at
    # the `cpu` proxy's size (bench/channels_last.py, docs/BENCHMARKS.md).
    model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, proxy)
    epochs = min(proxy.epochs, max_epochs) if max_epochs else proxy.epochs
    bs = min(proxy.batch_size, len(ty))
    steps_per_epoch = len(ty) // bs
    total = steps_per_epoch * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(total, max(1, int(proxy.warmup_frac * total))))
    mixer = None
    if proxy.mixup > 0 or proxy.cutmix > 0:
        from timm.data import Mixup

        mixer = Mixup(mixup_alpha=proxy.mixup, cutmix_alpha=proxy.cutmix,
                      label_smoothing=proxy.label_smoothing, num_classes=num_classes)
    if cuda:
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        def autocast():
            return contextlib.nullcontext()
    return _Loop(proxy, model, opt, sched, mixer, autocast, gen, tx, ty, vx, vy, early, dev, cuda,
                 epochs, bs, steps_per_epoch, loss_hook)


@dataclass(frozen=True)
class _Epoch:
    loss: float          # mean training loss
    images: int
    compute_s: float     # forward, backward and optimizer step
    diverged: str        # why the loss is not finite ("" when it is)


def _train_epoch(loop: _Loop, epoch: int) -> _Epoch:
    """One pass over the training subset in a seeded order; stops at a non-finite loss."""
    loop.model.train()
    perm = torch.randperm(len(loop.ty), generator=loop.gen).to(loop.dev)
    loss_sum, seen, compute_s = 0.0, 0, 0.0
    bs = loop.batch
    for s in range(loop.steps):
        idx = perm[s * bs:(s + 1) * bs]
        x, y = loop.tx[idx], loop.ty[idx]
        if loop.proxy.augment:
            x = _augment(x, loop.gen)
        x = _normalise(x, True)
        if loop.mixer is not None:
            x, target = loop.mixer(x, y)
        if loop.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with loop.autocast():
            logits = loop.model(x)
        if loop.mixer is not None:
            loss = torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        else:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=loop.proxy.label_smoothing)
        if loop.loss_hook is not None:
            loss = loop.loss_hook(loss)
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        loop.opt.step()
        loop.sched.step()
        lv = loss.item()  # synchronises, so the timing below is honest on GPU too
        compute_s += time.perf_counter() - t0
        if not math.isfinite(lv):
            return _Epoch(loss_sum / max(1, seen), seen, compute_s,
                          f"loss became {lv} in epoch {epoch}, step {s + 1}")
        loss_sum += lv * len(y)
        seen += len(y)
    return _Epoch(loss_sum / max(1, seen), seen, compute_s, "")
