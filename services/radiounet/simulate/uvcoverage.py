"""uv coverage of a LOFAR HBA track from the real station positions.

Station positions are the HBA phase centres of ``lofarantpos`` (ETRS89, which
agrees with ITRF to a few centimetres, far below anything that matters for a
uv coverage). The Dutch array as LoTSS uses it is the 24 core stations split
into their two HBA ears (``CSxxxHBA0`` / ``CSxxxHBA1``, 48 "stations") plus the
14 remote stations (``RSxxxHBA``); international stations are left out.

Baselines are rotated into (u, v, w) with the standard formula (Thompson,
Moran & Swenson, *Interferometry and Synthesis in Radio Astronomy*, eq. 4.1):
for a baseline ``(X, Y, Z)`` in the Earth-fixed frame (X towards the Greenwich
meridian, Y towards 90 deg east, Z towards the pole) and a source at Greenwich
hour angle ``H`` and declination ``dec``::

    u =  sin H X + cos H Y
    v = -sin dec cos H X + sin dec sin H Y + cos dec Z
    w =  cos dec cos H X - cos dec sin H Y + sin dec Z

so ``u`` points east and ``v`` north, and a point source at direction cosines
``(l, m)`` (``l`` towards increasing right ascension) has visibility
``S exp(-2 pi i (u l + v m))``. The track is sampled at the centres of
``integration_s`` intervals, symmetric about transit at the array centre, the
hour angle advancing at the sidereal rate; it is defined in hour angle, so the
right ascension of the field does not change it.

Station sensitivity: a split core ear has 24 HBA tiles and a remote station
48, so the core's system equivalent flux density (SEFD) is twice the remote
one (van Haarlem et al. 2013). :meth:`UVTrack.baseline_variance` gives the
relative noise variance of each row, ``SEFD_1 * SEFD_2``, which sets both the
thermal noise and the natural (inverse-variance) imaging weights.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "SIDEREAL_RATE_RAD_S",
    "STATION_SETS",
    "UVTrack",
    "baseline_pairs",
    "hba_station_positions",
    "lofar_hba_track",
    "lofar_hba_uvw",
    "relative_sefd",
]

#: Earth rotation rate relative to the stars (rad per SI second).
SIDEREAL_RATE_RAD_S = 7.292115e-5

#: Station selections understood by :func:`hba_station_positions`.
STATION_SETS = ("core", "dutch")


@functools.cache
def _station_table(stations: str) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    # Imported lazily: lofarantpos is an optional dependency (the `simulate` extra).
    from lofarantpos.db import LofarAntennaDatabase

    # lofarantpos 0.8 leaves its CSV files for the garbage collector to close.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        centres = LofarAntennaDatabase().phase_centres
    # Core stations are used split (HBA0/HBA1), as in LoTSS; the unsplit "CSxxxHBA"
    # entry is the midpoint of the two ears and would duplicate them.
    names = [n for n in centres if n.startswith("CS") and n.endswith(("HBA0", "HBA1"))]
    if stations == "dutch":
        names += [n for n in centres if n.startswith("RS") and n.endswith("HBA")]
    names.sort()
    positions = np.array([centres[n] for n in names], dtype=np.float64)
    positions.setflags(write=False)
    return tuple(names), positions


def hba_station_positions(
    stations: str = "dutch",
) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """Names and ETRS (X, Y, Z) positions in metres of the LOFAR HBA stations.

    Parameters
    ----------
    stations : {"dutch", "core"}
        ``"dutch"``: the split core (``CSxxxHBA0``/``HBA1``) and the remote
        stations (``RSxxxHBA``); ``"core"``: the split core only.

    Returns
    -------
    names : tuple of str
        Station (field) names, sorted.
    positions : ndarray, shape (n_stations, 3)
        Read-only array of phase-centre positions, same order as ``names``.

    Examples
    --------
    >>> names, xyz = hba_station_positions("core")
    >>> len(names), names[:2]
    (48, ('CS001HBA0', 'CS001HBA1'))
    """
    if stations not in STATION_SETS:
        raise ValueError(f"stations must be one of {STATION_SETS}, got {stations!r}")
    return _station_table(stations)


def baseline_pairs(n_stations: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Station index pairs ``(i, j)`` with ``i < j``: every cross-correlation once.

    Examples
    --------
    >>> i, j = baseline_pairs(3)
    >>> list(zip(i.tolist(), j.tolist()))
    [(0, 1), (0, 2), (1, 2)]
    """
    if n_stations < 2:
        raise ValueError(f"need at least 2 stations, got {n_stations!r}")
    i, j = np.triu_indices(n_stations, k=1)
    return i, j


