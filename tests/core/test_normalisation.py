"""Tests for radiounet.core.normalisation: the paper's log scaling into [0, 1]."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radiounet.core.normalisation import (
    BRIGHTNESS_UNITS,
    PROFILES,
    NormalisationProfile,
    get_profile,
    normalise,
)

LOTSS = PROFILES["lotss-dr2-lowres"]
SYNTHETIC = PROFILES["synthetic"]


def test_builtin_profiles_have_the_papers_bounds() -> None:
    # Sec. 6.1: LoTSS-DR2 20" images, 1e-7..1e-2 Jy/beam.
    assert (LOTSS.name, LOTSS.vmin, LOTSS.vmax, LOTSS.unit) == (
        "lotss-dr2-lowres",
        1e-7,
        1e-2,
        "Jy/beam",
    )
    # Sec. 5 (iii): synthetic training images, 1e-10..1e-5 Jy/pixel.
    assert (SYNTHETIC.name, SYNTHETIC.vmin, SYNTHETIC.vmax, SYNTHETIC.unit) == (
        "synthetic",
        1e-10,
        1e-5,
        "Jy/pixel",
    )
    assert sorted(PROFILES) == ["lotss-dr2-lowres", "synthetic"]
    assert BRIGHTNESS_UNITS == ("Jy/beam", "Jy/pixel")


@pytest.mark.parametrize("name", ["lotss-dr2-lowres", "synthetic"])
def test_get_profile_returns_builtin_by_name(name: str) -> None:
    assert get_profile(name) is PROFILES[name]


@pytest.mark.parametrize("profile", [LOTSS, SYNTHETIC], ids=lambda p: p.name)
def test_exact_values_at_the_anchors(profile: NormalisationProfile) -> None:
    midpoint = math.sqrt(profile.vmin * profile.vmax)
    data = np.array(
        [
            profile.vmin,
            profile.vmax,
            midpoint,
            0.0,
            -0.0,
            -1.0,
            -np.inf,
            profile.vmin / 10,
            profile.vmax * 2,
            1e3,
            np.inf,
            np.nan,
        ]
    )
    out = normalise(data, profile)
    assert out.dtype == np.float32
    assert out.shape == data.shape
    expected = [0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert out[:-1].tolist() == expected
    assert np.isnan(out[-1])


def test_lotss_decades_map_to_fifths() -> None:
    # log10 range of 5 decades: each decade above 1e-7 Jy/beam adds 0.2.
    out = normalise(np.array([1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2]), LOTSS)
    np.testing.assert_allclose(out, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], rtol=0, atol=1e-7)


def test_synthetic_decades_map_to_fifths() -> None:
    out = normalise(np.array([1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5]), SYNTHETIC)
    np.testing.assert_allclose(out, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], rtol=0, atol=1e-7)


def test_normalise_keeps_shape_nan_positions_and_does_not_modify_input() -> None:
    rng = np.random.default_rng(0)
    data = (10.0 ** rng.uniform(-9, 0, size=(30, 40))).astype(np.float32)
    data[::7, ::3] = np.nan
    data[1, :] = -data[1, :]
    before = data.copy()
    out = normalise(data, LOTSS)
    np.testing.assert_array_equal(data, before)
    assert out.shape == (30, 40)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), np.isnan(data))
    finite = out[~np.isnan(out)]
    assert finite.min() == 0.0
    assert finite.max() == 1.0
    assert np.all(out[1][~np.isnan(out[1])] == 0.0)  # negative noise -> 0


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1.0, max_value=10.0),
            st.floats(min_value=1e-8, max_value=0.1),
            st.sampled_from([-math.inf, math.inf, 0.0]),
        ),
        min_size=2,
        max_size=50,
    )
)
def test_normalise_is_monotone_and_bounded(values: list[float]) -> None:
    x = np.sort(np.array(values))
    out = normalise(x, LOTSS)
    assert np.all(out >= 0.0)
    assert np.all(out <= 1.0)
    assert np.all(np.diff(out) >= 0.0)


def test_float32_and_float64_inputs_agree() -> None:
    data = np.array([3e-7, 4.5e-5, 2e-3], dtype=np.float32)
    np.testing.assert_array_equal(normalise(data, LOTSS), normalise(data.astype(np.float64), LOTSS))


# ---------------------------------------------------------------------------
# Custom profiles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "vmin", "vmax", "unit", "name"),
    [
        ("1e-6:1e-1:Jy/beam", 1e-6, 0.1, "Jy/beam", "1e-6:1e-1:Jy/beam"),
        ("1e-9:1e-4:Jy/pixel", 1e-9, 1e-4, "Jy/pixel", "1e-9:1e-4:Jy/pixel"),
        (" 2e-8 : 0.5 : jy/BEAM ", 2e-8, 0.5, "Jy/beam", "2e-8 : 0.5 : jy/BEAM"),
        ("0.001:1:JY/PIXEL", 1e-3, 1.0, "Jy/pixel", "0.001:1:JY/PIXEL"),
    ],
)
def test_custom_profile_parsing(spec: str, vmin: float, vmax: float, unit: str, name: str) -> None:
    profile = get_profile(spec)
    assert (profile.vmin, profile.vmax, profile.unit, profile.name) == (vmin, vmax, unit, name)
    assert profile.description == "user-defined"
    out = normalise(np.array([vmin, math.sqrt(vmin * vmax), vmax]), profile)
    assert out.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    "spec",
    [
        "lotss",
        "LOTSS-DR2-LOWRES",
        "",
        "1e-6:1e-1",
        "1e-6:1e-1:K",
        "1e-6:1e-1:Jy/sr",
        "1:2:3:Jy/beam",
    ],
)
def test_unknown_profile_names(spec: str) -> None:
    with pytest.raises(ValueError, match=r"unknown profile .*VMIN:VMAX:UNIT"):
        get_profile(spec)


@pytest.mark.parametrize("spec", ["a:1e-1:Jy/beam", "1e-6:b:Jy/pixel", "1e-6 2:1:Jy/beam"])
def test_custom_profile_bounds_must_be_numbers(spec: str) -> None:
    with pytest.raises(ValueError, match="profile bounds must be numbers"):
        get_profile(spec)


@pytest.mark.parametrize(
    "spec", ["1e-2:1e-7:Jy/beam", "1e-3:1e-3:Jy/beam", "0:1:Jy/beam", "-1e-3:1:Jy/pixel"]
)
def test_custom_profile_needs_0_lt_vmin_lt_vmax(spec: str) -> None:
    with pytest.raises(ValueError, match="0 < vmin < vmax"):
        get_profile(spec)


@pytest.mark.parametrize("spec", ["1e-6:inf:Jy/beam", "nan:1:Jy/beam", "-inf:1:Jy/beam"])
def test_custom_profile_bounds_must_be_finite(spec: str) -> None:
    with pytest.raises(ValueError, match="profile bounds must be finite"):
        get_profile(spec)


def test_profile_rejects_bad_unit() -> None:
    with pytest.raises(ValueError, match="profile unit must be one of"):
        NormalisationProfile("x", 1e-7, 1e-2, "mJy/beam")
