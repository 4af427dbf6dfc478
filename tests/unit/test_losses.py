"""Feature-extractor registry (VGG19 weights handling, discriminator, user factories) and losses."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from oct_srgan import extractors
from oct_srgan.errors import ModelError, WeightsNotFoundError
from oct_srgan.extractors import (
    VGG19Features,
    available_extractors,
    build_extractor,
    register_extractor,
)
from oct_srgan.losses import AdversarialLoss, ContentLoss, PixelLoss
from oct_srgan.models import discriminator

# Shapes of torchvision's VGG19 classifier (never used here; only the key names matter).
CLASSIFIER_KEYS = ("classifier.0.weight", "classifier.0.bias", "classifier.3.weight",
                   "classifier.3.bias", "classifier.6.weight", "classifier.6.bias")


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file in torchvision's VGG19 format from a randomly initialised network, placed where
    torchvision caches it: ``<hub dir>/checkpoints/vgg19-dcbb9e9d.pth``."""
    torch.manual_seed(0)
    state = dict(VGG19Features(["relu5_4"]).state_dict())
    assert len(state) == 32  # 16 convs x (weight, bias): the full VGG19 ``features``
    state.update({key: torch.zeros(2) for key in CLASSIFIER_KEYS})
    path = tmp_path_factory.mktemp("hub") / "checkpoints" / "vgg19-dcbb9e9d.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return path


def test_vgg19_layer_indices_match_torchvision() -> None:
    assert extractors.VGG19_LAYERS["relu2_2"] == 8
    assert extractors.VGG19_LAYERS["relu5_4"] == 35
    assert extractors.VGG19_LAYERS["conv1_1"] == 0
    assert extractors.VGG19_LAYERS["pool5"] == 36


def test_vgg19_missing_weights_names_paths_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as err:
        build_extractor("vgg19", layers=["relu5_4"])
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "loss.extractor.weights=" in message


def test_vgg19_missing_explicit_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg.pth"
    with pytest.raises(WeightsNotFoundError, match=str(missing)):
        build_extractor("vgg19", layers=["relu2_2"], weights=str(missing))


def test_vgg19_loads_torchvision_file_by_path(vgg19_file: Path) -> None:
    extractor = build_extractor("vgg19", layers=["relu2_2", "relu5_4"], weights=str(vgg19_file))
    assert extractor.weights_source == str(vgg19_file)
    state = torch.load(vgg19_file, weights_only=True)
    assert torch.equal(extractor.features[34].weight, state["features.34.weight"])
    with torch.no_grad():
        relu2_2, relu5_4 = extractor(torch.rand(2, 1, 96, 96))
    assert relu2_2.shape == (2, 128, 48, 48)
    assert relu5_4.shape == (2, 512, 6, 6)
    assert relu2_2.min() >= 0 and relu2_2.max() > 0


def test_vgg19_found_in_torch_hub_cache(vgg19_file: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(vgg19_file.parent.parent))
    extractor = build_extractor("vgg19", layers=["relu2_2"])
    assert extractor.weights_source == str(vgg19_file)
    assert len(extractor.features) == 9  # truncated after relu2_2


def test_vgg19_refuses_file_that_is_not_a_vgg19_state_dict(tmp_path: Path, vgg19_file: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    vgg16_like = tmp_path / "vgg16.pth"
    state = torch.load(vgg19_file, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("features.34.")}, vgg16_like)
    for path in (garbage, other, vgg16_like):
        with pytest.raises(ModelError, match=str(path)) as err:
            build_extractor("vgg19", layers=["relu2_2"], weights=str(path))
        assert not isinstance(err.value, WeightsNotFoundError)
        assert "\n" not in str(err.value)


def test_vgg19_random_weights_when_asked() -> None:
    extractor = build_extractor("vgg19", layers=["relu1_2"], weights="random")
    assert extractor.weights_source == "random"
    assert extractor(torch.rand(1, 1, 8, 8))[0].shape == (1, 64, 8, 8)


def test_vgg19_unknown_layer_refused() -> None:
    with pytest.raises(ModelError, match="relu6_1"):
        build_extractor("vgg19", layers=["relu6_1"], weights="random")


