"""The three no-reference measures against values computed by hand on small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from oct_srgan.noref import background_shift, block_mean, consistency, dark_mask, dog_contrast, focus_kept, measure

BOTH = (4, 4)


def _replicate(lr: np.ndarray, factors: tuple[int, int] = BOTH) -> np.ndarray:
    return np.kron(lr, np.ones(factors))


def _scene(h: int = 24, w: int = 32) -> np.ndarray:
    """A dark left half (0.1) and a bright right half (0.5) with one small bright focus."""
    lr = np.full((h, w), 0.1)
    lr[:, w // 2 :] = 0.5
    lr[h // 2, 3 * w // 4] = 0.9
    return lr


def test_block_mean_averages_each_block() -> None:
    out = np.arange(32, dtype=float).reshape(4, 8)
    assert block_mean(out, (2, 4)).tolist() == [[(0 + 1 + 2 + 3 + 8 + 9 + 10 + 11) / 8, (4 + 5 + 6 + 7 + 12 + 13 + 14 + 15) / 8],
                                               [(16 + 17 + 18 + 19 + 24 + 25 + 26 + 27) / 8, (20 + 21 + 22 + 23 + 28 + 29 + 30 + 31) / 8]]


def test_consistency_of_a_uniform_offset_is_minus_20_log10_offset() -> None:
    lr = _scene()
    # Smoothing keeps a constant offset, so the MSE is 0.01 ** 2 and the PSNR 40 dB.
    assert consistency(lr, _replicate(lr) + 0.01, BOTH) == pytest.approx(40.0, abs=1e-9)


def test_consistency_ignores_texture_that_averages_out_in_each_block() -> None:
    lr = _scene()
    texture = np.tile(np.array([[0.05, -0.05], [-0.05, 0.05]]), (lr.shape[0] * 2, lr.shape[1] * 2))
    assert consistency(lr, _replicate(lr) + texture, BOTH) == 100.0


def test_consistency_of_a_lateral_model_uses_one_by_four_blocks() -> None:
    lr = _scene()
    assert consistency(lr, _replicate(lr, (1, 4)) + 0.1, (1, 4)) == pytest.approx(20.0, abs=1e-9)


def test_dark_mask_is_the_darkest_thirty_percent_inside_the_dark_half() -> None:
    lr = _scene()
    mask = dark_mask(lr)
    assert mask.sum() == round(0.3 * lr.size)
    assert np.all(lr[mask] == 0.1)


def test_background_shift_counts_only_the_dark_pixels_in_8_bit_levels() -> None:
    lr = _scene()
    out = _replicate(lr)
    out[out <= 0.1] += 0.02
    out[out >= 0.5] += 0.3  # the bright half changes a lot, the dark one by 0.02 = 5.1 levels
    assert background_shift(lr, out, BOTH) == pytest.approx(0.02 * 255, abs=1e-9)


def test_dog_contrast_is_zero_on_a_flat_image_and_positive_with_a_focus() -> None:
    flat = np.full((16, 16), 0.3)
    assert dog_contrast(flat) == pytest.approx(0.0, abs=1e-12)
    assert dog_contrast(_scene()) > 0


def test_focus_kept_is_the_gain_of_an_affine_output() -> None:
    lr = _scene()
    # Block mean of 0.7 * replicate + 0.1 is 0.7 * lr + 0.1; the DoG drops the offset and scales by 0.7.
    assert focus_kept(lr, 0.7 * _replicate(lr) + 0.1, BOTH) == pytest.approx(0.7, rel=1e-9)


def test_focus_kept_drops_when_the_focus_is_blurred() -> None:
    from scipy.ndimage import gaussian_filter

    lr = _scene()
    blurred = _replicate(gaussian_filter(lr, 2.0))
    assert focus_kept(lr, blurred, BOTH) < 0.8


def test_measure_of_the_input_replicated_is_ideal() -> None:
    lr = _scene()
    got = measure(lr, _replicate(lr), BOTH)
    assert got == {"consistency_db": 100.0, "background_shift": pytest.approx(0.0, abs=1e-9),
                   "focus_kept": pytest.approx(1.0, rel=1e-12)}


def test_block_mean_refuses_an_output_that_is_not_a_multiple() -> None:
    with pytest.raises(ValueError, match="multiple"):
        block_mean(np.zeros((9, 8)), BOTH)
