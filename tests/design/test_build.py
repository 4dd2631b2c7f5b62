"""The builder: the corner presets are the real timm networks; every roadmap step trains."""
from __future__ import annotations

import dataclasses

import pytest
import timm
import torch

from nas_convnext import build_model, presets, roadmap
from nas_convnext.design.arch import RESNET50, Arch
from nas_convnext.design.complexity import scale_width

from .timm_mapping import CONVNEXT, RESNET, convert

CORNERS = [
    ("resnet50", "resnet50", RESNET, 25_557_032),
    ("resnext50_32x4d", "resnext50_32x4d", RESNET, None),
    ("convnext_t", "convnext_tiny", CONVNEXT, 28_589_128),
    ("convnext_s", "convnext_small", CONVNEXT, None),
    ("convnext_b", "convnext_base", CONVNEXT, None),
]


@pytest.mark.parametrize("ours,theirs,table,expected_params", CORNERS, ids=[c[0] for c in CORNERS])
def test_corner_preset_is_the_timm_network(ours, theirs, table, expected_params):
    torch.manual_seed(0)
    ref = timm.create_model(theirs, pretrained=False).eval()
    model = build_model(presets()[ours]).eval()
    ref_state = ref.state_dict()
    mapped = convert(ref_state, table)
    ours_state = model.state_dict()
    assert set(mapped) == set(ours_state)
    for k, v in mapped.items():
        assert ours_state[k].shape == v.shape, k
    n_ref = sum(p.numel() for p in ref.parameters())
    n_ours = sum(p.numel() for p in model.parameters())
    assert n_ours == n_ref
    if expected_params is not None:
        assert n_ours == expected_params
    # Random weights everywhere (BN statistics too), so a swapped layer cannot hide.
    with torch.no_grad():
        for k, v in ref_state.items():
            if v.is_floating_point():
                v.copy_(torch.randn_like(v) * 0.05 + (1.0 if k.endswith("running_var") else 0.0))
                if k.endswith("running_var"):
                    v.abs_()
    model.load_state_dict(convert(ref_state, table), strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want, got = ref(x), model(x)
    assert want.shape == got.shape == (2, 1000)
    assert want.abs().max() > 1e-3  # the comparison is not between two near-zero outputs
    assert (want - got).abs().max().item() < 1e-4


@pytest.mark.parametrize("name,arch", roadmap(), ids=[n for n, _ in roadmap()])
def test_every_roadmap_step_trains(name, arch):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, width_mult=0.25).train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 10)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([1, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


def test_width_mult_scales_and_keeps_group_rules():
    rx = presets()["resnext50_32x4d"]
    small = scale_width(rx, 0.25)
    assert small.width % 32 == 0 and small.width % 8 == 0  # 32 groups must still divide
    assert small.width < rx.width
    m = build_model(rx, num_classes=10, width_mult=0.25)
    assert m.arch.width == small.width
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d) and mod.groups > 1]
    assert convs and all(c.groups == 32 for c in convs)


@pytest.mark.parametrize("std", [0.02, 0.5, 1.0])
def test_the_init_draws_what_timms_trunc_normal_draws(std):
    # The same numbers from the same seed, so seeded results measured with timm's init stand.
    # At std 1 the cuts at +-2 bind; at 0.02 (the paper's) they lie 100 std out.
    from timm.layers import trunc_normal_

    from nas_convnext.design.build import _trunc_normal_

    ours, theirs = torch.empty(20000), torch.empty(20000)
    torch.manual_seed(5)
    _trunc_normal_(ours, std)
    torch.manual_seed(5)
    trunc_normal_(theirs, std=std)
    assert torch.equal(ours, theirs)
    assert ours.abs().max() <= 2.0 and abs(ours.mean()) < 0.05 * std
    expected = 0.8796 * std if std == 1.0 else std       # a normal cut at 2 std: 0.88 std
    assert ours.std().item() == pytest.approx(expected, rel=0.03)
    torch.manual_seed(6)
    assert not torch.equal(_trunc_normal_(torch.empty(20000), std), ours)


def test_a_models_weights_come_from_the_init():
    torch.manual_seed(0)
    a = build_model(presets()["convnext_t"], num_classes=10, width_mult=0.25)
    torch.manual_seed(0)
    b = build_model(presets()["convnext_t"], num_classes=10, width_mult=0.25)
    convs = [m for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.03)
    assert all(m.bias is None or not m.bias.any() for m in convs)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_drop_path_rates_grow_linearly():
    m = build_model(presets()["convnext_t"], drop_path_rate=0.2)
    rates = [b.drop_path.drop_prob for st in m.stages for b in st.blocks
             if hasattr(b.drop_path, "drop_prob")]
    assert len(rates) == 17  # the first block has rate 0 and no DropPath
    assert rates[-1] == pytest.approx(0.2)
    assert all(b > a for a, b in zip(rates, rates[1:]))


