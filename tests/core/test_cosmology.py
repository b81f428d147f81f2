"""Tests for radiounet.core.cosmology against the Planck PSZ2 catalogue's own R500/theta500."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from radiounet.core.cosmology import kpc_per_arcmin, r500_kpc, theta500_arcmin

# The catalogue lives outside the repository, in ../shared next to the checkout.
PSZ2_CSV = Path(__file__).resolve().parents[2].parent / "shared/data/psz2/PSZ2_with_R500.csv"
N_ROWS = 20


def _positive(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def psz2_rows() -> list[dict[str, str]]:
    if not PSZ2_CSV.is_file():
        pytest.skip(f"PSZ2 catalogue not found at {PSZ2_CSV} (it lives outside the repository)")
    with PSZ2_CSV.open(newline="") as f:
        rows = [
            row
            for row in csv.DictReader(f)
            if all(_positive(row[k]) for k in ("z", "MSZ_1e14", "R500_kpc", "theta500_arcmin"))
        ]
    assert len(rows) > 1000, f"expected >1000 PSZ2 clusters with a redshift, got {len(rows)}"
    # Rows spread over the whole catalogue (sky and redshift order alike).
    picks = np.linspace(0, len(rows) - 1, N_ROWS).round().astype(int)
    return [rows[i] for i in picks]


@pytest.mark.parametrize("k", range(N_ROWS))
def test_r500_and_theta500_match_psz2(psz2_rows: list[dict[str, str]], k: int) -> None:
    row = psz2_rows[k]
    m500, z = float(row["MSZ_1e14"]), float(row["z"])
    assert r500_kpc(m500, z) == pytest.approx(float(row["R500_kpc"]), rel=0.01), row["Name"]
    assert theta500_arcmin(m500, z) == pytest.approx(float(row["theta500_arcmin"]), rel=0.01), row[
        "Name"
    ]
    # The catalogue's two columns imply the angular scale at z.
    implied = float(row["R500_kpc"]) / float(row["theta500_arcmin"])
    assert kpc_per_arcmin(z) == pytest.approx(implied, rel=0.01), row["Name"]


def test_paper_cluster_g055_59_31_85(psz2_rows: list[dict[str, str]]) -> None:
    # PSZ2 G055.59+31.85 (radio halo, Stuardi et al. 2024, Fig. 4), read from the catalogue
    # (the fixture is requested for its skip when the catalogue is missing).
    with PSZ2_CSV.open(newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["Name"] == "PSZ2 G055.59+31.85"]
    m500, z = float(row["MSZ_1e14"]), float(row["z"])
    assert r500_kpc(m500, z) == pytest.approx(float(row["R500_kpc"]), rel=0.01)
    assert theta500_arcmin(m500, z) == pytest.approx(float(row["theta500_arcmin"]), rel=0.01)


def test_r500_scales_as_cube_root_of_mass() -> None:
    assert r500_kpc(8 * 3.0, 0.2) == pytest.approx(2 * r500_kpc(3.0, 0.2), rel=1e-12)


def _kpc_per_arcmin_by_quadrature(z: float) -> float:
    """Independent flat LambdaCDM (H0 = 70, Om = 0.3) angular scale, radiation neglected."""
    c_km_s, h0, om = 299792.458, 70.0, 0.3
    integral, _ = quad(lambda x: 1 / math.sqrt(om * (1 + x) ** 3 + 1 - om), 0, z)
    d_a_kpc = c_km_s / h0 * integral / (1 + z) * 1e3
    return d_a_kpc * math.radians(1 / 60)


@pytest.mark.parametrize("z", [0.05, 0.1, 0.224, 0.5, 1.0])
def test_angular_scale_of_the_papers_cosmology(z: float) -> None:
    assert kpc_per_arcmin(z) == pytest.approx(_kpc_per_arcmin_by_quadrature(z), rel=1e-3)


def test_clusters_look_smaller_further_away() -> None:
    assert theta500_arcmin(5.0, 0.1) > theta500_arcmin(5.0, 0.3) > theta500_arcmin(5.0, 0.6)


@pytest.mark.parametrize("z", [0.0, -0.1, math.nan, math.inf])
def test_bad_redshift(z: float) -> None:
    with pytest.raises(ValueError, match="redshift z must be a positive number"):
        r500_kpc(5.0, z)
    with pytest.raises(ValueError, match="redshift z must be a positive number"):
        theta500_arcmin(5.0, z)
    with pytest.raises(ValueError, match="redshift z must be a positive number"):
        kpc_per_arcmin(z)


@pytest.mark.parametrize("m500", [0.0, -1.0, math.nan, math.inf])
def test_bad_mass(m500: float) -> None:
    with pytest.raises(ValueError, match=r"M500 must be a positive number \(1e14 Msun\)"):
        r500_kpc(m500, 0.2)
    with pytest.raises(ValueError, match="M500 must be a positive number"):
        theta500_arcmin(m500, 0.2)
