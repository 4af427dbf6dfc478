"""Figures: the zoom sits on the retina, the enhance comparison has its three labelled panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from oct_srgan.figures import enhance_comparison, retina_window, save_figure


def test_retina_window_centres_on_the_brightest_band() -> None:
    image = np.full((200, 300), 0.2)
    image[140:146, :] = 0.9  # the hyper-reflective band
    y0, x0 = retina_window(image, 40, 60)
    assert y0 <= 140 and y0 + 40 >= 146 and abs((y0 + 20) - 143) <= 2
    assert x0 == 120


def test_retina_window_stays_inside_the_image() -> None:
    image = np.full((100, 100), 0.1)
    image[:3, :] = 1.0
    assert retina_window(image, 40, 40) == (0, 30)
    assert retina_window(image, 400, 400) == (0, 0)


def test_enhance_comparison_has_three_titled_panels_and_their_zooms(tmp_path: Path) -> None:
    lr = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    sr = np.random.default_rng(1).random((80, 120)).astype(np.float32)
    fig = enhance_comparison(lr, sr, 4, "both", title="scan.dcm: B-scan 2 of 3")
    titles = [ax.get_title() for ax in fig.axes]
    assert {"input (nearest ×4)", "bicubic ×4", "oct-srgan ×4"} <= set(titles)
    assert sum("retina" in t for t in titles) == 3
    assert fig._suptitle.get_text() == "scan.dcm: B-scan 2 of 3"
    path = save_figure(fig, tmp_path / "c.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1]
