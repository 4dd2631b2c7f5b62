"""Measured speed of a full-size design: latency at batch 1 and throughput at a batch.

FLOPs are not time: depthwise convolutions, LayerNorm and large kernels cost more time per
FLOP than dense convolutions and BatchNorm, and how much more depends on the machine. So a
design's cost can also be measured where its trial runs: the full-size network (full width,
1000 classes, 224x224 by default, never the proxy) in `torch.inference_mode`, fp32 on the CPU
with a stated thread count, bf16 and channels-last on a CUDA GPU.

How a figure is taken: `warmup` untimed calls (first calls pay for allocation and kernel
selection, which belong to no design), then timed calls until at least `min_repeats` are done
and `budget_s` seconds have gone, or `max_repeats` are done. The figure is the median of the
timed calls and its spread is their interquartile range (IQR: 75th minus 25th percentile, with
numpy's linear interpolation), in the figure's unit. Every figure here and in the tables built
from it reports the median with its IQR, and two measurements of one design agree when their
medians differ by at most the sum of their IQRs (`agree`). The IQR rather than the median
absolute deviation: on a shared machine the calls' times have a long right tail (the process
is put aside mid-call) that shifts from one measurement to the next; the MAD ignores that tail,
the IQR takes its start in. Measured on two cores with a load average near 6 (the tests' tiny
design at 32x32, one thread, two back-to-back measurements per pair): the medians stayed within
the sum of the IQRs in 60 of 60 pairs (the farthest at 0.85 of it), but left the sum of the
MADs in 12 of 40.

Measurements are cached as small JSON files per (design, device key, batch, resolution, dtype
and torch version) under the cache folder (`speed/`), so a design is measured once per kind
of machine; the device key (`device_key`) names the CPU model and thread count, or the GPU.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..design.arch import Arch
from ..design.build import build_model
from ..design.complexity import complexity
from ..memory import available_bytes, format_bytes
from ..results import atomic_write_text
from ..userfile import FileRefused, load_file
from .data.cache import default_cache_dir
from .trial import check_resolution, pick_device

SPREAD = "interquartile range"
DEFAULT_BATCH = 64
DEFAULT_RESOLUTION = 224
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CACHE_FORMAT = 1
CPUINFO = Path("/proc/cpuinfo")
#: The table columns a trial's speed fills (`Speed.to_row`).
COLUMNS = ("latency_ms", "latency_ms_spread", "throughput", "throughput_spread", "speed_device")


@dataclass(frozen=True)
class Speed:
    """One design's measured speed on one kind of machine.

    latency_ms: median milliseconds of one batch-1 forward; latency_ms_spread their IQR.
    throughput: median images per second at `batch` (None when no batch was measured);
    throughput_spread their IQR. speed_device: the device key. threads: torch's CPU threads
    during the measurement. repeats / throughput_repeats: the timed calls behind each median.
    seconds: the whole measurement's wall time, building the model included.
    """

    latency_ms: float
    latency_ms_spread: float
    throughput: float | None
    throughput_spread: float | None
    speed_device: str
    batch: int | None
    resolution: int
    dtype: str
    threads: int
    repeats: int
    throughput_repeats: int
    seconds: float
    torch_version: str

    def __post_init__(self) -> None:
        _check_figure("latency_ms", self.latency_ms)
        _check_figure("latency_ms_spread", self.latency_ms_spread, zero=True)
        measured = self.batch is not None
        for name in ("throughput", "throughput_spread"):
            value = getattr(self, name)
            if measured:
                _check_figure(name, value, zero=name.endswith("spread"))
            elif value is not None:
                raise ValueError(f"{name} {value!r} given without a batch; expected None")
        for name in ("resolution", "threads", "repeats") + (("batch",) if measured else ()):
            _check_int(name, getattr(self, name))
        _check_int("throughput_repeats", self.throughput_repeats, zero=not measured)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {sorted(DTYPES)}")
        _check_figure("seconds", self.seconds, zero=True)
        for name in ("speed_device", "torch_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string; got {getattr(self, name)!r}")

    def to_row(self) -> dict[str, Any]:
        """The trials table's speed columns (NaN for a throughput that was not measured)."""
        row = {name: getattr(self, name) for name in COLUMNS}
        for name in ("throughput", "throughput_spread"):
            row[name] = math.nan if row[name] is None else row[name]
        return row

    @classmethod
    def from_dict(cls, data: Any) -> Speed:
        """The inverse of `dataclasses.asdict`, refusing (ValueError) anything else."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"a speed record needs exactly the keys {sorted(names)}; got {keys}")
        return cls(**data)


def _check_figure(name: str, value: Any, zero: bool = False) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > 0 or (zero and value == 0)))
    if not ok:
        allowed = "a finite number >= 0" if zero else "a finite number > 0"
        raise ValueError(f"{name} {value!r} is not allowed: expected {allowed}")


def _check_int(name: str, value: Any, zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
        allowed = "an integer >= 0" if zero else "a positive integer"
        raise ValueError(f"{name} {value!r} is not allowed: expected {allowed}")
    return value


def agree(a: Speed, b: Speed) -> bool:
    """Whether two measurements agree: medians within the sum of their IQRs, per figure.

    Only measurements of one kind (device key, batch, resolution, dtype) can be compared; any
    other pair is refused with a ValueError naming what differs.
    """
    for name in ("speed_device", "batch", "resolution", "dtype"):
        if getattr(a, name) != getattr(b, name):
            raise ValueError(f"speeds measured with {name} {getattr(a, name)!r} and "
                             f"{getattr(b, name)!r} are not comparable")
    pairs = [(a.latency_ms, a.latency_ms_spread, b.latency_ms, b.latency_ms_spread)]
    if a.batch is not None:
        pairs.append((a.throughput, a.throughput_spread, b.throughput, b.throughput_spread))
    return all(abs(m1 - m2) <= s1 + s2 for m1, s1, m2, s2 in pairs)


# ---- Device key


def cpu_model(cpuinfo: Path | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (x86 `model name`, ARM `Model`/`Hardware`),
    else what `platform` knows, else 'unknown CPU'. cpuinfo: another file to read (tests)."""
    try:
        with open(cpuinfo or CPUINFO, encoding="utf-8", errors="replace") as fh:
            text = fh.read(1 << 20)  # /proc files report size 0: read a bounded amount
    except OSError:
        text = ""
    for field in ("model name", "Model", "Hardware", "cpu model", "cpu"):
        match = re.search(rf"^{field}\s*:\s*(\S.*)$", text, re.MULTILINE)
        if match:
            return " ".join(match.group(1).split())[:200]
    return platform.processor() or platform.machine() or "unknown CPU"


