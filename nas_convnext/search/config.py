"""A search's settings (`SearchConfig`), each with its own rule, and the durations it takes.

Every setting is checked when the config is made, so a mistake is one line before anything
starts; a resume reads the settings back from run.json through `config_from_run_json`, which
names the file and the field that breaks a rule.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..results import (
    RESULTS_DIR,
    check_run_name,
    short_repr,
)

SAMPLERS = ("tpe", "nsga2", "random", "grid")
SCHEDULERS = ("mo-asha", "asha", "none")


@dataclass(frozen=True)
class SearchConfig:
    budget: float | None               # FLOPs of the full-size design; None: no budget (roadmap)
    space: str = "convnext"
    trials: int = 22                   # searched designs, besides the reference points
    time_budget_s: float | None = None
    sampler: str = "tpe"
    scheduler: str = "mo-asha"         # see search/mo_asha.py; asha: top-1 only
    proxy: str = "cpu"
    epochs: int | None = None          # overrides the proxy's epochs
    dataset: str = "fashion-mnist"     # real images by default (training.trial.DEFAULT_DATASET)
    data_dir: str | None = None
    concurrency: int | None = None     # None: as many as the resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    seed: int = 0
    name: str | None = None
    address: str | None = None
    storage_path: str | None = None
    results_dir: str = str(RESULTS_DIR)
    fit_width: bool = True
    replay: str | None = None          # a replay table: trials looked up, not trained
    objective: str = "flops"           # the second objective: flops, latency or throughput
    latency_budget_ms: float | None = None   # hard limit on batch-1 latency
    throughput_min: float | None = None      # hard floor on throughput (images/s)
    speed_batch: int | None = None     # throughput batch; None: see search.objective
    measure_speed: bool = False        # measure speed even when nothing above needs it

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            check(getattr(self, name))
        self.speed_objective()  # the speed settings' own rules

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def speed_objective(self):
        """The second objective and speed constraints (`search.objective.Objective`)."""
        from .objective import Objective

        return Objective(self.objective, self.latency_budget_ms, self.throughput_min,
                         self.speed_batch, self.measure_speed)


# Ray counts resources in steps of 0.0001 (`ray_constants.MIN_RESOURCE_GRANULARITY`): a
# request below one step is refused by Ray deep inside Tune ("Tracked actor is not managed by
# this event manager"), and a finer one is silently rounded. A GPU request above 1 must be
# whole (Ray's unit-instance resources), as Ray's documentation on fractional resources says.
RESOURCE_STEP = 1e-4
#: Most CPUs or GPUs one trial may ask for: far above any machine, low enough that counting
#: the request in Ray's steps stays a finite integer.
MAX_RESOURCE = 1e6


def _resource_steps(value: float) -> float:
    return value / RESOURCE_STEP


def resource_problem(value: float, gpu: bool) -> str | None:
    """What is wrong with a trial's CPU (`gpu` False: more than 0) or GPU count (0 allowed) for
    Ray, or None. The CLI checks its options with this while it still has the number as typed,
    to name it so."""
    expected = "a number >= 0" if gpu else "a positive number"
    if not (math.isfinite(value) and (value >= 0 if gpu else value > 0)):
        return f"expected {expected}"
    if value > MAX_RESOURCE:
        return f"expected at most {MAX_RESOURCE:,.0f}"
    if value == 0:
        return None
    steps = _resource_steps(value)
    if steps < 1 - 1e-9 or abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        return ("Ray counts resources in steps of 0.0001, so expected a multiple of 0.0001 "
                "(at least 0.0001), e.g. 0.25 or 1")
    if gpu and value > 1 and value != int(value):
        return "a trial takes a fraction of one GPU or whole GPUs (Ray's rule), e.g. 0.5, 1 or 2"
    return None


def _check_resource(option: str, value: float, gpu: bool) -> None:
    problem = resource_problem(value, gpu)
    if problem:
        raise ValueError(f"{option} {value!r}: {problem}")


def _check_in(option: str, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"{option} {value!r}: expected one of {', '.join(allowed)}")
    return check


def _check_trials(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
        raise ValueError(f"--trials {value!r}: expected an integer from 0 to 100000")


def _check_optional_positive_int(option: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{option} {value!r}: expected a positive integer")
    return check


def _check_optional_positive_number(option: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not (math.isfinite(value) and value > 0)):
        raise ValueError(f"{option} {value!r}: expected a positive number")


def _check_budget(value: float | None) -> None:
    if value is None:  # the roadmap replay: run_search refuses it for a search
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (math.isfinite(value) and value > 0):
        raise ValueError(f"--budget {value!r}: expected a positive number of FLOPs, e.g. 4.5e9")


def _check_time_budget(value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"--time-budget {value!r}: expected a positive duration")


def _check_seed(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"--seed {value!r}: expected an integer from 0 to {2**32 - 1}")


def _check_name(value: str | None) -> None:
    if value is not None:
        check_run_name(value)


def _check_address(value: str | None) -> None:
    if value:
        cluster_endpoint(value)


def _check_dataset(value: str) -> None:
    from ..training.trial import DATASET_CHOICES

    _check_in("--dataset", DATASET_CHOICES)(value)


def _no_check(value: Any) -> None:
    pass


# Each setting's own rule, by field: SearchConfig applies them all, and a resume names the
# field of run.json that breaks one.
_CHECKS: dict[str, Callable[[Any], None]] = {
    "budget": _check_budget,
    "sampler": _check_in("--sampler", SAMPLERS),
    "scheduler": _check_in("--scheduler", SCHEDULERS),
    "trials": _check_trials,
    "epochs": _check_optional_positive_int("--epochs"),
    "concurrency": _check_optional_positive_int("--concurrency"),
    "cpus_per_trial": lambda v: _check_resource("--cpus-per-trial", v, gpu=False),
    "gpus_per_trial": lambda v: _check_resource("--gpus-per-trial", v, gpu=True),
    "time_budget_s": _check_time_budget,
    "seed": _check_seed,
    "name": _check_name,
    "address": _check_address,
    "space": _no_check, "proxy": _no_check, "dataset": _check_dataset, "data_dir": _no_check,
    "storage_path": _no_check, "results_dir": _no_check, "fit_width": _no_check,
    "replay": _no_check,
    "objective": _check_in("--objective", ("flops", "latency", "throughput")),
    "latency_budget_ms": lambda v: _check_optional_positive_number("--latency-budget", v),
    "throughput_min": lambda v: _check_optional_positive_number("--throughput-min", v),
    "speed_batch": _check_optional_positive_int("--speed-batch"), "measure_speed": _no_check,
}

# Settings added after runs were made: a run.json without one reads as its default (the run
# was made before the setting existed, so it used exactly this), so runs of earlier versions
# resume.
_ADDED_LATER = {"replay": None, "objective": "flops", "latency_budget_ms": None,
                "throughput_min": None, "speed_batch": None, "measure_speed": False}


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON has a field's declared type (bool is not a number)."""
    for t in typing.get_args(hint) or (hint,):
        if (t is type(None) and value is None) or (t is bool and type(value) is bool) \
                or (t is int and type(value) is int) or (t is str and isinstance(value, str)) \
                or (t is float and type(value) in (int, float)):
            return True
    return False


