"""Generator and discriminator: shapes, the paper's parameter count, BN folding, validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oct_srgan.config import Config, DegradationConfig
from oct_srgan.errors import ModelError
from oct_srgan.models import (
    Discriminator,
    LateralPixelShuffle,
    SRResNet,
    build_discriminator,
    build_generator,
    discriminator,
    fold_batchnorm,
    generator_spec,
    srresnet,
)


def small_generator(**kw) -> SRResNet:
    args = {"channels": 8, "num_blocks": 2}
    args.update(kw)
    return srresnet(**args)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("axes", ["both", "lateral"])
@pytest.mark.parametrize("upsample", ["paper", "lr_shuffle"])
def test_generator_output_shape(in_channels: int, scale: int, axes: str, upsample: str) -> None:
    model = small_generator(in_channels=in_channels, scale=scale, upsample_axes=axes, upsample=upsample)
    out = model(torch.rand(2, in_channels, 6, 10))
    expected_h = 6 * scale if axes == "both" else 6
    assert out.shape == (2, in_channels, expected_h, 10 * scale)


def test_lateral_pixel_shuffle_places_channels_as_columns() -> None:
    x = torch.arange(2 * 4 * 3 * 5, dtype=torch.float32).reshape(2, 4, 3, 5)
    out = LateralPixelShuffle(2)(x)
    assert out.shape == (2, 2, 3, 10)
    # Output channel c, column 2*w + k comes from input channel 2*c + k, column w.
    for c in range(2):
        for k in range(2):
            assert torch.equal(out[:, c, :, k::2], x[:, 2 * c + k])


def paper_generator_param_count(in_channels: int, channels: int, num_blocks: int, scale: int) -> int:
    """Parameters of Ledig et al.'s SRResNet from its layer list (conv before BN has no bias)."""
    def conv(k: int, cin: int, cout: int, bias: bool) -> int:
        return k * k * cin * cout + (cout if bias else 0)

    bn = 2 * channels
    prelu = 1
    layers = [conv(9, in_channels, channels, True), prelu]
    for _ in range(num_blocks):
        layers += [conv(3, channels, channels, False), bn, prelu, conv(3, channels, channels, False), bn]
    layers += [conv(3, channels, channels, False), bn]
    for _ in range(scale.bit_length() - 1):
        layers += [conv(3, channels, 4 * channels, True), prelu]
    layers += [conv(9, channels, in_channels, True)]
    return sum(layers)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_generator_parameter_count_matches_paper_architecture(in_channels: int) -> None:
    model = srresnet(in_channels=in_channels, channels=64, num_blocks=16, scale=4)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == paper_generator_param_count(in_channels, 64, 16, 4)


def test_generator_init_prelu_and_batchnorm() -> None:
    model = small_generator()
    prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert prelus and all(torch.all(m.weight == 0.25) for m in prelus)
    assert bns and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)


def test_generator_without_norm_has_no_batchnorm_and_biased_convs() -> None:
    model = small_generator(norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model(torch.rand(1, 1, 5, 5)).shape == (1, 1, 20, 20)


@pytest.mark.parametrize("scale", [3, 6, 0, -4])
def test_generator_refuses_scale_not_power_of_two(scale: int) -> None:
    with pytest.raises(ValueError, match="power of 2"):
        small_generator(scale=scale)


def test_generator_refuses_unknown_norm_and_axes() -> None:
    with pytest.raises(ValueError, match="norm"):
        small_generator(norm="instance")
    with pytest.raises(ValueError, match="upsample_axes"):
        small_generator(upsample_axes="axial")


def test_generator_spec_from_config_and_rebuild() -> None:
    cfg = Config()
    cfg.model.channels, cfg.model.num_blocks, cfg.data.scale = 8, 3, 2
    cfg.data.degradation = DegradationConfig(axes="lateral")
    spec = generator_spec(cfg)
    assert spec == {"arch": "srresnet", "in_channels": 1, "channels": 8, "num_blocks": 3, "scale": 2, "norm": "batch",
                    "upsample_axes": "lateral", "upsample": "paper"}
    model = build_generator(spec)
    assert model.spec == spec
    assert model(torch.rand(1, 1, 4, 4)).shape == (1, 1, 4, 8)


def test_spec_without_upsample_key_builds_the_paper_layout() -> None:
    """Generator files saved before the ``upsample`` option keep loading as what they were."""
    old = {k: v for k, v in small_generator().spec.items() if k != "upsample"}
    model = build_generator(old)
    assert model.spec["upsample"] == "paper"
    assert set(model.state_dict()) == set(small_generator().state_dict())
    assert model.tail.kernel_size == (9, 9)


@pytest.mark.parametrize("axes", ["both", "lateral"])
def test_lr_shuffle_has_no_conv_at_hr_resolution(axes: str) -> None:
    cfg = Config()
    cfg.model.channels, cfg.model.num_blocks, cfg.model.upsample = 8, 2, "lr_shuffle"
    cfg.data.degradation = DegradationConfig(axes=axes)
    model = build_generator(generator_spec(cfg)).eval()
    seen: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[-2:])))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    out = model(torch.rand(1, 1, 5, 7))
    for hook in hooks:
        hook.remove()
    assert out.shape == ((1, 1, 20, 28) if axes == "both" else (1, 1, 5, 28))
    assert set(seen) == {(5, 7)}
    assert model.tail.conv.out_channels == (16 if axes == "both" else 4)


