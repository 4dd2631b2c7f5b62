"""How faithfully a proxy ranks the paper's roadmap: the statistics of `nas-convnext calibrate`.

A proxy (a few epochs on small images) is only worth its verdicts if it orders designs the way
full ImageNet training does. The paper's 17 roadmap steps (ResNet-50 -> ConvNeXt-T, Table 10)
are the one set of designs whose full-training top-1 we know, so the proxy trains each of them
with a few seeds and :func:`calibrate` compares the proxy's ordering with the paper's.

What is random here, and what is not:

* The 17 steps are a fixed benchmark, not a sample of designs: we do not ask how the proxy
  would do on some other set of steps. The randomness that the intervals describe is the
  proxy's own noise, its top-1 moving with the seed. So the bootstrap resamples **seeds
  within each step** (each step's seeds drawn with replacement, independently of the other
  steps), takes the mean per step, and recomputes the rank agreement. The seeds' deviations
  from their step's mean are scaled by sqrt(n / (n - 1)) before they are drawn, so that a
  resampled mean varies as much as the observed mean does (drawn as they are, two seeds would
  show half the variance and an interval too narrow). A step measured with one seed
  contributes no noise to the interval (the interval is then too narrow; ``interval_note``
  says which steps), and with one seed in all there is no interval at all (NaN, with the
  reason in ``interval_note``).
* What the interval covers: the tau that this proxy reaches **with this many seeds**. Noise
  pulls a tau down (a swapped pair never adds agreement), so more seeds raise the tau as well
  as narrowing its interval, and the bootstrap distribution lies a little below the observed
  tau: the percentile interval leans pessimistic, the safe direction for
  :func:`proxy_can_tell`. It is a confidence interval, not a prediction for a re-run with new
  seeds (which varies about sqrt(2) times as much); in simulations with the roadmap's gaps
  and 2 to 8 seeds, a re-run's tau fell inside it 70-90% of the time.
* Ranks are compared with Kendall's tau-b and Spearman's rho with average ranks, both of which
  handle ties (the paper itself has one: steps 09 and 10 at 80.57).

The FLOPs-only ranking (order the steps by their FLOPs and nothing else) is the floor a proxy
has to clear: a proxy whose tau interval reaches down to it cannot tell the designs apart any
better than counting FLOPs, and :func:`proxy_can_tell` says so.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .calibration_json import (
    _ci_or_none,
    _get_ci,
    _get_int,
    _get_list,
    _get_map,
    _get_num,
    _get_str,
    _num,
    _num_or_none,
    _plain,
    _scalar,
    _sort_key,
    _text,
)
from .roadmap import calibration_runs, roadmap_reference  # noqa: F401  (re-exported)
from .rowwise import _percentile, _rescaled_deviations, _rho, _tau_b
from .stats import require_columns

__all__ = [
    "LEVEL",
    "N_BOOT",
    "StepStat",
    "Calibration",
    "calibrate",
    "roadmap_reference",
    "proxy_can_tell",
    "can_tell_reason",
]

#: Confidence level of the intervals.
LEVEL = 0.95
#: Bootstrap resamples by default: enough for a stable 95% percentile interval of tau.
N_BOOT = 4000

_RUN_COLUMNS = ("step", "seed", "top1")
_REF_COLUMNS = ("step", "paper_top1", "flops")
MIN_STEPS = 3


@dataclass(frozen=True)
class StepStat:
    """One roadmap step under the proxy: its seeds' mean top-1 and spread beside the paper.

    ``mean`` and ``sd`` are proxy top-1 as fractions (``sd`` is the sample standard deviation
    over seeds, NaN with one seed); ``paper_top1`` is in the units the caller gave (Table 10's
    percent); ``flops`` the design's FLOPs.
    """

    step: Any
    n: int
    mean: float
    sd: float
    paper_top1: float
    flops: float


@dataclass(frozen=True)
class Calibration:
    """The rank agreement between a proxy and the paper over the roadmap (see the module doc).

    Every tau is Kendall's tau-b and every rho Spearman's rho. ``kendall_tau`` and
    ``spearman_rho`` rank the mean-of-seeds top-1 of each step; their ``*_ci`` are the
    ``level`` percentile-bootstrap intervals over seeds within steps, ``(nan, nan)`` when
    there is no estimate of the noise (``interval_note`` says why). ``per_seed_kendall_tau``
    holds (seed, tau) per seed; ``seed_kendall_tau`` is the mean tau between the top-1s of two
    seeds over all pairs of seeds (the proxy's agreement with itself, a ceiling for its
    agreement with anything else), NaN with one seed (``seed_note`` says why). ``flops_*``
    rank the steps by FLOPs alone. ``sign_agree`` of ``sign_pairs`` consecutive steps (in the
    reference's order) move in the same direction under the proxy as in the paper.
    """

    n_steps: int
    n_seeds: int
    seeds: tuple[Any, ...]
    kendall_tau: float
    kendall_tau_ci: tuple[float, float]
    spearman_rho: float
    spearman_rho_ci: tuple[float, float]
    per_seed_kendall_tau: tuple[tuple[Any, float], ...]
    per_seed_spearman_rho: tuple[tuple[Any, float], ...]
    mean_per_seed_kendall_tau: float
    seed_kendall_tau: float
    seed_pairs: int
    flops_kendall_tau: float
    flops_spearman_rho: float
    sign_agree: int
    sign_pairs: int
    steps: tuple[StepStat, ...]
    missing_steps: tuple[Any, ...]
    level: float
    n_boot: int
    boot_seed: int
    interval_note: str
    seed_note: str
    notes: tuple[str, ...]

    @property
    def sign_share(self) -> float:
        """Share of consecutive steps whose change agrees in sign (NaN with none)."""
        return self.sign_agree / self.sign_pairs if self.sign_pairs else math.nan

    def table(self) -> pd.DataFrame:
        """The per-step table: step, n, mean, sd, paper_top1, flops (a fresh DataFrame)."""
        return pd.DataFrame([s.__dict__ for s in self.steps],
                            columns=["step", "n", "mean", "sd", "paper_top1", "flops"])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN as null). The caller adds minutes, proxy and dataset.

        Keys: kendall_tau, kendall_tau_ci ([lo, hi] or null), spearman_rho, spearman_rho_ci,
        per_seed_kendall_tau and per_seed_spearman_rho ({seed as text: value}),
        mean_per_seed_kendall_tau, seed_kendall_tau, seed_pairs, flops_kendall_tau,
        flops_spearman_rho, sign_agreement ({agree, pairs, share}), can_tell, n_steps, n_seeds,
        seeds, steps (one object per step), missing_steps, level, n_boot, boot_seed,
        interval_method, interval_note, seed_note, notes.
        """
        return {
            "kendall_tau": _num_or_none(self.kendall_tau),
            "kendall_tau_ci": _ci_or_none(self.kendall_tau_ci),
            "spearman_rho": _num_or_none(self.spearman_rho),
            "spearman_rho_ci": _ci_or_none(self.spearman_rho_ci),
            "per_seed_kendall_tau": {str(s): _num_or_none(t) for s, t in self.per_seed_kendall_tau},
            "per_seed_spearman_rho": {str(s): _num_or_none(r) for s, r in self.per_seed_spearman_rho},
            "mean_per_seed_kendall_tau": _num_or_none(self.mean_per_seed_kendall_tau),
            "seed_kendall_tau": _num_or_none(self.seed_kendall_tau),
            "seed_pairs": self.seed_pairs,
            "flops_kendall_tau": _num_or_none(self.flops_kendall_tau),
            "flops_spearman_rho": _num_or_none(self.flops_spearman_rho),
            "sign_agreement": {"agree": self.sign_agree, "pairs": self.sign_pairs,
                               "share": _num_or_none(self.sign_share)},
            "can_tell": proxy_can_tell(self),
            "n_steps": self.n_steps,
            "n_seeds": self.n_seeds,
            "seeds": [_plain(s) for s in self.seeds],
            "steps": [{"step": _plain(s.step), "n": s.n, "mean": _num_or_none(s.mean),
                       "sd": _num_or_none(s.sd), "paper_top1": _num_or_none(s.paper_top1),
                       "flops": _num_or_none(s.flops)} for s in self.steps],
            "missing_steps": [_plain(s) for s in self.missing_steps],
            "level": self.level,
            "n_boot": self.n_boot,
            "boot_seed": self.boot_seed,
            "interval_method": ("percentile bootstrap over seeds within each step, deviations "
                                "rescaled by sqrt(n/(n-1))"),
            "interval_note": self.interval_note,
            "seed_note": self.seed_note,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Any) -> Calibration:
        """The Calibration that :meth:`to_json` wrote (e.g. read back from calibration.json).

        The file is untrusted: every field is checked for its type, and a wrong one raises
        ValueError naming the key and what is allowed. Extra keys (minutes, proxy, ...) are
        ignored.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a calibration must be a JSON object; got {type(data).__name__}")
        seeds = tuple(_get_list(data, "seeds", _scalar))
        per_tau = _get_map(data, "per_seed_kendall_tau")
        per_rho = _get_map(data, "per_seed_spearman_rho")
        sign = data.get("sign_agreement")
        if not isinstance(sign, Mapping):
            raise ValueError("calibration key 'sign_agreement' must be an object with agree and pairs")
        steps = []
        for i, s in enumerate(_get_list(data, "steps", lambda v, k: v)):
            if not isinstance(s, Mapping):
                raise ValueError(f"calibration key 'steps'[{i}] must be an object")
            steps.append(StepStat(step=_scalar(s.get("step"), f"steps[{i}].step"),
                                  n=_get_int(s, "n", f"steps[{i}]."),
                                  mean=_get_num(s, "mean", f"steps[{i}]."),
                                  sd=_get_num(s, "sd", f"steps[{i}]."),
                                  paper_top1=_get_num(s, "paper_top1", f"steps[{i}]."),
                                  flops=_get_num(s, "flops", f"steps[{i}].")))
        return cls(
            n_steps=_get_int(data, "n_steps"), n_seeds=_get_int(data, "n_seeds"), seeds=seeds,
            kendall_tau=_get_num(data, "kendall_tau"), kendall_tau_ci=_get_ci(data, "kendall_tau_ci"),
            spearman_rho=_get_num(data, "spearman_rho"),
            spearman_rho_ci=_get_ci(data, "spearman_rho_ci"),
            per_seed_kendall_tau=tuple((s, _num(per_tau.get(str(s)), "per_seed_kendall_tau"))
                                       for s in seeds),
            per_seed_spearman_rho=tuple((s, _num(per_rho.get(str(s)), "per_seed_spearman_rho"))
                                        for s in seeds),
            mean_per_seed_kendall_tau=_get_num(data, "mean_per_seed_kendall_tau"),
            seed_kendall_tau=_get_num(data, "seed_kendall_tau"),
            seed_pairs=_get_int(data, "seed_pairs"),
            flops_kendall_tau=_get_num(data, "flops_kendall_tau"),
            flops_spearman_rho=_get_num(data, "flops_spearman_rho"),
            sign_agree=_get_int(sign, "agree", "sign_agreement."),
            sign_pairs=_get_int(sign, "pairs", "sign_agreement."),
            steps=tuple(steps),
            missing_steps=tuple(_get_list(data, "missing_steps", _scalar)),
            level=_get_num(data, "level"), n_boot=_get_int(data, "n_boot"),
            boot_seed=_get_int(data, "boot_seed"),
            interval_note=_get_str(data, "interval_note"), seed_note=_get_str(data, "seed_note"),
            notes=tuple(_get_list(data, "notes", _text)),
        )


# --------------------------------------------------------------------------------------------
# The computation
# --------------------------------------------------------------------------------------------


# long: every figure of a Calibration from one set of resamples, in the order the report lists
# them; split, the resamples and the per-step table would be passed between the parts.
def calibrate(runs: pd.DataFrame, reference: pd.DataFrame, *, n_boot: int = N_BOOT,
              seed: int = 0, level: float = LEVEL) -> Calibration:
    """Compare a proxy's ranking of the roadmap steps with the paper's.

    Parameters
    ----------
    runs:
        The long table of proxy results, one row per (step, seed): columns ``step`` (a step
        index or a design key, as in ``reference``), ``seed`` and ``top1`` (a fraction in
        [0, 1]; NaN for a run that failed or diverged, which is left out). Other columns are
        ignored.
    reference:
        One row per step, **in roadmap order** (consecutive rows are consecutive steps for the
        sign agreement): ``step``, ``paper_top1`` (any units; only the order matters) and
        ``flops``. :func:`roadmap_reference` builds it for the paper's 17 steps. Steps without
        a finite proxy result are left out of every statistic and listed in ``missing_steps``.
    n_boot:
        Bootstrap resamples for the intervals.
    seed:
        Seed of the bootstrap's generator: the same inputs give the same intervals.
    level:
        Confidence level of the intervals, in (0, 1).

    Raises ValueError for a missing column, a step of ``runs`` that is not in ``reference``,
    one (step, seed) twice, a top-1 outside [0, 1], or fewer than 3 steps with a result.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1; got {n_boot!r}")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    ref = _check_reference(reference)
    long = _check_runs(runs, ref)

    order = [s for s in ref["step"] if s in set(long["step"])]
    missing = tuple(_plain(s) for s in ref["step"] if s not in set(order))
    if len(order) < MIN_STEPS:
        raise ValueError(f"calibration needs at least {MIN_STEPS} steps with a finite top-1; "
                         f"got {len(order)}")
    ref_by = ref.set_index("step")
    paper = ref_by.loc[order, "paper_top1"].to_numpy(dtype=float)
    flops = ref_by.loc[order, "flops"].to_numpy(dtype=float)
    groups = {s: g for s, g in long.groupby("step", sort=False)}
    values = [groups[s]["top1"].to_numpy(dtype=float) for s in order]
    means = np.array([v.mean() for v in values])
    seeds = tuple(sorted(long["seed"].unique().tolist(), key=_sort_key))
    notes: list[str] = []
    if missing:
        notes.append(f"{len(missing)} step(s) without a finite proxy top-1 are left out: "
                     f"{', '.join(map(str, missing))}")

    tau, rho = _tau_b(means[None, :], paper)[0], _rho(means[None, :], paper)[0]

    # --- intervals: seeds resampled within each step ---
    counts = np.array([v.size for v in values])
    if counts.max() < 2:
        tau_ci = rho_ci = (math.nan, math.nan)
        interval_note = ("one seed per step: the proxy's noise cannot be estimated, so there is "
                         "no interval; train with --seeds 2 or more")
    else:
        rng = np.random.default_rng(int(seed))
        boot = np.empty((n_boot, len(order)))
        for j, v in enumerate(values):
            idx = rng.integers(0, v.size, size=(n_boot, v.size))
            boot[:, j] = v.mean() + _rescaled_deviations(v)[idx].mean(axis=1)
        tau_ci = _percentile(_tau_b(boot, paper), level)
        rho_ci = _percentile(_rho(boot, paper), level)
        interval_note = (f"{level * 100:g}% percentile bootstrap, {n_boot} resamples of the "
                         "seeds within each step, deviations rescaled by sqrt(n/(n-1)) (the "
                         "steps are a fixed benchmark; the noise is the proxy's)")
        single = [str(_plain(s)) for s, c in zip(order, counts) if c < 2]
        if single:
            interval_note += (f"; step(s) {', '.join(single)} have one seed and add no noise, "
                              "so the interval is too narrow")

    # --- each seed against the paper, and seeds against each other ---
    wide = long.pivot(index="step", columns="seed", values="top1").reindex(order)
    paper_s = pd.Series(paper, index=order)
    per_tau, per_rho = [], []
    for s in seeds:
        col = wide[s]
        ok = col.notna().to_numpy()
        if ok.sum() >= 2:
            x = col.to_numpy(dtype=float)[ok][None, :]
            per_tau.append((_plain(s), float(_tau_b(x, paper_s.to_numpy()[ok])[0])))
            per_rho.append((_plain(s), float(_rho(x, paper_s.to_numpy()[ok])[0])))
        else:
            per_tau.append((_plain(s), math.nan))
            per_rho.append((_plain(s), math.nan))
    finite_taus = [t for _, t in per_tau if math.isfinite(t)]
    mean_seed_tau = float(np.mean(finite_taus)) if finite_taus else math.nan

    pair_taus = []
    for a, b in itertools.combinations(seeds, 2):
        ok = (wide[a].notna() & wide[b].notna()).to_numpy()
        if ok.sum() >= 2:
            t = _tau_b(wide[a].to_numpy(dtype=float)[ok][None, :], wide[b].to_numpy(dtype=float)[ok])[0]
            if math.isfinite(t):
                pair_taus.append(float(t))
    if len(seeds) < 2:
        seed_tau, seed_note = math.nan, ("one seed: the proxy's agreement with itself (the "
                                         "seed-to-seed tau) needs two or more seeds")
    elif not pair_taus:
        seed_tau, seed_note = math.nan, "no two seeds share two or more steps with a result"
    else:
        seed_tau = float(np.mean(pair_taus))
        seed_note = f"mean Kendall tau-b over {len(pair_taus)} pair(s) of seeds"

    # --- FLOPs only ---
    ftau, frho = _tau_b(flops[None, :], paper)[0], _rho(flops[None, :], paper)[0]

    # --- consecutive steps, in the reference's order, both present ---
    agree = pairs = 0
    present = set(order)
    full = list(ref["step"])
    mean_of = dict(zip(order, means))
    paper_of = dict(zip(ref["step"], ref["paper_top1"].to_numpy(dtype=float)))
    zero = 0
    for a, b in itertools.pairwise(full):
        if a in present and b in present:
            dp = np.sign(paper_of[b] - paper_of[a])
            if dp == 0:
                zero += 1
                continue
            pairs += 1
            agree += int(np.sign(mean_of[b] - mean_of[a]) == dp)
    if zero:
        notes.append(f"{zero} consecutive pair(s) with equal paper top-1 are left out of the "
                     "sign agreement")

    sds = [float(np.std(v, ddof=1)) if v.size > 1 else math.nan for v in values]
    step_stats = tuple(StepStat(step=_plain(s), n=int(v.size), mean=float(m), sd=sd,
                                paper_top1=float(p), flops=float(f))
                       for s, v, m, sd, p, f in zip(order, values, means, sds, paper, flops))
    return Calibration(
        n_steps=len(order), n_seeds=len(seeds), seeds=tuple(_plain(s) for s in seeds),
        kendall_tau=float(tau), kendall_tau_ci=tau_ci, spearman_rho=float(rho),
        spearman_rho_ci=rho_ci, per_seed_kendall_tau=tuple(per_tau),
        per_seed_spearman_rho=tuple(per_rho), mean_per_seed_kendall_tau=mean_seed_tau,
        seed_kendall_tau=seed_tau, seed_pairs=len(pair_taus), flops_kendall_tau=float(ftau),
        flops_spearman_rho=float(frho), sign_agree=agree, sign_pairs=pairs, steps=step_stats,
        missing_steps=missing, level=float(level), n_boot=int(n_boot), boot_seed=int(seed),
        interval_note=interval_note, seed_note=seed_note, notes=tuple(notes),
    )


def proxy_can_tell(cal: Calibration | Mapping[str, Any]) -> bool:
    """Whether the proxy ranks the roadmap measurably better than FLOPs alone.

    False when the lower end of the tau interval reaches down to (is at or below) the
    FLOPs-only tau, or when there is no interval (one seed) or no tau: the verdicts then say
    "cannot tell these choices apart" rather than supported / not supported. Accepts a
    :class:`Calibration` or its :meth:`~Calibration.to_json` dict (as read from
    calibration.json).
    """
    return can_tell_reason(cal)[0]


def can_tell_reason(cal: Calibration | Mapping[str, Any]) -> tuple[bool, str]:
    """:func:`proxy_can_tell` with its reason, one sentence for a report."""
    if isinstance(cal, Calibration):
        lo, hi = cal.kendall_tau_ci
        ftau = cal.flops_kendall_tau
    elif isinstance(cal, Mapping):
        ci = _get_ci(cal, "kendall_tau_ci")
        lo, hi = ci
        ftau = _get_num(cal, "flops_kendall_tau")
    else:
        raise ValueError(f"proxy_can_tell needs a Calibration or its JSON dict; got {type(cal).__name__}")
    if not math.isfinite(ftau):
        return False, "the FLOPs-only tau is undefined, so there is no baseline to beat"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return False, ("the proxy's tau has no interval (one seed), so it is not shown to rank "
                       "better than FLOPs alone")
    if lo <= ftau:
        return False, (f"the proxy's tau interval [{lo:.2f}, {hi:.2f}] reaches down to the "
                       f"FLOPs-only tau {ftau:.2f}: it cannot tell these choices apart")
    return True, (f"the proxy's tau interval [{lo:.2f}, {hi:.2f}] lies above the FLOPs-only tau "
                  f"{ftau:.2f}")


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------




def _check_reference(reference: pd.DataFrame) -> pd.DataFrame:
    require_columns(reference, _REF_COLUMNS, "the reference table")
    ref = reference.loc[:, list(_REF_COLUMNS)].copy()
    ref["step"] = ref["step"].map(_plain)
    dup = ref["step"][ref["step"].duplicated()].tolist()
    if dup:
        raise ValueError(f"the reference table repeats step(s) {dup[:5]}; expected one row per step")
    for col in ("paper_top1", "flops"):
        v = pd.to_numeric(ref[col], errors="coerce")
        bad = ref["step"][~np.isfinite(v.to_numpy(dtype=float, na_value=np.nan))].tolist()
        if bad:
            raise ValueError(f"the reference table's {col} is not a finite number for step(s) "
                             f"{bad[:5]}")
        ref[col] = v.astype(float)
    return ref.reset_index(drop=True)


def _check_runs(runs: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    require_columns(runs, _RUN_COLUMNS, "the runs table")
    long = runs.loc[:, list(_RUN_COLUMNS)].copy()
    long["step"] = long["step"].map(_plain)
    long["seed"] = long["seed"].map(_plain)
    if long["seed"].isna().any():
        raise ValueError("the runs table has rows without a seed")
    unknown = sorted({s for s in long["step"] if s not in set(ref["step"])}, key=_sort_key)
    if unknown:
        raise ValueError(f"step(s) {unknown[:5]} of the runs table are not in the reference; "
                         f"expected some of {list(ref['step'])[:20]}")
    dup = long[long.duplicated(["step", "seed"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise ValueError(f"step {first['step']!r} with seed {first['seed']!r} appears "
                         f"{int(((long['step'] == first['step']) & (long['seed'] == first['seed'])).sum())} "
                         "times; expected one result per step and seed")
    top1 = pd.to_numeric(long["top1"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    fin = top1[np.isfinite(top1)]
    if fin.size and ((fin < 0) | (fin > 1)).any():
        raise ValueError(f"top1 must be a fraction in [0, 1]; got values from {fin.min():g} to "
                         f"{fin.max():g} (percent values?)")
    long["top1"] = top1
    return long[np.isfinite(top1)].reset_index(drop=True)


