"""Random sky models: determinism, geometry of halos/relics/bridges, truth mask, source counts."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.wcs import WCS

from radiounet.core.components import find_components
from radiounet.core.cosmology import kpc_per_arcmin
from radiounet.core.units import beam_area_pixels
from radiounet.simulate.sky import (
    CONTAMINANT_CLASSES,
    DIFFUSE_CLASSES,
    TRUTH_THRESHOLD_JY_ARCSEC2,
    SkyModel,
    compact_source_counts,
    random_sky,
)

PSZ2_CSV = Path("/work/shared/data/psz2/PSZ2_with_R500.csv")


def sky(seed: int, **kwargs: Any) -> SkyModel:
    options: dict[str, Any] = {"shape": (256, 256), "pixel_arcsec": 6.0}
    options.update(kwargs)
    return random_sky(np.random.default_rng(seed), **options)


def weighted_moments(
    values: np.ndarray, keep: np.ndarray
) -> tuple[float, float, float, float, float]:
    """Centroid (x, y), axis ratio, major-axis angle (rad), rms radius of ``values`` on ``keep``."""
    y, x = np.nonzero(keep)
    w = values[y, x].astype(np.float64)
    cx, cy = np.average(x, weights=w), np.average(y, weights=w)
    dx, dy = x - cx, y - cy
    mxx, myy, mxy = (np.average(a, weights=w) for a in (dx * dx, dy * dy, dx * dy))
    half, root = 0.5 * (mxx + myy), math.hypot(0.5 * (mxx - myy), mxy)
    ratio = math.sqrt((half + root) / (half - root))
    angle = 0.5 * math.atan2(2 * mxy, mxx - myy)
    return float(cx), float(cy), ratio, angle, math.sqrt(mxx + myy)


def test_same_seed_same_sky_and_different_seed_different_sky() -> None:
    a, b, c = sky(7), sky(7), sky(8)
    for name in ("sky", "diffuse", "mask", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.sources == b.sources and a.clusters == b.clusters
    assert not np.array_equal(a.sky, c.sky)


def test_switches_leave_the_other_streams_unchanged() -> None:
    full = sky(3, n_clusters=2, p_diffuse=1.0)
    no_contaminants = sky(3, n_clusters=2, p_diffuse=1.0, contaminants=False)
    no_diffuse = sky(3, n_clusters=2, p_diffuse=1.0, diffuse=False)
    np.testing.assert_array_equal(full.diffuse, no_contaminants.diffuse)
    np.testing.assert_array_equal(full.labels, no_contaminants.labels)
    # The contaminants are the same sources whether or not diffuse emission is drawn.
    # (to float32 rounding of the sums, on the scale of the diffuse emission)
    atol = 1e-6 * float(full.diffuse.max())
    np.testing.assert_allclose(full.sky - full.diffuse, no_diffuse.sky, rtol=1e-5, atol=atol)

    def contaminants(model: SkyModel) -> list[tuple[object, ...]]:
        return [(s.cls, s.cluster, s.x, s.y, s.flux_jy) for s in model.sources if not s.diffuse]

    assert contaminants(full) == contaminants(no_diffuse)


@pytest.mark.parametrize("seed", range(6))
def test_without_diffuse_emission_the_mask_is_empty(seed: int) -> None:
    s = sky(seed, n_clusters=3, diffuse=False)
    assert s.sky.max() > 1e-3  # bright radio galaxies and compact sources are there ...
    assert not s.mask.any() and not s.labels.any()  # ... but never in the mask
    assert not s.diffuse.any()
    assert all(not c.has_diffuse and c.hosts == () for c in s.clusters)
    assert {src.cls for src in s.sources} <= set(CONTAMINANT_CLASSES)


@pytest.mark.parametrize("seed", range(8))
def test_mask_labels_and_sources_agree(seed: int) -> None:
    s = sky(seed, pixel_arcsec=8.0, p_diffuse=0.8)
    threshold = TRUTH_THRESHOLD_JY_ARCSEC2 * 8.0**2
    np.testing.assert_array_equal(s.mask, s.diffuse > np.float32(threshold))
    np.testing.assert_array_equal(s.mask, s.labels > 0)
    assert s.sky.dtype == s.diffuse.dtype == np.float32 and s.labels.dtype == np.int16
    ids = [src.id for src in s.sources]
    assert ids == list(range(1, len(ids) + 1))
    diffuse = [src for src in s.sources if src.diffuse]
    assert all(src.cls in DIFFUSE_CLASSES and src.label == src.id for src in diffuse)
    assert all(
        src.cls in CONTAMINANT_CLASSES and src.label == 0 for src in s.sources[len(diffuse) :]
    )
    assert set(np.unique(s.labels)) - {0} <= {src.label for src in diffuse}
    # Every flux is positive, and the sky is exactly the sum of its sources.
    assert all(src.flux_jy > 0 for src in s.sources)
    total = sum(src.flux_jy for src in s.sources)
    assert float(s.sky.sum(dtype=np.float64)) == pytest.approx(total, rel=1e-4)
    assert float(s.diffuse.sum(dtype=np.float64)) == pytest.approx(
        sum(src.flux_jy for src in diffuse), rel=1e-4, abs=1e-9
    )
    # Hosts list exactly the classes of the diffuse sources attached to each cluster.
    for c in s.clusters:
        attached = {src.cls for src in diffuse if src.cluster == c.id}
        if "filament" in c.hosts and "filament" not in attached:
            attached.add("filament")  # the partner of a bridge
        assert set(c.hosts) == attached and c.has_diffuse == bool(c.hosts)


def test_halos_are_centred_round_and_a_few_hundred_kpc() -> None:
    pixel = 10.0
    found = 0
    for seed in range(25):
        s = sky(
            seed,
            shape=(400, 400),
            pixel_arcsec=pixel,
            n_clusters=1,
            p_diffuse=1.0,
            classes=("halo",),
            contaminants=False,
            z_range=(0.1, 0.6),
        )
        (cluster,) = s.clusters
        for halo in (src for src in s.sources if src.cls == "halo"):
            found += 1
            # The only diffuse source: all of its emission, also where fainter than the mask's cut.
            cx, cy, ratio, _, rms = weighted_moments(s.diffuse, s.diffuse > 0)
            assert math.hypot(cx - cluster.x, cy - cluster.y) < 0.15 * cluster.r500_pix
            assert (halo.x, halo.y) == pytest.approx((cx, cy), abs=0.5)  # its recorded centroid
            assert ratio < 1.6
            rms_kpc = rms * pixel / 60 * kpc_per_arcmin(cluster.z)
            assert 100 < rms_kpc < 800, (seed, rms_kpc)
    assert found >= 15


def test_relics_are_tangential_arcs_at_half_to_one_and_a_half_r500() -> None:
    pixel = 10.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.cdelt = [-pixel / 3600, pixel / 3600]
    wcs.wcs.crval = [180.0, 50.0]
    wcs.wcs.crpix = [201.0, 201.0]
    checked = 0
    for seed in range(30):
        s = sky(
            seed,
            shape=(400, 400),
            pixel_arcsec=pixel,
            n_clusters=1,
            p_diffuse=1.0,
            classes=("relic",),
            contaminants=False,
            z_range=(0.15, 0.6),
        )
        (cluster,) = s.clusters
        assert cluster.hosts in ((), ("relic",))
        for relic in (src for src in s.sources if src.cls == "relic"):
            own = s.labels == relic.label
            if own[0].any() or own[-1].any() or own[:, 0].any() or own[:, -1].any():
                continue  # cut by the image edge: its shape is not its own
            # Brightness-weighted moments of the relic (probability ~ its brightness).
            prob = np.where(own, s.diffuse / s.diffuse[own].max(), 0.0) * 0.98 + 0.01
            comps = find_components(
                np.where(own, prob, 0.0),
                wcs=wcs,
                beam_area_pix=1.0,
                threshold=0.011,
                centre_xy=(cluster.x, cluster.y),
                r500_pix=cluster.r500_pix,
            )
            main = comps[0]
            assert main.radial_angle_deg is not None and main.radial_angle_deg > 60, seed
            assert main.elongation > 2.0
            cx, cy, *_ = weighted_moments(s.diffuse, own)
            distance = math.hypot(cx - cluster.x, cy - cluster.y) / cluster.r500_pix
            assert 0.45 <= distance <= 1.6, (seed, distance)
            checked += 1
    assert checked >= 8


def test_filaments_join_the_two_clusters_of_a_pair_and_nothing_else() -> None:
    n_filaments = 0
    for seed in range(12):
        s = sky(
            seed,
            pixel_arcsec=20.0,
            n_clusters=2,
            p_pair=1.0,
            classes=("filament",),
            contaminants=False,
        )
        a, b = s.clusters
        for fil in (src for src in s.sources if src.cls == "filament"):
            n_filaments += 1
            assert fil.cluster == "c0" and "filament" in a.hosts and "filament" in b.hosts
            cx, cy, ratio, angle, _ = weighted_moments(s.diffuse, s.labels == fil.label)
            sep = math.hypot(b.x - a.x, b.y - a.y)
            mid = ((a.x + b.x) / 2, (a.y + b.y) / 2)
            assert math.hypot(cx - mid[0], cy - mid[1]) < 0.25 * sep
            axis = math.atan2(b.y - a.y, b.x - a.x)
            offset = abs((angle - axis + math.pi / 2) % math.pi - math.pi / 2)
            assert ratio > 1.3 and math.degrees(offset) < 30
    assert n_filaments >= 8
    # Single clusters and unpaired clusters never host a filament.
    for seed in range(10):
        for s in (sky(seed, n_clusters=1, p_diffuse=1.0), sky(seed, n_clusters=3, p_pair=0.0)):
            assert all(src.cls != "filament" for src in s.sources)
            assert all("filament" not in c.hosts for c in s.clusters)


def test_compact_source_counts_match_the_published_150mhz_counts() -> None:
    # 1000 x 1000 pixels of 10" = 7.7 deg^2, at 150 MHz so fluxes are not rescaled.
    s = sky(
        0,
        shape=(1000, 1000),
        pixel_arcsec=10.0,
        freq_hz=150e6,
        n_clusters=0,
        diffuse=False,
        field_rg_per_deg2=0.0,
    )
    area_deg2 = (1000 * 10.0 / 3600) ** 2
    flux = np.array([src.flux_jy for src in s.sources if src.cls == "compact"])
    assert flux.min() >= 1e-4 and flux.max() <= 1.0
    # The Intema et al. (2011) polynomial integrates to 340 deg^-2 above 1 mJy: Poisson-close.
    above_1mjy = np.count_nonzero(flux > 1e-3) / area_deg2
    assert above_1mjy == pytest.approx(340, rel=0.1)
    # LoTSS-DR2 (Shimwell et al. 2022): 4,396,228 sources over 5,634 deg^2 = 780 deg^-2 above
    # its ~5 sigma limit (0.42 mJy for 83 uJy/beam): within a factor of 2.
    above_lotss = np.count_nonzero(flux > 0.42e-3) / area_deg2
    assert 780 / 2 < above_lotss < 780 * 2
    # Euclidean-normalised counts rise with flux over this range, as observed.
    assert np.all(np.diff(compact_source_counts([1e-3, 1e-2, 1e-1, 1.0])) > 0)


def test_halo_surface_brightness_spans_the_lotss_noise() -> None:
    pixel, noise = 4.5, 95e-6  # LoTSS-DR2 20" images
    beam_pix = beam_area_pixels(20 / 3600, 20 / 3600, (pixel / 3600) ** 2)
    central = []
    for seed in range(40):
        s = sky(
            seed,
            pixel_arcsec=pixel,
            n_clusters=1,
            p_diffuse=1.0,
            classes=("halo",),
            contaminants=False,
        )
        y, x = np.ogrid[:256, :256]
        for halo in (src for src in s.sources if src.cls == "halo"):
            within = np.hypot(x - halo.x, y - halo.y) * pixel < 10.0  # one beam across
            central.append(float(s.diffuse[within].mean()) * beam_pix)
    central_arr = np.array(central)
    assert np.any(central_arr < noise) and np.any(central_arr > 10 * noise)
    # LoTSS-DR2 halos have central brightnesses of ~0.2-2 mJy/beam at 20".
    assert 2e-4 < float(np.median(central_arr)) < 5e-3


@pytest.mark.skipif(not PSZ2_CSV.is_file(), reason="PSZ2 catalogue not available")
def test_cluster_sizes_cover_the_psz2_clusters_of_the_lotss_sky() -> None:
    theta_psz2 = []
    with PSZ2_CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                z, m, t, dec = (
                    float(row[k]) for k in ("z", "MSZ_1e14", "theta500_arcmin", "DEdeg")
                )
            except ValueError:
                continue
            if z > 0 and m > 0 and dec > 15:
                theta_psz2.append(t)
    theta_sim = [
        c.theta500_arcmin
        for seed in range(150)
        for c in sky(
            seed, shape=(64, 64), pixel_arcsec=60.0, n_clusters=3, contaminants=False
        ).clusters
    ]
    lo_p, med_p, hi_p = np.percentile(theta_psz2, [5, 50, 95])
    lo_s, med_s, hi_s = np.percentile(theta_sim, [5, 50, 95])
    assert med_p / 1.5 < med_s < med_p * 1.5
    assert lo_s < lo_p * 1.3 and hi_s > hi_p / 1.3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (16, 256)}, "shape"),
        ({"pixel_arcsec": -1.0}, "pixel_arcsec"),
        ({"freq_hz": float("nan")}, "freq_hz"),
        ({"n_clusters": 4}, "n_clusters"),
        ({"p_diffuse": 1.5}, "p_diffuse"),
        ({"classes": ("halo", "mini-halo")}, "classes"),
        ({"z_range": (0.5, 0.1)}, "z_range"),
        ({"field_rg_per_deg2": -1.0}, "field_rg_per_deg2"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sky(0, **kwargs)