def test_vgg19_is_frozen_and_stays_in_eval() -> None:
    extractor = build_extractor("vgg19", layers=["relu2_2"], weights="random")
    assert all(not p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not any(m.training for m in extractor.modules())


def test_vgg19_grey_input_is_repeated_rgb_and_normalised() -> None:
    torch.manual_seed(0)
    grey = build_extractor("vgg19", layers=["conv1_1"], weights="random", in_channels=1,
                           feature_scale=1.0)
    rgb = build_extractor("vgg19", layers=["conv1_1"], weights="random", in_channels=3,
                          feature_scale=1.0)
    rgb.load_state_dict(grey.state_dict())
    x = torch.rand(1, 1, 6, 6)
    conv = grey.features[0]
    mean = torch.tensor(extractors.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(extractors.IMAGENET_STD).view(1, 3, 1, 1)
    expected = conv((x.repeat(1, 3, 1, 1) - mean) / std)
    assert torch.allclose(grey(x)[0], expected, atol=1e-6)
    assert torch.allclose(rgb(x.repeat(1, 3, 1, 1))[0], expected, atol=1e-6)


def test_vgg19_feature_scale() -> None:
    torch.manual_seed(0)
    default = build_extractor("vgg19", layers=["relu1_1"], weights="random")
    unscaled = build_extractor("vgg19", layers=["relu1_1"], weights="random", feature_scale=1.0)
    unscaled.load_state_dict(default.state_dict())
    x = torch.rand(1, 1, 6, 6)
    assert torch.allclose(default(x)[0] * 12.75, unscaled(x)[0], atol=1e-5)


def test_discriminator_extractor_matches_features_without_touching_d() -> None:
    disc = discriminator(channels=4).eval()
    extractor = build_extractor("discriminator", layers=["block4", "7"], discriminator=disc)
    assert extractor.weights_source == "discriminator"
    assert list(extractor.parameters()) == []  # the trainer owns D
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    feats = extractor(x)
    expected = disc.features(x)
    assert len(feats) == 2
    assert torch.allclose(feats[0], expected[4]) and torch.allclose(feats[1], expected[7])
    sum(f.sum() for f in feats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())
    assert all(p.requires_grad for p in disc.parameters())


def test_discriminator_extractor_defaults_to_all_blocks_and_checks_inputs() -> None:
    disc = discriminator(channels=4)
    assert len(build_extractor("discriminator", layers=[], discriminator=disc)(torch.rand(2, 1, 32, 32))) == 8
    with pytest.raises(ModelError, match="block8"):
        build_extractor("discriminator", layers=["block8"], discriminator=disc)
    with pytest.raises(ModelError, match="needs the Discriminator"):
        build_extractor("discriminator", layers=[])
    with pytest.raises(ModelError, match="takes no weights"):
        build_extractor("discriminator", layers=[], discriminator=disc, weights="d.pth")
    with pytest.raises(ModelError, match="input channel"):
        build_extractor("discriminator", layers=[], discriminator=disc, in_channels=3)


def test_user_extractor_by_dotted_path(tmp_path: Path, monkeypatch) -> None:
    module_name = "oct_srgan_test_user_extractor"
    (tmp_path / f"{module_name}.py").write_text(
        "import torch\n"
        "from torch import nn\n"
        "def factory(layers, weights, in_channels):\n"
        "    conv = nn.Conv2d(in_channels, len(layers), 3, padding=1)\n"
        "    nn.init.constant_(conv.weight, 1.0)\n"
        "    return conv\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    extractor = build_extractor(f"{module_name}:factory", layers=["a", "b"], in_channels=1)
    feats = extractor(torch.ones(1, 1, 5, 5))
    assert isinstance(feats, list) and feats[0].shape == (1, 2, 5, 5)
    assert all(not p.requires_grad for p in extractor.parameters())
    assert extractor.weights_source == f"{module_name}:factory"


def test_user_extractor_import_failures_are_model_errors() -> None:
    with pytest.raises(ModelError, match="cannot import no_such_pkg_for_oct_srgan"):
        build_extractor("no_such_pkg_for_oct_srgan.mod:factory", layers=[])
    with pytest.raises(ModelError, match="no callable 'nope'"):
        build_extractor("oct_srgan.losses:nope", layers=[])


def test_registry_lists_and_refuses_unknown_names(monkeypatch) -> None:
    assert {"vgg19", "discriminator"} <= set(available_extractors())
    with pytest.raises(ModelError, match="unknown feature extractor 'alexnet'.*vgg19"):
        build_extractor("alexnet", layers=[])
    monkeypatch.setattr(extractors, "_EXTRACTORS", dict(extractors._EXTRACTORS))

    @register_extractor("identity")
    def identity(*, layers, weights, in_channels, discriminator):
        return nn.Identity()

    assert "identity" in available_extractors()
    assert isinstance(build_extractor("identity", layers=[]), nn.Identity)
    with pytest.raises(ValueError, match="already registered"):
        register_extractor("identity")(identity)


def test_content_loss_zero_for_identical_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    loss = ContentLoss(build_extractor("vgg19", layers=["relu1_2", "relu2_2"], weights="random"))
    hr = torch.rand(2, 1, 16, 16)
    assert loss(hr, hr.clone()).item() == 0.0
    sr = (hr + 0.1 * torch.randn_like(hr)).requires_grad_(True)
    value = loss(sr, hr)
    assert value.item() > 0
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_content_loss_averages_layers() -> None:
    class TwoLayers(nn.Module):
        def forward(self, x):
            return [x, 3 * x]

    sr, hr = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert ContentLoss(TwoLayers())(sr, hr).item() == pytest.approx((1 + 9) / 2)


def test_pixel_loss() -> None:
    sr, hr = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.0]])
    assert PixelLoss("mse")(sr, hr).item() == pytest.approx((0.25 + 1.0) / 2)
    assert PixelLoss("l1")(sr, hr).item() == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError):
        PixelLoss("ssim")


