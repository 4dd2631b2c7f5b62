"""A run's analysis, computed once: `analyse(df, run_dir, seed, n_boot)` -> `RunAnalysis`.

The table is filtered once, the front found once and the bootstrap drawn once; the report
only renders the result (`report.run_report`). Also here: Optuna's parameter importances,
read from a copy of the run's study.db.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..design.arch import REFERENCES
from ..design.codec import DIMENSIONS, texts
from ..results import STUDY_FILE, one_line, read_run_json
from ..userfile import as_number
from .effects import ChoiceStat, choice_stats, edf_of, effects_table
from .front import excluded, front_of, status_counts, usable
from .stats import LEVEL, EdfByChoice, _check_boot
from .stats import _numeric as _num
from .timecost import TimeAnalysis, time_analysis
from .verdict import (
    CONVNEXT_TAG,
    MIN_TRIALS,
    Verdict,
    locate_reference,
    summary_of,
    verdict_of,
)

#: Fewest usable Optuna trials before parameter importances are computed.
MIN_IMPORTANCE_TRIALS = 5
STUDY_NAME = "search"

#: Log-spaced GFLOP bins of the complexity-normalised EDFs.
EDF_BINS = 10


@dataclass(frozen=True)
class Importances:
    """Optuna parameter importances of the first objective (proxy top-1)."""

    n: int                                  # Optuna trials they rest on
    evaluator: str
    values: tuple[tuple[str, float], ...]   # (parameter, importance), descending, sum 1





@dataclass(frozen=True)
class RunAnalysis:
    """Everything a run's report shows, computed once from its trials table.

    `u` holds the usable trials and `excl` the others (with a `reason`); `front` and
    `front_params` are the Pareto fronts against GFLOPs and parameters; `verdict`, `effects`
    and `edfs` rest on one bootstrap of every choice's top-1 (`stats`); `refs` are the
    reference rows to mark in the figures (tag -> row).
    """

    df: pd.DataFrame
    u: pd.DataFrame
    excl: pd.DataFrame
    counts: dict[str, int]
    dims: tuple[str, ...]
    varying: tuple[str, ...]
    fixed: tuple[tuple[str, str], ...]
    front: pd.DataFrame
    front_params: pd.DataFrame
    stats: dict[str, tuple[ChoiceStat, ...]]
    verdict: Verdict
    effects: pd.DataFrame
    edfs: dict[str, tuple[EdfByChoice, EdfByChoice]]
    refs: dict[str, pd.Series]
    importances: Importances | None
    summary: dict[str, Any]
    run_meta: dict[str, Any] | None
    notes: tuple[str, ...]
    seed: int
    n_boot: int
    time: TimeAnalysis | None = None  # the fronts in measured time (None: no speed measured)


_EFFECT_COLUMNS = ["dim", "choice", "n", "n_dim", "top1_mean", "top1_mean_lo", "top1_mean_hi",
                   "top1_best", "top1_best_lo", "top1_best_hi", "gflops_mean", "effect",
                   "effect_vs_best_other", "front_count", "front_n", "front_share"]


def analyse(df: pd.DataFrame, run_dir: Path | None, seed: int = 0,
            n_boot: int = 10_000) -> RunAnalysis:
    """The whole analysis of a run's trials table, once: filtered once, the front found once,
    every choice bootstrapped once.

    `df`: the trials table (`results.read_table`). `run_dir`: the run folder, for run.json
    (the settings shown) and study.db (Optuna's parameter importances), or None. `seed` and
    `n_boot`: the bootstrap's seed and resamples. Raises ValueError, naming the counts by
    status, when no trial is usable, and for a table without design columns.
    """
    _check_boot(n_boot, LEVEL)
    notes: list[str] = []
    u = usable(df)  # raises a ValueError naming the counts when nothing is usable
    excl = excluded(df)
    dims = tuple(d for d in DIMENSIONS if d in df.columns)
    if not dims:
        raise ValueError(f"the trials table has none of the design columns {list(DIMENSIONS)}")
    labels = {d: texts(u[d]) for d in dims}
    varying = tuple(d for d in dims if labels[d].nunique() > 1)
    fixed = tuple((d, str(labels[d].iloc[0])) for d in dims if d not in varying)
    front = front_of(u)
    if "params" in df.columns and np.isfinite(_num(u["params"])).any():
        front_params = front_of(u, x="params")
    else:
        front_params = u.iloc[0:0]
        notes.append("no parameter counts in the table: the front against parameters is empty")
    ref = locate_reference(df, CONVNEXT_TAG, dims)
    stats = choice_stats(u, dims, front, seed, n_boot, LEVEL)
    verdict = verdict_of(u, front, ref, stats, dims, MIN_TRIALS, LEVEL)
    effects = _effects(u, front, stats, varying, notes)
    edfs = {d: (edf_of(u, d), edf_of(u, d, normalize=True, bins=EDF_BINS)) for d in varying}
    summary = summary_of(df, u, front, ref if "reference" in df.columns else None, dims,
                         on_front=verdict.on_front)
    run_meta, importances = _from_run_folder(run_dir, u, seed, notes)
    cx = {d.dim: d.convnext_choice for d in verdict.dims if d.convnext_choice is not None}
    timed = time_analysis(u, dims, cx or None, seed=seed, n_boot=n_boot)
    if timed is not None:
        notes.extend(timed.notes)
    return RunAnalysis(df=df, u=u, excl=excl, counts=status_counts(df), dims=dims,
                       varying=varying, fixed=fixed, front=front, front_params=front_params,
                       stats=stats, verdict=verdict, effects=effects, edfs=edfs,
                       refs=_reference_rows(u, verdict), importances=importances,
                       summary=summary, run_meta=run_meta, notes=tuple(notes), seed=seed,
                       n_boot=n_boot, time=timed)


def _effects(u: pd.DataFrame, front: pd.DataFrame, stats: dict[str, tuple[ChoiceStat, ...]],
             varying: tuple[str, ...], notes: list[str]) -> pd.DataFrame:
    if varying:
        effects = effects_table(u, front, stats, varying)
        effects["gflops_vs_all"] = effects["gflops_mean"] - float(np.nanmean(_num(u["flops"]))) / 1e9
        return effects
    notes.append("no design dimension varies among the completed trials: no EDFs and no "
                 "choice effects")
    effects = pd.DataFrame(columns=_EFFECT_COLUMNS)
    effects["gflops_vs_all"] = pd.Series(dtype=float)
    return effects


def _reference_rows(u: pd.DataFrame, verdict: Verdict) -> dict[str, pd.Series]:
    """The best completed row of each reference point, and ConvNeXt-T's row of the verdict."""
    refs: dict[str, pd.Series] = {}
    if "reference" in u.columns:
        tags = u["reference"].astype(object).where(u["reference"].notna(), "").astype(str)
        for tag in REFERENCES:
            rows = u.loc[(tags == tag).to_numpy()]
            if len(rows):
                refs[tag] = rows.iloc[int(np.argmax(_num(rows["top1"])))]
    if CONVNEXT_TAG in refs and verdict.reference_index is not None \
            and verdict.reference_index in u.index:
        refs[CONVNEXT_TAG] = u.loc[verdict.reference_index]
    return refs


def _from_run_folder(run_dir: Path | None, u: pd.DataFrame, seed: int,
                     notes: list[str]) -> tuple[dict[str, Any] | None, Importances | None]:
    """run.json and Optuna's parameter importances, when there is a run folder to read."""
    if run_dir is None:
        notes.append("no run folder: Optuna parameter importances skipped")
        return None, None
    run_meta = None
    try:
        run_meta = read_run_json(run_dir)
    except ValueError as exc:
        notes.append(f"run settings unknown: {exc}")
    importances, note = _importances(Path(run_dir), u, seed)
    if note:
        notes.append(note)
    return run_meta, importances


def _importances(run_dir: Path, u: pd.DataFrame, seed: int) -> tuple[Importances | None, str]:
    """Optuna's parameter importances for top-1 over the study's measured, feasible trials.

    The study is read from a copy of study.db, so a search still writing it is not disturbed
    and the file is never modified. Only COMPLETE trials that satisfy the FLOP constraint and,
    when the table records Optuna trial numbers, belong to usable rows of the table count: the
    search tells Optuna [0, GFLOPs] for designs over budget and for diverged trials, which are
    not measurements.
    """
    path = run_dir / STUDY_FILE
    skip = "Optuna parameter importances skipped"
    if not path.is_file():
        return None, f"no {STUDY_FILE} in the run folder: {skip}"
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        return None, f"optuna is not installed: {skip}"
    numbers: set[int] | None = None
    if "optuna_number" in u.columns:
        nums = _num(u["optuna_number"])
        if np.isfinite(nums).any():
            numbers = {int(v) for v in nums[np.isfinite(nums)]}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "study created" lines on stderr
    try:
        loaded = _load_study_trials(optuna, path)
        if isinstance(loaded, str):
            return None, f"{loaded}: {skip}"
        trials, directions = loaded
        return _importances_of(optuna, trials, directions, numbers, seed)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _load_study_trials(optuna: Any, path: Path) -> tuple[list, list] | str:
    """The COMPLETE trials and directions of the study in a copy of ``path``, or why not."""
    from optuna.trial import TrialState

    with tempfile.TemporaryDirectory(prefix="nas-convnext-study.") as tmp:
        copy = Path(tmp) / STUDY_FILE
        shutil.copyfile(path, copy)
        storage = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                storage = optuna.storages.RDBStorage(f"sqlite:///{copy}")
                study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
                trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                return trials, list(study.directions)
        except KeyError:
            return f"{path} holds no study named {STUDY_NAME!r}"
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
            return f"{path} could not be read as an Optuna study ({type(exc).__name__})"
        finally:
            if storage is not None:
                try:
                    storage.engine.dispose()
                except Exception:  # noqa: BLE001
                    pass


def _importances_of(optuna: Any, trials: list, directions: list, numbers: set[int] | None,
                    seed: int) -> tuple[Importances | None, str]:
    skip = "Optuna parameter importances skipped"

    def feasible(t: Any) -> bool:
        cons = [v for k, v in t.system_attrs.items() if str(k).startswith("constraints")]
        flat = []
        for v in cons:
            flat.extend(v if isinstance(v, (list, tuple)) else [v])
        return all(as_number(v) <= 0 for v in flat)

    kept = [t for t in trials if t.values and math.isfinite(as_number(t.values[0])) and feasible(t)]
    if numbers is not None:
        kept = [t for t in kept if t.number in numbers]
    else:
        kept = [t for t in kept if as_number(t.values[0]) > 0]
    if len(kept) < MIN_IMPORTANCE_TRIALS:
        return None, (f"only {len(kept)} completed, measured Optuna trial(s) in {STUDY_FILE} (fewer "
                      f"than {MIN_IMPORTANCE_TRIALS}): {skip}")
    try:
        from optuna.importance import (
            FanovaImportanceEvaluator,
            PedAnovaImportanceEvaluator,
            get_param_importances,
        )

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub = optuna.create_study(directions=directions)
            sub.add_trials(kept)
            try:
                import sklearn  # noqa: F401 - fANOVA needs it

                evaluator, name = FanovaImportanceEvaluator(seed=seed), "fANOVA"
                values = get_param_importances(sub, evaluator=evaluator,
                                               target=lambda t: t.values[0])
            except ImportError:
                # PED-ANOVA ranks parameters by how they separate the best trials from the
                # rest, for low targets: pass -top1 so that "best" means highest top-1.
                evaluator, name = PedAnovaImportanceEvaluator(), "PED-ANOVA (scikit-learn absent)"
                values = get_param_importances(sub, evaluator=evaluator,
                                               target=lambda t: -t.values[0])
    except Exception as exc:  # noqa: BLE001 - too little variety, one value per parameter...
        return None, f"Optuna could not compute parameter importances ({one_line(exc, 300)}): {skip}"
    pairs = tuple(sorted(((str(k), float(v)) for k, v in values.items()),
                         key=lambda kv: (-kv[1], kv[0])))
    if not pairs:
        return None, f"the Optuna study has no parameters: {skip}"
    return Importances(n=len(kept), evaluator=name, values=pairs), ""