def relative_sefd(names: tuple[str, ...] | list[str]) -> NDArray[np.float64]:
    """SEFD of each HBA station relative to a 48-tile (remote) station.

    A split core ear (``CSxxxHBA0``/``HBA1``) has 24 tiles and twice the SEFD.

    Examples
    --------
    >>> relative_sefd(["CS002HBA0", "RS106HBA"]).tolist()
    [2.0, 1.0]
    """
    out = np.empty(len(names), dtype=np.float64)
    for k, name in enumerate(names):
        if name.startswith("CS") and name.endswith(("HBA0", "HBA1")):
            out[k] = 2.0
        elif name.endswith("HBA"):
            out[k] = 1.0
        else:
            raise ValueError(f"not an HBA station field name, got {name!r}")
    return out


@dataclass(frozen=True)
class UVTrack:
    """A sampled track: (u, v, w) of every baseline at every time step.

    Attributes
    ----------
    uvw : ndarray, shape (n_rows, 3)
        Metres; rows are time-major (all baselines of one time step, then the
        next).
    antenna1, antenna2 : ndarray of int32, shape (n_rows,)
        Indices into ``stations`` of the two ends of each row (``u`` points
        from ``antenna1`` to ``antenna2``).
    stations : tuple of str
        Station field names.
    n_times : int
        Time steps; ``n_rows = n_baselines * n_times``.
    """

    uvw: NDArray[np.float64]
    antenna1: NDArray[np.int32]
    antenna2: NDArray[np.int32]
    stations: tuple[str, ...]
    n_times: int

    @property
    def n_baselines(self) -> int:
        """Baselines per time step."""
        return len(self.uvw) // self.n_times

    def baseline_variance(self) -> NDArray[np.float64]:
        """Relative noise variance of each row, ``SEFD_1 * SEFD_2`` (1 for remote-remote)."""
        sefd = relative_sefd(self.stations)
        variance: NDArray[np.float64] = sefd[self.antenna1] * sefd[self.antenna2]
        return variance