def _type_name(hint: Any) -> str:
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
             str: "text"}
    return " or ".join(names.get(t, str(t)) for t in typing.get_args(hint) or (hint,))


def config_from_run_json(path: Path, raw: dict[str, Any],
                         overrides: dict[str, Any]) -> SearchConfig:
    """The settings of a run to resume, from its run.json; a ValueError naming the file and the
    field when one is missing, unknown, of the wrong type or against its rule."""
    hints = typing.get_type_hints(SearchConfig)
    fix = "restore the file from a copy or start a new run"
    unknown = sorted(str(k) for k in raw if k not in hints)
    if unknown:
        raise ValueError(f"{path}: field 'config' has key(s) {unknown} that are not settings "
                         f"of nas-convnext search: {fix}")
    raw = {**{k: v for k, v in _ADDED_LATER.items() if k not in raw}, **raw}
    missing = [k for k in hints if k not in raw]
    if missing:
        raise ValueError(f"{path}: field 'config' lacks {missing}: {fix}")
    for name, hint in hints.items():
        value = raw[name]
        if not _has_type(value, hint):
            raise ValueError(f"{path}: field 'config.{name}' is {short_repr(value)}, expected "
                             f"{_type_name(hint)}: {fix}")
        try:
            _CHECKS[name](value)
        except ValueError as exc:
            raise ValueError(f"{path}: field 'config.{name}': {exc}; {fix}") from None
    return SearchConfig(**{**raw, **overrides})


def parse_duration(text: str) -> float:
    """'30m', '90s', '1.5h', '2h30m' or plain seconds, in seconds."""
    import re

    s = str(text).strip().lower()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", s):
        value = float(s)
    else:
        parts = re.findall(r"([0-9]*\.?[0-9]+)\s*([hms])", s)
        if not parts or re.sub(r"([0-9]*\.?[0-9]+)\s*([hms])", "", s).strip():
            raise ValueError(f"duration {text!r} is not understood: expected e.g. 30m, 90s, "
                             "1.5h or 2h30m")
        value = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"duration {text!r} must be positive")
    return value


def cluster_endpoint(address: str, source: str | None = None) -> tuple[str, int] | None:
    """(host, port) of a `--address`, None for "auto"; a ValueError for anything else.

    `source` names where the address came from in messages (default: `--address 'X'`).
    """
    if address == "auto":
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 \
            or any(c.isspace() or c in "/@?#" for c in host):
        raise ValueError(f"{source or f'--address {address!r}'}: expected auto, HOST:PORT or "
                         f"ray://HOST:PORT (the head node's address, e.g. 10.0.0.5:6379)")
    return host, int(port)


def check_storage_path(path: str | None) -> None:
    """Refuse, before anything is made, a --storage-path that cannot be Ray's folder: a file,
    a path through a file, or a folder that cannot be written."""
    if not path:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--storage-path {path}: is a file, not a folder: give a folder (it is "
                         "made if missing)")
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"--storage-path {path}: {existing} is a file, not a folder")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--storage-path {path}: cannot write in {existing}; give a folder you "
                         "can write")
