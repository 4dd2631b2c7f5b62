"""`nas-convnext speed`: one design's measured figures beside its FLOPs, the roadmap's table
with the FLOPs-to-time rank agreement, and one-line errors for bad input.

One real measurement uses a tiny design at 32x32 (a fraction of a second); the roadmap's
19 full-size networks are measured by a stand-in whose times are set per design, so the table
and the agreement can be checked against values worked out by hand.
"""
from __future__ import annotations

import json

import pytest

from nas_convnext.cli import main
from nas_convnext.design.complexity import complexity
from nas_convnext.training import speed as sp
from nas_convnext.training import speed_table


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


TINY = ("convnext_t", "depths=1,1,1,1", "width=8")


def test_one_design_json_has_the_issue_keys_and_the_full_size_flops(capsys, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(tmp_path))
    code, out, _ = run(capsys, "speed", *TINY, "--resolution", "32", "--batch", "4",
                       "--threads", "1", "--seconds", "0.05", "--json")
    assert code == 0
    d = json.loads(out)
    for key in ("latency_ms", "latency_ms_spread", "throughput", "speed_device", "flops"):
        assert key in d, key
    from nas_convnext.design.arch import load_design

    arch = load_design(TINY[0], list(TINY[1:]))
    assert d["flops"] == complexity(arch).flops          # the full-size design's count
    assert d["depths"] == [1, 1, 1, 1] and d["width"] == 8
    assert d["latency_ms"] > 0 and d["throughput"] > 0 and d["batch"] == 4
    assert d["resolution"] == 32 and d["threads"] == 1
    assert d["speed_device"] == sp.device_key("cpu", threads=1)
    # Measured once per kind of machine: the same command again reads the cache.
    files = list((tmp_path / "speed").glob("*.json"))
    assert len(files) == 1
    code, out2, _ = run(capsys, "speed", *TINY, "--resolution", "32", "--batch", "4",
                        "--threads", "1", "--seconds", "0.05", "--json")
    assert json.loads(out2)["latency_ms"] == d["latency_ms"]


def test_latency_only_text(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(tmp_path))
    code, out, _ = run(capsys, "speed", *TINY, "--resolution", "32", "--batch", "none",
                       "--threads", "1", "--seconds", "0.05")
    assert code == 0
    assert "latency" in out and "images/s" not in out
    assert "1 thread" in out and "batch-1 latency only" in out


class Fake:
    """A stand-in for `cached_speed`: latency = FLOPs / 1e8 ms, except that depthwise designs
    take `dw_factor` times longer, and throughput = 1000 / latency (so its order is the
    latency's); records what it was asked."""

    def __init__(self, dw_factor: float = 1.0):
        self.dw_factor, self.asked = dw_factor, []

    def __call__(self, arch, **kw):
        self.asked.append((arch, kw))
        lat = complexity(arch).flops / 1e8 * (self.dw_factor if arch.groups == "depthwise"
                                              else 1.0)
        batch = kw.get("batch")
        return sp.Speed(latency_ms=lat, latency_ms_spread=lat / 100,
                        throughput=None if batch is None else 1000 / lat,
                        throughput_spread=None if batch is None else 1.0,
                        speed_device="cpu: Fake CPU, 1 thread", batch=batch,
                        resolution=kw.get("resolution", 224), dtype="float32", threads=1,
                        repeats=3, throughput_repeats=0 if batch is None else 3,
                        seconds=0.1, torch_version="x")


@pytest.fixture
def fake(monkeypatch):
    def install(factor):
        f = Fake(factor)
        monkeypatch.setattr(speed_table, "cached_speed", f)
        return f
    return install