def lofar_hba_track(
    dec_deg: float,
    *,
    duration_h: float = 8.0,
    integration_s: float = 60.0,
    stations: str = "dutch",
    max_baseline_m: float | None = None,
    ra_deg: float = 0.0,
) -> UVTrack:
    """A LOFAR HBA track centred on transit, with the stations of every row.

    Parameters
    ----------
    dec_deg : float
        Declination of the phase centre. The field must stay above the horizon
        of the array centre for the whole track.
    duration_h : float, optional
        Track length in hours; hour angles run from ``-duration_h / 2`` to
        ``+duration_h / 2`` around transit.
    integration_s : float, optional
        Sampling interval (one row per baseline per interval, at its centre).
    stations : {"dutch", "core"}, optional
        Station set, see :func:`hba_station_positions`.
    max_baseline_m : float or None, optional
        Drop baselines longer than this (whole tracks, so every projected
        ``sqrt(u**2 + v**2)`` stays below it); None keeps all.
    ra_deg : float, optional
        Right ascension of the field. The track is defined in hour angle, so it
        does not change the coverage; accepted so a field's coordinates can be
        passed as they are.

    Returns
    -------
    UVTrack
        Autocorrelations excluded.
    """
    if not (math.isfinite(dec_deg) and -90.0 <= dec_deg <= 90.0):
        raise ValueError(f"dec_deg must be a declination in [-90, 90], got {dec_deg!r}")
    if not (math.isfinite(ra_deg) and 0.0 <= ra_deg < 360.0):
        raise ValueError(f"ra_deg must be a right ascension in [0, 360), got {ra_deg!r}")
    if not (math.isfinite(duration_h) and 0.0 < duration_h <= 24.0):
        raise ValueError(f"duration_h must be in (0, 24] hours, got {duration_h!r}")
    if not (math.isfinite(integration_s) and 0.0 < integration_s <= duration_h * 3600.0):
        raise ValueError(
            f"integration_s must be positive and at most the track length, got {integration_s!r}"
        )
    if max_baseline_m is not None and not (math.isfinite(max_baseline_m) and max_baseline_m > 0):
        raise ValueError(
            f"max_baseline_m must be a positive number or None, got {max_baseline_m!r}"
        )

    names, positions = hba_station_positions(stations)
    i, j = baseline_pairs(len(positions))
    if max_baseline_m is not None:
        keep = np.linalg.norm(positions[j] - positions[i], axis=1) <= max_baseline_m
        i, j = i[keep], j[keep]
        if len(i) == 0:
            raise ValueError(
                f"no baseline of the {stations!r} array is shorter than "
                f"max_baseline_m={max_baseline_m!r}"
            )
    baselines = positions[j] - positions[i]

    centre = positions.mean(axis=0)
    lon = math.atan2(centre[1], centre[0])
    # Geocentric latitude; it differs from the geodetic one by 0.2 deg, which
    # only matters for the horizon check below.
    lat = math.atan2(centre[2], math.hypot(centre[0], centre[1]))
    dec = math.radians(dec_deg)

    n_times = max(1, round(duration_h * 3600.0 / integration_s))
    t = (np.arange(n_times) + 0.5) * integration_s - n_times * integration_s / 2
    local_ha = SIDEREAL_RATE_RAD_S * t
    sin_el = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * np.cos(local_ha)
    if sin_el.min() <= 0.0:
        raise ValueError(
            f"dec_deg={dec_deg!r} sets below LOFAR's horizon within +-{duration_h / 2:g} h "
            "of transit; shorten the track or pick a more northern field"
        )
    # The formula wants the hour angle from the Greenwich meridian (the frame of
    # the station positions): local hour angle minus the array's east longitude.
    ha = local_ha - lon
    sh, ch = np.sin(ha)[:, None], np.cos(ha)[:, None]
    sd, cd = math.sin(dec), math.cos(dec)
    bx, by, bz = baselines[:, 0][None, :], baselines[:, 1][None, :], baselines[:, 2][None, :]
    uvw = np.empty((n_times, len(baselines), 3), dtype=np.float64)
    uvw[..., 0] = sh * bx + ch * by
    uvw[..., 1] = -sd * ch * bx + sd * sh * by + cd * bz
    uvw[..., 2] = cd * ch * bx - cd * sh * by + sd * bz
    return UVTrack(
        uvw=uvw.reshape(-1, 3),
        antenna1=np.tile(i.astype(np.int32), n_times),
        antenna2=np.tile(j.astype(np.int32), n_times),
        stations=names,
        n_times=n_times,
    )


def lofar_hba_uvw(
    dec_deg: float,
    *,
    duration_h: float = 8.0,
    integration_s: float = 60.0,
    stations: str = "dutch",
    max_baseline_m: float | None = None,
    ra_deg: float = 0.0,
) -> NDArray[np.float64]:
    """(u, v, w) in metres of a LOFAR HBA track centred on transit.

    The ``uvw`` of :func:`lofar_hba_track` (same parameters): shape
    ``(n_baselines * n_times, 3)``, time-major, no autocorrelations.

    Examples
    --------
    >>> uvw = lofar_hba_uvw(50.0, duration_h=1.0, integration_s=600.0, stations="core")
    >>> uvw.shape  # 48 * 47 / 2 baselines x 6 time steps
    (6768, 3)
    """
    return lofar_hba_track(
        dec_deg,
        duration_h=duration_h,
        integration_s=integration_s,
        stations=stations,
        max_baseline_m=max_baseline_m,
        ra_deg=ra_deg,
    ).uvw