def _neg_log_sigmoid(x: float) -> float:
    return math.log1p(math.exp(-x))


def _neg_log_one_minus_sigmoid(x: float) -> float:
    return math.log1p(math.exp(x))


REAL = [2.0, -1.0]
FAKE = [0.5, -0.5]


def test_bce_adversarial_losses_match_hand_computation() -> None:
    loss = AdversarialLoss("bce")
    real, fake = torch.tensor(REAL).view(2, 1), torch.tensor(FAKE).view(2, 1)
    g = sum(_neg_log_sigmoid(f) for f in FAKE) / 2
    d = sum(_neg_log_sigmoid(r) for r in REAL) / 2 + sum(_neg_log_one_minus_sigmoid(f) for f in FAKE) / 2
    assert loss.generator(real, fake).item() == pytest.approx(g, rel=1e-6)
    assert loss.generator(None, fake).item() == pytest.approx(g, rel=1e-6)
    assert loss.discriminator(real, fake).item() == pytest.approx(d, rel=1e-6)


def test_relativistic_adversarial_losses_match_hand_computation() -> None:
    loss = AdversarialLoss("relativistic")
    real, fake = torch.tensor(REAL).view(2, 1), torch.tensor(FAKE).view(2, 1)
    mean_real, mean_fake = sum(REAL) / 2, sum(FAKE) / 2
    d = (sum(_neg_log_sigmoid(r - mean_fake) for r in REAL) / 2
         + sum(_neg_log_one_minus_sigmoid(f - mean_real) for f in FAKE) / 2)
    g = (sum(_neg_log_one_minus_sigmoid(r - mean_fake) for r in REAL) / 2
         + sum(_neg_log_sigmoid(f - mean_real) for f in FAKE) / 2)
    assert loss.discriminator(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert loss.generator(real, fake).item() == pytest.approx(g, rel=1e-6)
    with pytest.raises(ValueError):
        loss.generator(None, fake)


def test_adversarial_loss_refuses_unknown_kind() -> None:
    with pytest.raises(ValueError):
        AdversarialLoss("wgan")


def test_pixel_loss_ssim_term_is_one_minus_ssim_and_zero_for_identical_images() -> None:
    from monai.metrics import SSIMMetric

    torch.manual_seed(0)
    sr, hr = torch.rand(2, 1, 48, 48), torch.rand(2, 1, 48, 48)
    plain, with_ssim = PixelLoss("l1"), PixelLoss("l1", ssim_weight=0.5)
    ssim = SSIMMetric(spatial_dims=2, data_range=1.0)(sr, hr).mean()
    assert torch.isclose(with_ssim(sr, hr), plain(sr, hr) + 0.5 * (1 - ssim), atol=1e-5)
    assert with_ssim(hr, hr).item() == pytest.approx(0.0, abs=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isclose(with_ssim(sr, hr), plain(sr, hr) + 0.5 * (1 - ssim), atol=1e-5)
    with pytest.raises(ValueError, match="ssim weight"):
        PixelLoss("l1", ssim_weight=-1)
