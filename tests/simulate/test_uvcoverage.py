"""Tests for radiounet.simulate.uvcoverage: LOFAR HBA stations and the uvw of a track."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from lofarantpos.db import LofarAntennaDatabase

from radiounet.simulate.uvcoverage import (
    SIDEREAL_RATE_RAD_S,
    baseline_pairs,
    hba_station_positions,
    lofar_hba_track,
    lofar_hba_uvw,
    relative_sefd,
)

# One-hour tracks sampled every 10 minutes keep these tests fast.
SHORT: dict[str, Any] = {"duration_h": 1.0, "integration_s": 600.0}


def test_dutch_array_is_the_split_core_plus_the_remote_stations() -> None:
    names, xyz = hba_station_positions("dutch")
    with warnings.catch_warnings():  # lofarantpos does not close its CSV files
        warnings.simplefilter("ignore", ResourceWarning)
        centres = LofarAntennaDatabase().phase_centres
    core = sorted(n for n in centres if n.startswith("CS") and n[-4:] in ("HBA0", "HBA1"))
    remote = sorted(n for n in centres if n.startswith("RS") and n.endswith("HBA"))
    assert len(core) == 48  # 24 core stations, two HBA ears each
    assert len(remote) == 14
    assert names == tuple(sorted(core + remote))
    assert len(names) == 62 == xyz.shape[0]
    assert not any(n[:2] not in ("CS", "RS") for n in names)  # no international stations
    np.testing.assert_array_equal(xyz[names.index("RS106HBA")], centres["RS106HBA"])
    core_names, _ = hba_station_positions("core")
    assert core_names == tuple(core)


def test_station_positions_are_read_only() -> None:
    _, xyz = hba_station_positions("dutch")
    with pytest.raises(ValueError, match="read-only"):
        xyz[0, 0] = 0.0


def test_rows_are_baselines_times_steps_without_autocorrelations() -> None:
    track = lofar_hba_track(50.0, **SHORT)
    n_stations = len(track.stations)
    assert track.n_times == 6
    assert track.n_baselines == n_stations * (n_stations - 1) // 2 == 1891
    assert track.uvw.shape == (1891 * 6, 3)
    assert np.all(track.antenna1 < track.antenna2)
    lengths = np.linalg.norm(track.uvw, axis=1)
    # The closest pair, the two HBA ears of one core station, is ~43 m apart.
    assert lengths.min() > 40.0
    assert lengths.max() < 125e3  # the longest Dutch baseline is ~120 km


def test_baseline_pairs() -> None:
    i, j = baseline_pairs(4)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 2),
        (1, 3),
        (2, 3),
    ]
    with pytest.raises(ValueError, match="at least 2 stations, got 1"):
        baseline_pairs(1)


def test_max_baseline_limits_the_projected_uv_distance() -> None:
    full = lofar_hba_track(50.0, **SHORT)
    cut = lofar_hba_track(50.0, max_baseline_m=30e3, **SHORT)
    assert cut.n_baselines < full.n_baselines
    assert cut.n_baselines == 1600  # counted from the station positions
    assert np.hypot(cut.uvw[:, 0], cut.uvw[:, 1]).max() <= 30e3
    assert np.hypot(full.uvw[:, 0], full.uvw[:, 1]).max() > 60e3


def test_uv_tracks_are_the_standard_ellipses() -> None:
    # For a baseline (X, Y, Z): u**2 + ((v - Z cos dec) / sin dec)**2 = X**2 + Y**2,
    # and w = Z at the pole; u does not depend on the declination at all.
    dec = 35.0
    track = lofar_hba_track(dec, **SHORT)
    _, xyz = hba_station_positions("dutch")
    b = xyz[track.antenna2] - xyz[track.antenna1]
    u, v = track.uvw[:, 0], track.uvw[:, 1]
    sd, cd = math.sin(math.radians(dec)), math.cos(math.radians(dec))
    np.testing.assert_allclose(
        u**2 + ((v - b[:, 2] * cd) / sd) ** 2, b[:, 0] ** 2 + b[:, 1] ** 2, rtol=1e-9
    )
    np.testing.assert_allclose(lofar_hba_uvw(70.0, **SHORT)[:, 0], u, rtol=0.0, atol=1e-6)
    pole = lofar_hba_track(90.0, **SHORT)
    np.testing.assert_allclose(pole.uvw[:, 2], b[:, 2], atol=1e-6)
    # Baseline length is preserved by the rotation.
    np.testing.assert_allclose(np.linalg.norm(track.uvw, axis=1), np.linalg.norm(b, axis=1))


def test_v_extent_of_the_ellipses_shrinks_towards_the_equator() -> None:
    _, xyz = hba_station_positions("dutch")
    extents = []
    for dec in (60.0, 30.0, 10.0):
        track = lofar_hba_track(dec, integration_s=600.0)
        z = (xyz[track.antenna2] - xyz[track.antenna1])[:, 2]
        minor = track.uvw[:, 1] - z * math.cos(math.radians(dec))
        extents.append(np.ptp(minor) / math.sin(math.radians(dec)))
        assert np.ptp(minor) < np.ptp(track.uvw[:, 0])
    # Scaled by 1 / sin(dec), the ellipses' v axes agree: their extent goes as sin(dec).
    np.testing.assert_allclose(extents, extents[0], rtol=1e-9)


def test_track_is_sampled_symmetrically_about_local_transit() -> None:
    dec = math.radians(50.0)
    track = lofar_hba_track(50.0, duration_h=8.0, integration_s=3600.0)
    assert track.n_times == 8
    _, xyz = hba_station_positions("dutch")
    b = (xyz[track.antenna2] - xyz[track.antenna1])[: track.n_baselines]
    uvw = track.uvw.reshape(track.n_times, track.n_baselines, 3)
    # Recover the Greenwich hour angle H of every sample from (u, v):
    # u = sin H X + cos H Y and (v - Z cos dec) / sin dec = sin H Y - cos H X.
    x, y = uvw[:, :, 0], (uvw[:, :, 1] - b[:, 2] * math.cos(dec)) / math.sin(dec)
    r2 = b[:, 0] ** 2 + b[:, 1] ** 2
    hour_angle = np.arctan2((x * b[:, 0] + y * b[:, 1]) / r2, (x * b[:, 1] - y * b[:, 0]) / r2)
    centre = xyz.mean(axis=0)
    east_longitude = math.atan2(centre[1], centre[0])  # ~6.9 deg for LOFAR
    expected = SIDEREAL_RATE_RAD_S * 3600.0 * (np.arange(8) - 3.5) - east_longitude
    np.testing.assert_allclose(hour_angle, np.broadcast_to(expected[:, None], x.shape), atol=1e-9)


def test_deterministic_and_independent_of_right_ascension() -> None:
    a = lofar_hba_uvw(40.0, **SHORT)
    b = lofar_hba_uvw(40.0, ra_deg=123.4, **SHORT)
    np.testing.assert_array_equal(a, b)


def test_baseline_variance_follows_the_station_sefd() -> None:
    track = lofar_hba_track(50.0, **SHORT)
    variance = track.baseline_variance()
    names = np.array(track.stations)
    core1 = np.char.startswith(names[track.antenna1], "CS")
    core2 = np.char.startswith(names[track.antenna2], "CS")
    np.testing.assert_array_equal(variance[core1 & core2], 4.0)
    np.testing.assert_array_equal(variance[core1 ^ core2], 2.0)
    np.testing.assert_array_equal(variance[~core1 & ~core2], 1.0)
    assert relative_sefd(["CS001HBA1", "RS509HBA"]).tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="not an HBA station field name, got 'CS001LBA'"):
        relative_sefd(["CS001LBA"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dec_deg": 95.0}, "dec_deg must be a declination in \\[-90, 90\\], got 95.0"),
        ({"dec_deg": -45.0}, "dec_deg=-45.0 sets below LOFAR's horizon"),
        ({"dec_deg": 50.0, "stations": "international"}, "stations must be one of"),
        ({"dec_deg": 50.0, "max_baseline_m": -1.0}, "max_baseline_m must be a positive"),
        ({"dec_deg": 50.0, "max_baseline_m": 10.0}, "no baseline of the 'dutch' array"),
        ({"dec_deg": 50.0, "integration_s": 0.0}, "integration_s must be positive"),
        ({"dec_deg": 50.0, "duration_h": 30.0}, "duration_h must be in \\(0, 24\\]"),
        ({"dec_deg": 50.0, "ra_deg": 360.0}, "ra_deg must be a right ascension"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lofar_hba_track(**kwargs)  # type: ignore[arg-type]