def device_key(device: str | torch.device | None = None, threads: int | None = None,
               cpuinfo: Path | None = None) -> str:
    """The kind of machine a speed was measured on: speeds compare only within one key.

    device: 'cpu', 'cuda', 'cuda:1' ... (default: CUDA when available, else the CPU).
    threads: the CPU threads the measurement uses (default: torch's current number); part of
    a CPU key ('cpu: AMD EPYC, 2 threads'), not of a GPU key ('cuda: NVIDIA H200').
    """
    dev = _device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    n = torch.get_num_threads() if threads is None else _check_int("threads", threads)
    return f"cpu: {cpu_model(cpuinfo)}, {n} thread{'' if n == 1 else 's'}"


# ---- Measuring


def _timed_calls(call: Callable[[], Any], sync: Callable[[], None], warmup: int,
                 budget_s: float, min_repeats: int, max_repeats: int,
                 timer: Callable[[], float]) -> list[float]:
    """Seconds of each timed call after `warmup` untimed ones (the stopping rule above)."""
    for _ in range(warmup):
        call()
        sync()
    times: list[float] = []
    start = timer()
    while len(times) < max_repeats:
        t0 = timer()
        call()
        sync()
        t1 = timer()
        times.append(t1 - t0)
        if len(times) >= min_repeats and t1 - start >= budget_s:
            break
    return times


def _median_iqr(values: list[float]) -> tuple[float, float]:
    q25, q50, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q50), float(q75 - q25)


def _device(device: str | torch.device | None) -> torch.device:
    try:
        dev = pick_device(str(device) if device is not None else None)
    except RuntimeError:  # torch's own words for an unknown device name are a traceback
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r} is not supported for speed: use cpu, cuda "
                         "or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(dev)!r} asked for, but torch sees no CUDA GPU here")
    return dev


def _resolve(device: str | torch.device | None, dtype: str | None) -> tuple[torch.device, str]:
    dev = _device(device)
    name = dtype or ("bfloat16" if dev.type == "cuda" else "float32")
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not allowed: expected one of {sorted(DTYPES)}")
    return dev, name