def test_roadmap_measures_the_17_steps_and_both_references(capsys, fake):
    f = fake(1.0)
    code, out, err = run(capsys, "speed", "--roadmap", "--batch", "8", "--json")
    assert code == 0
    d = json.loads(out)
    names = [r["name"] for r in d["rows"]]
    assert len(names) == 19 and names[-2:] == ["convnext_t", "resnet50"]
    assert names[0] == "roadmap/00-resnet50" and names[16].startswith("roadmap/16-")
    assert all(kw["batch"] == 8 for _, kw in f.asked)
    # Steps 0 and 1 (a new recipe, the same network) and ResNet-50 are one design, step 16 and
    # ConvNeXt-T another: 19 names, 16 designs, each measured once.
    assert len(f.asked) == 16
    rows = {r["name"]: r for r in d["rows"]}
    assert rows["convnext_t"]["latency_ms"] == rows["roadmap/16-separate-downsampling"]["latency_ms"]
    # Time proportional to FLOPs: the orderings agree perfectly, over the 16 distinct designs
    # (steps 9, 12 and 13 tie in FLOPs, and so in time: tau-b counts them as agreeing).
    lat = d["agreement"]["latency"]
    assert lat["n"] == 16 and lat["tau"] == pytest.approx(1.0)   # distinct designs
    assert rows["resnet50"]["same_as"] == "roadmap/00-resnet50"
    assert d["agreement"]["throughput"]["tau"] == pytest.approx(1.0)


def test_roadmap_agreement_falls_when_depthwise_costs_time_beyond_its_flops(capsys, fake):
    fake(6.0)  # depthwise designs take 6x longer per FLOP (steps 3 onwards, ConvNeXt-T)
    code, out, err = run(capsys, "speed", "--roadmap", "--batch", "none")
    assert code == 0
    assert "Kendall tau" in out and "time per image" not in out  # no throughput measured
    tau = float(out.split("Kendall tau ")[1].split()[0])
    # The stand-in's times, worked out apart: tau between FLOPs and them, well below 1.
    from scipy.stats import kendalltau

    designs = list({a.key(): a for _, a in reversed(speed_table.roadmap_designs())}.values())
    assert len(designs) == 16
    flops = [complexity(a).flops for a in designs]
    times = [fl * (6.0 if a.groups == "depthwise" else 1.0) for fl, a in zip(flops, designs)]
    expected = kendalltau(flops, times).statistic
    assert tau == pytest.approx(expected, abs=6e-4) and expected < 0.8
    # The table shows ConvNeXt-T's time per GFLOP six times ResNet-50's.
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.strip()}
    ms_per_gflop = {n: float(lines[n][-1]) for n in ("convnext_t", "resnet50")}
    assert ms_per_gflop["convnext_t"] / ms_per_gflop["resnet50"] == pytest.approx(6, rel=0.02)
    assert "images/s" in out.splitlines()[1] or "images/s" in out  # header
    assert err.count(":") >= 19  # a progress line per design on stderr


@pytest.mark.parametrize("argv, needle", [
    (("speed", "convnext_t", "--batch", "-4"), "--batch: '-4' must be positive"),
    (("speed", "convnext_t", "--batch", "lots"), "--batch: 'lots' is not an integer"),
    (("speed", "convnext_t", "--threads", "0"), "--threads: '0' must be positive"),
    (("speed", "convnext_t", "--seconds", "-1"), "--seconds: '-1' must be positive"),
    (("speed",), "say what to measure"),
    (("speed", "convnext_t", "--roadmap"), "say what to measure"),
    (("speed", "nosuch"), "design 'nosuch' is neither a preset"),
    (("speed", "convnext_t", "kernel=4"), "kernel"),
    (("speed", "convnext_t", "--resolution", "8"), "resolution 8 is too small"),
    (("speed", "convnext_t", "--device", "tpu"), "device"),
    (("speed", "convnext_t", "--larger"), "--larger"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""


def test_an_empty_batch_is_refused_not_taken_for_latency_only(capsys):
    code, _, err = run(capsys, "speed", "convnext_t", "--batch", "")
    assert code == 2 and "--batch" in err and len(err.strip().splitlines()) == 1