def test_lr_shuffle_icnr_init_is_nearest_neighbour_upsampling() -> None:
    model = small_generator(upsample="lr_shuffle", norm="none").eval()
    tail = model.tail
    features = torch.rand(1, 8, 3, 4)
    out = tail(features)
    one = nn.functional.conv2d(features, tail.conv.weight[:1], tail.conv.bias[:1], padding=1)
    assert torch.allclose(out, nn.functional.interpolate(one, scale_factor=4, mode="nearest"), atol=1e-6)


def test_build_generator_refuses_missing_and_unknown_keys() -> None:
    spec = small_generator().spec
    with pytest.raises(ModelError, match="missing key.*num_blocks") as missing:
        build_generator({k: v for k, v in spec.items() if k != "num_blocks"})
    with pytest.raises(ModelError, match="unknown key.*dropout") as unknown:
        build_generator({**spec, "dropout": 0.1})
    assert "\n" not in str(missing.value) and "\n" not in str(unknown.value)


def test_build_generator_refuses_bad_values() -> None:
    with pytest.raises(ModelError, match="power of 2"):
        build_generator({**small_generator().spec, "scale": 3})
    with pytest.raises(ModelError, match="upsample must be one of"):
        build_generator({**small_generator().spec, "upsample": "hr_shuffle"})


@pytest.mark.parametrize("size", [96, 128])
def test_discriminator_takes_any_patch_size(size: int) -> None:
    model = discriminator(channels=8)
    assert model(torch.rand(2, 1, size, size)).shape == (2, 1)


def test_discriminator_paper_widths_and_rgb() -> None:
    model = Discriminator(in_channels=3, channels=64)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 1024), (1024, 1)]
    assert model(torch.rand(1, 3, 96, 96)).shape == (1, 1)


def test_discriminator_features() -> None:
    model = discriminator(channels=4)
    feats = model.features(torch.rand(2, 1, 32, 32))
    assert len(feats) == 8
    assert [f.shape[1] for f in feats] == [4, 4, 8, 8, 16, 16, 32, 32]
    assert [f.shape[-1] for f in feats] == [32, 16, 16, 8, 8, 4, 4, 2]


def test_discriminator_without_norm_and_from_config() -> None:
    assert not any(isinstance(m, nn.BatchNorm2d) for m in discriminator(channels=4, norm="none").modules())
    cfg = Config()
    cfg.model.in_channels, cfg.model.disc_channels = 3, 4
    model = build_discriminator(cfg)
    assert model.in_channels == 3 and model.channels == 4


