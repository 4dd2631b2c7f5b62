"""The ablation's analysis on hand-made trials tables: rows matched to the plan by design and
seed, paired verdicts, the JSON `ablate --json` prints, and the paper's directions derived
from roadmap steps."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from nas_convnext.analysis.ablation import (
    ablation_tables,
    analyse_ablation,
    paper_directions,
    plan_record,
)
from nas_convnext.design.arch import load_design, presets
from nas_convnext.design.roadmap import Step, roadmap_steps
from nas_convnext.design.space import load_space
from nas_convnext.design.variants import plan_variants

SEEDS = (0, 1, 2)
BASE_TOP1 = {0: 0.40, 1: 0.46, 2: 0.43}


def small_plan():
    base = load_design("convnext_t", ["depths=2,2,6,2"])
    return plan_variants(base, load_space("small"))


def record(plan=None, seeds=SEEDS):
    plan = plan or small_plan()
    return plan_record(plan, "convnext_t depths=2,2,6,2", "small", seeds)


def trials(plan, shift: dict[str, object], seeds=SEEDS, status=None) -> pd.DataFrame:
    """One row per (design, seed): the base's top-1 of that seed plus the variant's shift (a
    number, or a list with one value per seed)."""
    rows = []
    for v in plan.variants:
        for i, s in enumerate(seeds):
            d = shift.get(v.id, 0.0)
            d = d[i] if isinstance(d, (list, tuple)) else d
            st = (status or {}).get((v.id, s), "completed")
            rows.append({**v.arch.to_row(), "seed": s, "status": st,
                         "top1": BASE_TOP1[s] + d if st != "error" else math.nan,
                         "flops": v.flops})
    return pd.DataFrame(rows)


def test_rows_are_matched_to_variants_by_design_and_seed():
    plan = small_plan()
    df = trials(plan, {"kernel=3": -0.02}, status={("norm=bn", 1): "diverged"})
    other = {**presets()["resnet50"].to_row(), "seed": 0, "status": "completed", "top1": 0.9,
             "flops": 4e9}
    df = pd.concat([df, pd.DataFrame([other])], ignore_index=True)
    variants, base, unmatched = ablation_tables(df, record(plan))
    assert unmatched == 1
    assert base.set_index("seed")["top1"].to_dict() == pytest.approx(BASE_TOP1)
    k3 = variants[variants["variant"] == "kernel=3"].set_index("seed")["top1"]
    assert k3.to_dict() == pytest.approx({s: BASE_TOP1[s] - 0.02 for s in SEEDS})
    bn = variants[variants["variant"] == "norm=bn"].set_index("seed")["top1"]
    assert math.isnan(bn[1]) and bn[0] == pytest.approx(BASE_TOP1[0])
    assert set(variants["variant"]) == {v.id for v in plan.variants[1:]}
    flops = dict(zip(variants["variant"], variants["flops"]))
    assert flops["depths=1,1,3,1"] == plan.variants[1].flops


def test_verdicts_from_a_trials_table():
    plan = small_plan()
    df = trials(plan, {"kernel=3": -0.02,                    # constant loss: base better
                       "norm=bn": [0.03, 0.05, 0.04],        # clear gain: base worse
                       "spatial_conv=middle": [0.01, -0.02, 0.005],
                       "depths=1,1,3,1": [-0.01, 0.02, -0.015]})
    an = analyse_ablation(df, record(plan), minutes=12.5)
    verdicts = {v.dimension: v.verdict for v in an.paired.verdicts}
    assert verdicts == {"kernel": "better", "norm": "worse", "spatial_conv": "undecided",
                        "depths": "undecided"}
    assert an.paired.decided == 2
    bn = an.paired.diff("norm=bn")
    assert bn.mean == pytest.approx(0.04) and bn.lo > 0
    out = an.to_json()
    assert out["base"]["name"] == "convnext_t depths=2,2,6,2"
    assert out["seeds"] == list(SEEDS) and out["minutes"] == 12.5
    assert out["verdicts"] == verdicts
    v = {x["variant"]: x for x in out["variants"]}
    assert v["kernel=3"]["dimension"] == "kernel" and v["kernel=3"]["value"] == "3"
    assert v["kernel=3"]["mean_diff"] == pytest.approx(-0.02)
    assert v["kernel=3"]["ci"] == pytest.approx([-0.02, -0.02])
    assert v["kernel=3"]["flops"] == plan.variants[2].flops
    assert v["depths=1,1,3,1"]["matched"] is True and "width 96 -> " in v["depths=1,1,3,1"]["why"]
    assert out["trials"] == {"completed": 15}


def test_a_failed_seed_leaves_its_variant_without_an_interval():
    plan = small_plan()
    status = {("kernel=3", 0): "error", ("kernel=3", 2): "error"}
    an = analyse_ablation(trials(plan, {"kernel=3": -0.02}, status=status), record(plan))
    d = an.paired.diff("kernel=3")
    assert d.n == 1 and not math.isfinite(d.lo)
    assert an.paired.verdict("kernel").verdict == "undecided"
    assert any("kernel=3" in n for n in an.notes)


def test_no_completed_base_is_refused():
    plan = small_plan()
    status = {("base", s): "error" for s in SEEDS}
    with pytest.raises(ValueError, match="base design has no completed trial"):
        analyse_ablation(trials(plan, {}, status=status), record(plan))


# ----- the paper's direction -----


def test_paper_directions_come_from_the_roadmap_steps():
    steps = {s.name.split("/")[1]: s for s in roadmap_steps()}
    dirs = paper_directions(presets()["convnext_t"], ["kernel", "groups", "downsample", "width"])
    k = {c.other: c.delta for c in dirs["kernel"].changes}
    # 7 against 5 (step 08 -> 09) and against 9 (step 09 -> 10): the base's value minus the other
    assert k["5"] == pytest.approx(steps["09-kernel-7"].paper_top1 - steps["08-kernel-5"].paper_top1)
    assert k["9"] == pytest.approx(steps["09-kernel-7"].paper_top1 - steps["10-kernel-9"].paper_top1)
    assert set(k) == {"5", "9"}            # 3 -> 5 and 9 -> 11 do not involve the base's 7
    # depthwise lost top-1 on the roadmap (at far fewer FLOPs): the paper's direction is worse
    assert dirs["groups"].direction == "worse"
    assert dirs["groups"].changes[0].delta < 0
    # the last step changed two fields at once, and says so
    assert dirs["downsample"].changes[0].also == ("layer_scale",)
    assert dirs["width"].direction == "better"


def test_paper_directions_of_hand_made_steps():
    a = presets()["convnext_t"]
    kernel3 = a.__class__(**{**a.__dict__, "kernel": 3})
    relu = a.__class__(**{**a.__dict__, "act": "relu"})
    steps = [Step(0, "r/00-k3", "start", kernel3, "modern", 80.0, 4.0),
             Step(1, "r/01-k7", "kernel 7", a, "modern", 79.5, 4.1, parent=0),
             Step(2, "r/02-relu", "relu", relu, "modern", 79.5, 4.1, parent=1),
             Step(3, "r/03-k7-orig", "other recipe", a, "original", 60.0, 4.1, parent=2)]
    dirs = paper_directions(a, ["kernel", "act", "norm"], steps)
    assert dirs["kernel"].direction == "worse"
    assert dirs["kernel"].changes[0].delta == pytest.approx(-0.5)
    assert dirs["act"].direction == "equal"          # 79.5 both ways
    # a step under another recipe compares nothing; a field never changed has no direction
    assert len(dirs["act"].changes) == 1
    assert dirs["norm"].direction is None and "not compared" in dirs["norm"].text()
    # the sign follows the base: around the kernel-3 design, the same step reads the other way
    flipped = paper_directions(kernel3, ["kernel"], steps)
    assert flipped["kernel"].direction == "better"
    assert flipped["kernel"].changes[0].delta == pytest.approx(0.5)


def test_the_paper_direction_counts_only_the_alternatives_tried():
    a = presets()["convnext_t"]
    dirs = paper_directions(a, ["kernel"], alternatives={"kernel": ["3"]})
    assert dirs["kernel"].direction is None           # the roadmap never compared 7 with 3
    dirs = paper_directions(a, ["kernel"], alternatives={"kernel": ["3", "5"]})
    assert [c.other for c in dirs["kernel"].changes] == ["5"]
    assert dirs["kernel"].direction == "better"       # 7 over 5 (9 not tried)
