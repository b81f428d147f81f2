"""Tests for radiounet.core.noise: the robust rms and flux-density uncertainties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radiounet.core.noise import flux_uncertainty_jy, robust_rms


def test_subsampled_rms_matches_the_full_one() -> None:
    rng = np.random.default_rng(4)
    image = rng.normal(0.0, 3.0, (600, 600))
    image[200:260, 300:380] += 40.0  # a bright source the clipping rejects
    full = robust_rms(image)
    assert full == pytest.approx(3.0, rel=0.025)  # clipping at 3 sigma trims the tails: -1.5%
    assert robust_rms(image, max_pixels=40_000) == pytest.approx(full, rel=0.02)
    assert robust_rms(image, max_pixels=10**9) == full


def test_robust_rms_refusals() -> None:
    with pytest.raises(ValueError, match="max_pixels must be positive, got 0"):
        robust_rms(np.ones((4, 4)), max_pixels=0)
    with pytest.raises(ValueError, match="sigma must be a positive number, got -1"):
        robust_rms(np.ones((4, 4)), sigma=-1)


def test_flux_uncertainty_scales_with_the_root_of_the_beams() -> None:
    err = flux_uncertainty_jy(np.array([22.0, 88.0, 0.0]), rms_jy_beam=2e-4, beam_area_pix=22.0)
    assert err.tolist() == pytest.approx([2e-4, 4e-4, 0.0], rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rms_jy_beam": 0.0, "beam_area_pix": 1.0}, "rms_jy_beam must be a positive number"),
        ({"rms_jy_beam": 1.0, "beam_area_pix": math.nan}, "beam_area_pix must be a positive"),
    ],
)
def test_flux_uncertainty_refusals(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        flux_uncertainty_jy([10], **kwargs)
    with pytest.raises(ValueError, match="non-negative pixel counts"):
        flux_uncertainty_jy([-1], rms_jy_beam=1.0, beam_area_pix=1.0)