def _train_batchnorm_stats(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Move BN running statistics and affine parameters away from their initial values."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(*shape) * 2)


def test_fold_batchnorm_generator_matches_eval_model() -> None:
    model = small_generator(num_blocks=3)
    _train_batchnorm_stats(model, (4, 1, 8, 8))
    folded = fold_batchnorm(model)
    assert model.training, "the original must be left as it was"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert isinstance(folded, SRResNet) and not folded.training
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        expected = model.eval()(x)
        got = folded(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_fold_batchnorm_discriminator_matches_eval_model() -> None:
    model = discriminator(channels=4)
    _train_batchnorm_stats(model, (4, 1, 32, 32))
    folded = fold_batchnorm(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 0
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(folded(x), model.eval()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 4])
def test_paper_tail_in_subpixel_form_equals_the_9x9_hr_conv(in_channels: int, scale: int) -> None:
    """The forward computes the HR tail at 2x (models/fast_tail.py): same output and same gradients
    on the paper's 9x9 weight as shuffle -> PReLU -> 9x9 conv at HR."""
    torch.manual_seed(0)
    model = small_generator(in_channels=in_channels, scale=scale).eval()
    with torch.no_grad():
        model.tail.bias.uniform_(-0.5, 0.5)
    x = torch.rand(2, in_channels, 7, 9)

    def plain() -> torch.Tensor:
        head = model.head(x)
        return model.tail(model.upsample(model.body_tail(model.blocks(head)) + head))

    fast = model(x)
    reference = plain()
    assert fast.shape == (2, in_channels, 7 * scale, 9 * scale)
    assert torch.allclose(fast, reference, atol=1e-5, rtol=0)
    grad_fast = torch.autograd.grad(fast.square().sum(), model.tail.weight)[0]
    grad_plain = torch.autograd.grad(reference.square().sum(), model.tail.weight)[0]
    assert torch.allclose(grad_fast, grad_plain, atol=1e-4, rtol=1e-4)
    with torch.inference_mode():  # fp32 inference on the CPU takes the shifted-sum form
        assert torch.allclose(model(x), reference, atol=1e-5, rtol=0)
    assert not any(name.startswith("tail_index") for name in model.state_dict())
    assert model.state_dict()["tail.weight"].shape == (in_channels, 8, 9, 9)


@pytest.mark.parametrize("out_channels", [1, 3])
def test_subpixel_and_stride2_kernels_equal_the_hr_conv_of_the_shuffled_map(out_channels: int) -> None:
    """Both gathered forms of a 9x9 HR conv (5x5 to 4 sub-pixels at 2x; stride-2 6x6 to 16 per LR cell) are that conv."""
    from oct_srgan.models.fast_tail import strided_index, subpixel_index, subpixel_kernel

    torch.manual_seed(0)
    weight, bias = torch.randn(out_channels, 5, 9, 9), torch.randn(out_channels)
    x2 = torch.randn(2, 20, 6, 10)  # a 2x map: 5 HR channels x 4 sub-pixels, 3 x 5 LR cells
    reference = nn.functional.conv2d(nn.functional.pixel_shuffle(x2, 2), weight, bias, padding=4)
    five = subpixel_kernel(weight, subpixel_index(out_channels, 5, 9))
    four_outputs = nn.functional.conv2d(x2, five, bias.repeat_interleave(4), padding=2)
    stride2 = subpixel_kernel(weight, strided_index(out_channels, 5, 9))
    sixteen_outputs = nn.functional.conv2d(x2, stride2, bias.repeat_interleave(16), stride=2, padding=2)
    assert stride2.shape == (16 * out_channels, 20, 6, 6)
    assert torch.allclose(nn.functional.pixel_shuffle(four_outputs, 2), reference, atol=1e-4, rtol=0)
    assert torch.allclose(nn.functional.pixel_shuffle(sixteen_outputs, 4), reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kw", [{"norm": "batch"}, {"norm": "none", "upsample": "lr_shuffle"},
                                {"norm": "none", "upsample_axes": "lateral"}])
def test_fused_pointwise_generator_equals_the_folded_one(kw: dict) -> None:
    """PReLUs and residual adds run inside oneDNN convs (models/fused.py): same outputs, fewer passes."""
    from oct_srgan.models.fused import FusedResidualBlock, can_fuse, fuse_pointwise
    from oct_srgan.precision import native_bf16

    if not can_fuse("cpu"):
        pytest.skip("this torch build has no oneDNN fused conv")
    torch.manual_seed(0)
    model = small_generator(**kw)
    _train_batchnorm_stats(model, (4, 1, 8, 8))
    folded = fold_batchnorm(model).to(memory_format=torch.channels_last)
    fused = fuse_pointwise(folded)
    assert all(isinstance(b, FusedResidualBlock) for b in fused.blocks)
    assert not any(isinstance(m, nn.PReLU) for m in fused.modules())
    x = torch.rand(2, 1, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.allclose(fused(x), folded(x), atol=1e-5, rtol=0)
    if not native_bf16("cpu"):
        return  # oneDNN's bf16 conv needs AVX512-BF16 or AVX-NE-CONVERT; inference picks fp32 there
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the fused op casts like autocast's conv2d
            low = fused(x)
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), folded(x), atol=0.05, rtol=0)


def test_shifted_sum_conv_equals_the_conv_it_replaces() -> None:
    """The inference form of the sub-pixel tail (one product to the tap maps + shifted sums) is the same conv."""
    import torch.nn.functional as F

    from oct_srgan.models.fast_tail import shifted_sum_conv, subpixel_kernel

    torch.manual_seed(0)
    kernel, bias = subpixel_kernel(torch.randn(3, 8, 9, 9)), torch.randn(12)
    x = torch.randn(2, 32, 13, 17)
    with torch.no_grad():
        expected = F.conv2d(x, kernel, bias, padding=2)
        assert torch.allclose(shifted_sum_conv(x, kernel, bias), expected, atol=1e-4, rtol=0)
        channels_last = x.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(shifted_sum_conv(channels_last, kernel, bias), expected, atol=1e-4, rtol=0)
        assert torch.allclose(shifted_sum_conv(x, kernel, None), F.conv2d(x, kernel, padding=2), atol=1e-4, rtol=0)


def test_one_slope_prelu_gives_nn_prelu_outputs_and_gradients() -> None:
    """The faster one-slope backward (models/activations.py) changes nothing but speed, for x and the slope."""
    from oct_srgan.models.activations import PReLU

    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    grad = torch.randn(2, 8, 5, 7)
    ours, reference = PReLU(init=0.3), nn.PReLU(init=0.3)
    results = []
    for act in (ours, reference):
        out = act(x)
        results.append((out, *torch.autograd.grad(out, (x, act.weight), grad)))
    for got, want in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(got, want)
    assert isinstance(ours, nn.PReLU) and list(ours.state_dict()) == ["weight"]