@pytest.mark.parametrize("k", [3, 5, 7, 11])
@pytest.mark.parametrize("groups", ["depthwise", 1])
def test_skipping_the_taps_that_see_only_padding_changes_nothing(k, groups):
    """SameConv2d's outputs and gradients equal a whole-kernel conv's on maps of every size,
    including those where it crops (1x1, 2x2, 1x3, 4x4 with k=11) and those where it does not."""
    import torch.nn.functional as F

    from nas_convnext.design.build import SameConv2d

    torch.manual_seed(k)
    c = 6
    g = c if groups == "depthwise" else 1
    for h, w in [(1, 1), (2, 2), (1, 3), (3, 1), (4, 4), (2, 7), (8, 8)]:
        conv = SameConv2d(c, c, k, 1, k // 2, groups=g, bias=True).double()
        x = torch.randn(3, c, h, w, dtype=torch.float64, requires_grad=True)
        grad_out = torch.randn(3, c, h, w, dtype=torch.float64)
        got = conv(x)
        g_got = torch.autograd.grad(got, (x, conv.weight, conv.bias), grad_out)
        want = F.conv2d(x, conv.weight, conv.bias, 1, k // 2, 1, g)
        g_want = torch.autograd.grad(want, (x, conv.weight, conv.bias), grad_out)
        assert got.shape == want.shape == (3, c, h, w)
        torch.testing.assert_close(got, want)
        for a, b in zip(g_got, g_want):
            torch.testing.assert_close(a, b)
        assert conv.weight.shape[-2:] == (k, k)
        # the outer rows and columns of taps only ever met padding: their gradient is 0
        if 2 * h - 1 < k:
            assert g_got[1][..., 0, :].abs().sum() == 0
        if 2 * w - 1 < k:
            assert g_got[1][..., :, 0].abs().sum() == 0


def test_a_proxy_sized_network_trains_the_same_with_cropped_kernels():
    """ConvNeXt-T with 11x11 kernels at 32 px (maps 8, 4, 2, 1): one training step's loss and
    every gradient equal those of the same network computing with whole kernels."""
    import dataclasses

    from nas_convnext.design import build

    arch = dataclasses.replace(presets()["convnext_t"], kernel=11)
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, width_mult=0.25, in_chans=1).double()
    assert sum(isinstance(m, build.SameConv2d) for m in model.modules()) == sum(arch.depths)
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    y = torch.tensor([0, 3, 5, 9])

    def loss_and_grads():
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    crop_loss, crop_grads = loss_and_grads()
    with build.whole_kernels():
        assert build.SameConv2d.forward is torch.nn.Conv2d.forward   # no tap skipped in here
        whole_loss, whole_grads = loss_and_grads()
    assert build.SameConv2d.forward is not torch.nn.Conv2d.forward   # restored
    torch.testing.assert_close(crop_loss, whole_loss)
    for a, b in zip(crop_grads, whole_grads):
        torch.testing.assert_close(a, b)


def _groups_per_channel(arch):
    return [ch // arch.groups for ch in arch.spatial_channels()]


@pytest.mark.parametrize("full, narrow_width, narrow_groups", [
    # 32 groups on a width-32 bottleneck (one channel a group): a quarter of the width keeps
    # one channel a group in 8 groups, not 32 groups at the full width.
    (dataclasses.replace(RESNET50, depths=(3, 3, 27, 3), width=32, groups=32, kernel=5), 8, 8),
    # 32 groups of 3 channels (ConvNeXt-style block, dw conv first on the 96-wide stream).
    (Arch(stem="patchify", depths=(2, 2, 6, 2), width=96, expansion=4, groups=32, kernel=7), 24, 8),
])
def test_a_quarter_width_narrows_grouped_designs_alike_by_cutting_their_groups(full, narrow_width,
                                                                                narrow_groups):
    small = scale_width(full, 0.25)
    assert (small.width, small.groups) == (narrow_width, narrow_groups)
    assert small.width == full.width // 4  # the same factor as every other design
    assert _groups_per_channel(small) == _groups_per_channel(full)  # each group keeps its channels
    model = build_model(full, num_classes=10, width_mult=0.25)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert convs and {c.groups for c in convs} == {narrow_groups}
    out = model(torch.randn(2, 3, 32, 32))
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 7])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cut_groups_take_the_largest_count_that_divides_the_narrower_channels():
    # 12 groups at width 72 -> width 16: 12 * 16 / 72 = 2.7 rounds to 3, which does not divide
    # 16, so 2.
    small = scale_width(Arch(width=72, groups=12), 0.25)
    assert (small.width, small.groups) == (16, 2)
    assert all(ch % 2 == 0 for ch in small.spatial_channels())