def _check_request(arch: Arch, batch: Any, resolution: Any) -> None:
    if not isinstance(arch, Arch):
        raise TypeError(f"design {arch!r} is not a design (nas_convnext Arch)")
    if batch is not None:
        _check_int("batch", batch)
    _check_int("resolution", resolution)
    check_resolution(arch, resolution)


def _model(arch: Arch, dev: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The full-size network, ready for inference; refused in one line if it cannot fit."""
    params = complexity(arch, DEFAULT_RESOLUTION).params
    free = available_bytes()
    if 4 * params > free:  # built in float32 on the CPU first, whatever it then runs in
        raise ValueError(f"design with {params:,} parameters needs at least "
                         f"{format_bytes(4 * params)} to build; {format_bytes(free)} is free")
    model = build_model(arch).eval()
    if dev.type == "cuda":
        return model.to(device=dev, dtype=dtype, memory_format=torch.channels_last)
    return model.to(dtype=dtype)


def measure_speed(arch: Arch, *, batch: int | None = DEFAULT_BATCH,
                  resolution: int = DEFAULT_RESOLUTION, device: str | torch.device | None = None,
                  dtype: str | None = None, threads: int | None = None, warmup: int = 1,
                  budget_s: float = 2.0, min_repeats: int = 3, max_repeats: int = 50,
                  timer: Callable[[], float] = time.perf_counter) -> Speed:
    """Measure `arch`'s full-size network (no cache: see `cached_speed`).

    batch: images per call for the throughput figure (None: latency only, which on a CPU
        saves most of the time: one batch-64 forward of ConvNeXt-T at 224 takes many seconds).
    resolution: input height and width. device: 'cpu', 'cuda', 'cuda:N' (default: CUDA when
        available). dtype: 'float32' (CPU default), 'bfloat16' (CUDA default) or 'float16'.
    threads: torch's CPU threads while measuring (default: as set now); restored afterwards.
    warmup, budget_s, min_repeats, max_repeats: per figure, `warmup` untimed calls, then
        timed calls until `min_repeats` are done and `budget_s` seconds have passed, or
        `max_repeats` are done. timer: the clock (seconds), replaceable in tests.
    """
    _check_request(arch, batch, resolution)
    dev, dtype_name = _resolve(device, dtype)
    _check_int("warmup", warmup, zero=True)
    _check_int("min_repeats", min_repeats)
    if _check_int("max_repeats", max_repeats) < min_repeats:
        raise ValueError(f"max_repeats {max_repeats} is below min_repeats {min_repeats}")
    _check_figure("budget_s", budget_s, zero=True)
    old_threads = torch.get_num_threads()
    try:
        if threads is not None and dev.type == "cpu":
            torch.set_num_threads(_check_int("threads", threads))
        key, used_threads = device_key(dev), torch.get_num_threads()
        t_start = timer()
        sizes = (1,) if batch is None else (1, batch)
        rule = (warmup, budget_s, min_repeats, max_repeats, timer)
        times = _time_sizes(_model(arch, dev, DTYPES[dtype_name]), dev, DTYPES[dtype_name],
                            sizes, resolution, rule)
        seconds = timer() - t_start
    finally:
        torch.set_num_threads(old_threads)
        if dev.type == "cuda":  # hand the network's memory back to the trial that runs next
            torch.cuda.empty_cache()
    lat, lat_iqr = _median_iqr([t * 1000 for t in times[0]])
    thr = thr_iqr = None
    if batch is not None:
        thr, thr_iqr = _median_iqr([batch / t for t in times[1]])
    return Speed(latency_ms=lat, latency_ms_spread=lat_iqr, throughput=thr,
                 throughput_spread=thr_iqr, speed_device=key, batch=batch,
                 resolution=resolution, dtype=dtype_name, threads=used_threads,
                 repeats=len(times[0]), throughput_repeats=len(times[1]) if batch else 0,
                 seconds=max(0.0, seconds), torch_version=torch.__version__)


def _time_sizes(model: torch.nn.Module, dev: torch.device, dtype: torch.dtype,
                sizes: tuple[int, ...], resolution: int, rule: tuple) -> list[list[float]]:
    """The timed calls' seconds per batch size; inputs channels-last on CUDA (as its kernels
    want), the layout the network trains in on the CPU."""
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    layout = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    out = []
    with torch.inference_mode():
        for n in sizes:
            x = torch.randn(n, 3, resolution, resolution, generator=gen).to(
                device=dev, dtype=dtype, memory_format=layout)
            out.append(_timed_calls(lambda x=x: model(x), sync, *rule))
    return out


# ---- Cache


def cache_path(arch: Arch, key: str, batch: int | None, resolution: int, dtype: str,
               cache_dir: Path | None = None) -> Path:
    """Where the measurement of this (design, device key, batch, resolution, dtype) lives.

    The torch version is part of the name too: a new torch brings new kernels.
    """
    blob = json.dumps([CACHE_FORMAT, arch.key(), key, batch, resolution, dtype,
                       torch.__version__], sort_keys=True).encode()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "speed" / f"{hashlib.sha256(blob).hexdigest()[:32]}.json"


def read_cached(path: Path, arch: Arch, key: str, batch: int | None, resolution: int,
                dtype: str) -> Speed | None:
    """The cached Speed at `path` if it is a valid record of exactly this request, else None.

    The file is read as bounded JSON (never unpickled) and checked field by field, so a
    damaged, foreign or edited file is measured again rather than believed or crashed on.
    """
    if not Path(path).is_file():
        return None
    try:
        record = load_file(path, "json")
        if not isinstance(record, dict) or set(record) != {"format", "design", "speed"}:
            return None
        if record["format"] != CACHE_FORMAT or record["design"] != arch.to_dict():
            return None
        speed = Speed.from_dict(record["speed"])
    except (FileRefused, ValueError, TypeError):
        return None
    wanted = (key, batch, resolution, dtype, torch.__version__)
    got = (speed.speed_device, speed.batch, speed.resolution, speed.dtype, speed.torch_version)
    return speed if got == wanted else None


def cached_speed(arch: Arch, *, batch: int | None = DEFAULT_BATCH,
                 resolution: int = DEFAULT_RESOLUTION, device: str | torch.device | None = None,
                 dtype: str | None = None, threads: int | None = None,
                 cache_dir: Path | None = None, refresh: bool = False,
                 measure: Callable[..., Speed] = measure_speed, **options: Any) -> Speed:
    """`arch`'s speed on this kind of machine: from the cache, or measured and cached.

    Parameters as `measure_speed` (`options` go to it: warmup, budget_s, min_repeats,
    max_repeats, timer). cache_dir: the cache folder (default: `data.default_cache_dir()`,
    i.e. $NAS_CONVNEXT_CACHE or ~/.cache/nas-convnext); entries go in its `speed/` folder.
    refresh: measure even if cached. measure: the measuring function (tests count its calls).
    A cache that cannot be written (read-only, full) costs a warning, never the measurement.
    """
    _check_request(arch, batch, resolution)
    dev, dtype_name = _resolve(device, dtype)
    key = device_key(dev, threads if dev.type == "cpu" else None)
    path = cache_path(arch, key, batch, resolution, dtype_name, cache_dir)
    if not refresh:
        hit = read_cached(path, arch, key, batch, resolution, dtype_name)
        if hit is not None:
            return hit
    speed = measure(arch, batch=batch, resolution=resolution, device=dev, dtype=dtype_name,
                    threads=threads, **options)
    path = cache_path(arch, speed.speed_device, batch, resolution, dtype_name, cache_dir)
    record = {"format": CACHE_FORMAT, "design": arch.to_dict(), "speed": dataclasses.asdict(speed)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        warnings.warn(f"speed cache {path} not written ({exc.strerror or exc}); the design "
                      "will be measured again next time", RuntimeWarning, stacklevel=2)
    return speed


# ---- Parsing budgets and rank agreement

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"


def _positive(text: Any, what: str, units: dict[str, float], example: str) -> float:
    alternatives = "|".join(re.escape(u) for u in units if u)
    match = (None if isinstance(text, bool)
             else re.fullmatch(rf"\s*({_NUMBER})\s*({alternatives})?\s*", str(text)))
    value = float(match.group(1)) * units[match.group(2) or ""] if match else math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} {text!r} is not allowed: expected a positive number{example}")
    return value


def parse_latency_ms(text: str | float) -> float:
    """A latency bound in milliseconds from '30ms', '0.03s', '500us' or a bare number (ms)."""
    return _positive(text, "latency", {"": 1.0, "ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3},
                     " with ms, s or us, e.g. 30ms or 0.03s")


def parse_throughput(text: str | float) -> float:
    """A throughput bound in images per second from '200', '200/s' or '200img/s'."""
    return _positive(text, "throughput", {"": 1.0, "/s": 1.0, "img/s": 1.0, "images/s": 1.0},
                     " of images per second, e.g. 200 or 200/s")
