"""Simulated datasets (``radiounet-sim/1``) to normalised training tiles and tf.data pipelines.

As in Stuardi et al. (2024, Sec. 5): each image is log-normalised with the
same code the segmentation uses (:func:`radiounet.core.segmentation.normalised_tiles`),
then cut into non-overlapping 192x192 tiles (the remainder of the image is
dropped); 5% of the *tiles* are held out for validation, and the fields of
the dataset's test split are never read. Tiles are held in memory (a 10,000
tile training set is 1.5 GB of images and 0.4 GB of masks); the masks are
turned into the two one-hot channels the softmax output is compared with
only as batches are drawn.

Reading a dataset needs only numpy and astropy; the tf.data functions import
TensorFlow when called.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from tqdm import tqdm

from ..core.normalisation import SETUP_PROFILES, NormalisationProfile, get_profile
from ..core.segmentation import normalised_tiles
from ..io.fits_image import InvalidImageError, SkyImage, read_image

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "SETUP_PROFILES",
    "SPLITS",
    "DatasetSource",
    "FieldEntry",
    "Manifest",
    "TileSet",
    "augment_pair",
    "balance_tiles",
    "default_profile",
    "evaluation_batches",
    "load_tiles",
    "read_manifest",
    "split_validation",
    "tile_origins",
    "training_batches",
]

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "radiounet-sim/1"
SPLITS = ("train", "test")

#: Normalisation profile for each simulator set-up: the paper's synthetic
#: training images were normalised in Jy/pixel (Sec. 5), LoTSS-DR2 images in
#: Jy/beam (Sec. 6.1).


# ---------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldEntry:
    """One field of a dataset manifest (what training needs of it)."""

    id: str
    split: str
    image: Path
    mask: Path
    seed: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A dataset's ``manifest.json``, checked.

    Attributes
    ----------
    path : Path
        The dataset folder.
    setup : dict
        The simulator set-up (``name``, ``image_size``, ``pixel_arcsec``, ...).
    seed : int or None
        The dataset's master seed.
    fields : tuple of FieldEntry
        Every field, in manifest order, with absolute file paths.
    raw : dict
        The whole manifest as read.
    """

    path: Path
    setup: dict[str, Any]
    seed: int | None
    fields: tuple[FieldEntry, ...]
    raw: dict[str, Any]

    @property
    def setup_name(self) -> str:
        return str(self.setup.get("name", ""))

    def split(self, name: str) -> tuple[FieldEntry, ...]:
        """The fields of split ``name`` (``"train"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return tuple(f for f in self.fields if f.split == name)


def _field_entry(item: Any, folder: Path, where: str) -> FieldEntry:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: each field must be a JSON object, got {item!r}")
    missing = [k for k in ("id", "split", "image", "mask") if k not in item]
    if missing:
        raise ValueError(f"{where}: field {item.get('id', '?')!r} lacks {', '.join(missing)}")
    if item["split"] not in SPLITS:
        raise ValueError(
            f"{where}: field {item['id']!r} has split {item['split']!r}; expected one of {SPLITS}"
        )
    seed = item.get("seed")
    return FieldEntry(
        id=str(item["id"]),
        split=str(item["split"]),
        image=folder / str(item["image"]),
        mask=folder / str(item["mask"]),
        seed=None if seed is None else int(seed),
    )


def read_manifest(dataset_dir: str | Path) -> Manifest:
    """Read and check ``DIR/manifest.json`` of a ``radiounet-sim/1`` dataset.

    Raises
    ------
    ValueError
        No manifest, not JSON, another format, or malformed fields.
    """
    folder = Path(dataset_dir)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ValueError(f"dataset folder not found: {folder}")
    if not path.is_file():
        raise ValueError(
            f"no {MANIFEST_FILE} in {folder} (not a dataset written by `radiounet simulate`?)"
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    fmt = raw.get("format")
    if fmt != MANIFEST_FORMAT:
        raise ValueError(
            f"{path}: unsupported dataset format {fmt!r} (expected {MANIFEST_FORMAT!r})"
        )
    setup = raw.get("setup")
    if not isinstance(setup, dict):
        raise ValueError(f"{path}: 'setup' must be a JSON object, got {setup!r}")
    items = raw.get("fields")
    if not isinstance(items, list):
        raise ValueError(f"{path}: 'fields' must be a list, got {items!r}")
    entries = tuple(_field_entry(item, folder, str(path)) for item in items)
    ids = [f.id for f in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate field ids")
    seed = raw.get("seed")
    return Manifest(
        path=folder,
        setup=setup,
        seed=None if seed is None else int(seed),
        fields=entries,
        raw=raw,
    )


def default_profile(manifests: Sequence[Manifest]) -> NormalisationProfile:
    """The normalisation profile implied by the datasets' set-up names.

    Raises
    ------
    ValueError
        An unknown set-up, or datasets whose set-ups imply different profiles
        (then pass a profile explicitly).
    """
    names = set()
    for m in manifests:
        if m.setup_name not in SETUP_PROFILES:
            raise ValueError(
                f"{m.path}: no default normalisation profile for set-up {m.setup_name!r} "
                f"(known: {sorted(SETUP_PROFILES)}); give a profile explicitly"
            )
        names.add(SETUP_PROFILES[m.setup_name])
    if len(names) != 1:
        raise ValueError(
            f"the datasets' set-ups imply different normalisation profiles {sorted(names)}; "
            "give a profile explicitly"
        )
    return get_profile(names.pop())


# ---------------------------------------------------------------------------
# Tiles
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSource:
    """Provenance of the tiles taken from one dataset."""

    path: str
    seed: int | None
    setup: str
    fields: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        # The ids, not only the count: a dataset's splits can change later (a
        # resumed simulation), and the leak checks (``evaluate``, ``model
        # calibrate``) must know which fields trained or validated a model.
        return {
            "path": self.path,
            "seed": self.seed,
            "setup": self.setup,
            "fields": len(self.fields),
            "field_ids": sorted(self.fields),
        }


@dataclass(frozen=True, eq=False)
class TileSet:
    """Normalised tiles and their reference masks.

    Attributes
    ----------
    images : ndarray
        float32 ``(N, tile, tile, 1)`` in [0, 1]; blanked pixels are 0.
    masks : ndarray
        uint8 ``(N, tile, tile)``: 1 where the reference mask marks diffuse emission.
    field_ids : ndarray
        ``(N,)`` id of the field each tile comes from.
    dataset_index : ndarray
        ``(N,)`` index into ``sources`` of the dataset each tile comes from.
    origins : ndarray
        ``(N, 2)`` int ``(row, column)`` of each tile's first pixel in its image.
    profile : NormalisationProfile
        The normalisation used.
    sources : tuple of DatasetSource
        One per dataset folder, in the order given.
    """

    images: NDArray[np.float32]
    masks: NDArray[np.uint8]
    field_ids: NDArray[np.str_]
    dataset_index: NDArray[np.intp]
    origins: NDArray[np.intp]
    profile: NormalisationProfile
    sources: tuple[DatasetSource, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_fields(self) -> int:
        return sum(len(s.fields) for s in self.sources)

    @property
    def tile(self) -> int:
        return int(self.images.shape[1])


def tile_origins(length: int, *, tile: int, stride: int) -> list[int]:
    """First pixels of the tiles along an axis; tiles never cross the far edge.

    Examples
    --------
    >>> tile_origins(2000, tile=192, stride=192)[-1], len(tile_origins(2000, tile=192, stride=192))
    (1728, 10)
    >>> tile_origins(100, tile=192, stride=192)
    []
    """
    return list(range(0, length - tile + 1, stride))


def _read_mask(path: Path, shape: tuple[int, int]) -> NDArray[np.uint8]:
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with fits.open(path, memmap=False) as hdul:
            data = next((h.data for h in hdul if h.data is not None and h.data.ndim >= 2), None)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from exc
    if data is None:
        raise ValueError(f"{path}: no image data")
    data = np.asarray(data)
    if any(n != 1 for n in data.shape[:-2]):
        raise ValueError(f"{path}: mask must be 2-D, got shape {data.shape}")
    data = data.reshape(data.shape[-2:])
    if data.shape != shape:
        raise ValueError(f"{path}: mask shape {data.shape} differs from the image's {shape}")
    # A labels map (values > 1) or a probability map must not pass for a mask.
    if not np.isin(data, (0, 1)).all():
        values = np.unique(data[~np.isin(data, (0, 1))])[:5].tolist()
        raise ValueError(f"{path}: mask values must be 0 or 1, got also {values}")
    return data.astype(np.uint8)


def load_tiles(
    dataset_dirs: str | Path | Iterable[str | Path],
    *,
    split: str = "train",
    profile: str | NormalisationProfile | None = None,
    tile: int = 192,
    stride: int = 192,
    max_fields: int | None = None,
    progress: bool = False,
) -> TileSet:
    """Normalised tiles and masks of one split of one or more datasets.

    Parameters
    ----------
    dataset_dirs : path or iterable of paths
        Dataset folders (each with a ``radiounet-sim/1`` ``manifest.json``);
        their tiles are concatenated in the order given.
    split : str, keyword-only
        ``"train"`` or ``"test"``; only fields of this split are read.
    profile : str, NormalisationProfile or None, keyword-only
        Normalisation; ``None`` takes it from the set-up (:data:`SETUP_PROFILES`:
        ``paper-6arcsec`` -> ``synthetic`` in Jy/pixel, the Jy/beam images being
        converted with their beam; ``lotss-dr2-lowres`` -> ``lotss-dr2-lowres``).
    tile, stride : int, keyword-only
        Tile side and step. Tiles start at 0, ``stride``, ... and never cross
        the image edge, so the remainder is dropped (the paper's 100 tiles of a
        2000-pixel image at stride 192).
    max_fields : int or None, keyword-only
        Read at most this many fields (the first ones in dataset then manifest order).
    progress : bool, keyword-only
        Show a progress bar over fields (on a terminal).

    Raises
    ------
    ValueError
        A missing or foreign manifest, no field in the split, unreadable or
        mismatched files, or no image large enough for one tile.
    """
    dirs = [dataset_dirs] if isinstance(dataset_dirs, str | Path) else list(dataset_dirs)
    if not dirs:
        raise ValueError(f"dataset_dirs must name at least one dataset folder, got {dirs!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _positive("tile", tile)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 0 < stride <= tile:
        raise ValueError(f"stride must be an integer in 1..tile ({tile}), got {stride!r}")
    if max_fields is not None:
        _positive("max_fields", max_fields)
    manifests = [read_manifest(d) for d in dirs]
    if profile is None:
        prof = default_profile(manifests)
    elif isinstance(profile, str):
        prof = get_profile(profile)
    else:
        prof = profile
    chosen = [(i, f) for i, m in enumerate(manifests) for f in m.split(split)]
    if not chosen:
        raise ValueError(f"no {split!r} fields in {', '.join(str(m.path) for m in manifests)}")
    if max_fields is not None:
        chosen = chosen[:max_fields]

    # Pass 1: open every image (memory-mapped, cheap) to size the output once.
    opened: list[tuple[int, FieldEntry, SkyImage, list[int], list[int]]] = []
    for i, entry in chosen:
        image = read_image(entry.image)
        ys = tile_origins(image.shape[0], tile=tile, stride=stride)
        xs = tile_origins(image.shape[1], tile=tile, stride=stride)
        opened.append((i, entry, image, ys, xs))
    n = sum(len(ys) * len(xs) for *_, ys, xs in opened)
    if n == 0:
        raise ValueError(f"no {split!r} image is at least {tile}x{tile} pixels: no tiles")

    images = np.empty((n, tile, tile, 1), dtype=np.float32)
    masks = np.empty((n, tile, tile), dtype=np.uint8)
    field_ids: list[str] = []
    dataset_index = np.empty(n, dtype=np.intp)
    origins = np.empty((n, 2), dtype=np.intp)
    k = 0
    bar = tqdm(opened, desc=f"read {split}", unit="field", disable=None if progress else True)
    for i, entry, image, ys, xs in bar:
        try:
            scale = image.scale_to(prof.unit)
        except InvalidImageError as exc:
            raise ValueError(f"{exc} (needed for profile {prof.name!r})") from exc
        mask = _read_mask(entry.mask, image.shape)
        count = len(ys) * len(xs)
        corners = [(y, x) for y in ys for x in xs]
        raw = np.stack([image.data[y : y + tile, x : x + tile] for y, x in corners])
        # The same function the segmentation uses, so training sees what inference sees.
        tiles, _ = normalised_tiles(raw.astype(np.float32), prof, scale=scale)
        images[k : k + count, ..., 0] = tiles
        masks[k : k + count] = np.stack([mask[y : y + tile, x : x + tile] for y, x in corners])
        field_ids.extend([entry.id] * count)
        dataset_index[k : k + count] = i
        origins[k : k + count] = corners
        k += count
    bar.close()
    sources = tuple(
        DatasetSource(
            path=str(m.path.resolve()),
            seed=m.seed,
            setup=m.setup_name,
            fields=tuple(e.id for j, e, *_ in opened if j == i),
        )
        for i, m in enumerate(manifests)
    )
    return TileSet(
        images=images,
        masks=masks,
        field_ids=np.array(field_ids, dtype=np.str_),
        dataset_index=dataset_index,
        origins=origins,
        profile=prof,
        sources=sources,
    )


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def split_validation(
    n: int, fraction: float, seed: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Split ``n`` tiles into (training, validation) index arrays, deterministically.

    ``round(n * fraction)`` tiles (at least one when ``fraction > 0``), drawn
    uniformly from a permutation seeded with ``seed``; both arrays are sorted.

    Examples
    --------
    >>> train, val = split_validation(10000, 0.05, seed=0)
    >>> len(train), len(val)
    (9500, 500)
    """
    _positive("n", n)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    n_val = 0 if fraction == 0 else max(1, math.floor(n * fraction + 0.5))
    if n_val >= n:
        raise ValueError(
            f"a validation fraction of {fraction!r} of {n} tiles leaves no training tiles"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]).astype(np.intp), np.sort(order[:n_val]).astype(np.intp)


def balance_tiles(
    masks: NDArray[np.uint8],
    indices: NDArray[np.intp],
    *,
    positive_fraction: float,
    seed: int,
) -> NDArray[np.intp]:
    """Every tile of ``indices`` holding emission, plus drawn empty tiles to reach the share.

    Returns sorted tile indices in which ``positive_fraction`` of the tiles
    hold at least one mask pixel (fewer when there are not enough empty tiles).

    Examples
    --------
    >>> masks = np.zeros((10, 4, 4), np.uint8); masks[:2, 0, 0] = 1
    >>> balance_tiles(masks, np.arange(10), positive_fraction=0.5, seed=0).size
    4
    """
    if not 0.0 < positive_fraction < 1.0:
        raise ValueError(f"positive_fraction must be in (0, 1), got {positive_fraction!r}")
    holds = masks[indices].reshape(len(indices), -1).any(axis=1)
    positives, negatives = indices[holds], indices[~holds]
    if positives.size == 0:
        raise ValueError("no training tile holds diffuse emission: cannot balance the tiles")
    wanted = round(positives.size * (1.0 - positive_fraction) / positive_fraction)
    drawn = np.random.default_rng(seed).permutation(negatives)[: min(wanted, negatives.size)]
    return np.sort(np.concatenate([positives, drawn])).astype(np.intp)


# ---------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------


def augment_pair(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Rotate by ``k`` x 90 degrees and flip, identically for a tile and its mask.

    ``k`` in 0..3 and the left-right and up-down flips are drawn from the
    stateless ``seed`` (shape ``[2]``), so the same seed gives the same
    transform on any device; together they reach all eight symmetries of the
    square, which preserve the beam shape's statistics and the flux scale
    (Sec. 6.3: rotations by 90, 180, 270 degrees and flips).

    Parameters
    ----------
    image : Tensor
        ``(tile, tile, channels)``.
    mask : Tensor
        ``(tile, tile)``.
    seed : Tensor
        int32/int64 ``[2]``.
    """
    from ..tf_runtime import tf

    draws = tf.random.stateless_uniform([3], seed=seed, minval=0, maxval=4, dtype=tf.int32)
    k, flip_lr, flip_ud = draws[0], draws[1] >= 2, draws[2] >= 2

    def transform(x: tf.Tensor) -> tf.Tensor:
        x = tf.image.rot90(x, k)
        x = tf.cond(flip_lr, lambda: tf.reverse(x, [1]), lambda: x)
        return tf.cond(flip_ud, lambda: tf.reverse(x, [0]), lambda: x)

    return transform(image), transform(mask[..., tf.newaxis])[..., 0]


def _one_hot(mask: tf.Tensor) -> tf.Tensor:
    from ..tf_runtime import tf

    return tf.one_hot(tf.cast(mask, tf.int32), 2, dtype=tf.float32)


def training_batches(
    tiles: TileSet,
    indices: NDArray[np.integer],
    *,
    batch_size: int,
    seed: int,
    epochs: int,
    initial_epoch: int = 0,
    augment: bool = False,
) -> tf.data.Dataset:
    """Shuffled ``(image, one-hot mask)`` batches for epochs ``initial_epoch .. epochs-1``.

    Epoch ``e`` visits ``tiles[indices]`` in an order drawn from ``(seed, e)``
    alone, and augments each tile with a seed drawn from ``(seed, e, i)``, so
    a run resumed at epoch ``e`` sees exactly the batches an uninterrupted run
    would. Each epoch has ``ceil(len(indices) / batch_size)`` batches (the last
    may be short); give that as ``steps_per_epoch`` to ``Model.fit``.
    """
    from ..tf_runtime import tf

    _positive("batch_size", batch_size)
    m = len(indices)
    if m < 1:
        raise ValueError("indices must select at least one tile, got none")
    if not 0 <= initial_epoch <= epochs:
        raise ValueError(f"initial_epoch must be in 0..epochs ({epochs}), got {initial_epoch!r}")
    images = tf.convert_to_tensor(tiles.images)
    masks = tf.convert_to_tensor(tiles.masks)
    index = tf.constant(np.asarray(indices, dtype=np.int64))
    base = tf.constant(seed, tf.int64)

    def load(epoch: tf.Tensor, i: tf.Tensor, position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = tf.gather(images, position), tf.gather(masks, position)
        if augment:
            # Odd counters for augmentation, even ones for the shuffle: independent streams.
            image, mask = augment_pair(image, mask, tf.stack([base, 2 * (epoch * m + i) + 1]))
        return image, _one_hot(mask)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        keys = tf.random.stateless_uniform([m], seed=tf.stack([base, 2 * epoch]))
        order = tf.gather(index, tf.argsort(keys))
        elements = tf.data.Dataset.from_tensor_slices(
            (tf.fill([m], epoch), tf.range(m, dtype=tf.int64), order)
        )
        return elements.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    dataset = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_batches)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_batches(
    tiles: TileSet, indices: NDArray[np.integer], *, batch_size: int
) -> tf.data.Dataset:
    """``(image, one-hot mask)`` batches of ``tiles[indices]`` in order, unaugmented."""
    from ..tf_runtime import tf

    _positive("batch_size", batch_size)
    if len(indices) < 1:
        raise ValueError("indices must select at least one tile, got none")
    idx = np.asarray(indices)
    dataset = tf.data.Dataset.from_tensor_slices((tiles.images[idx], tiles.masks[idx]))
    return (
        dataset.batch(batch_size)
        .map(lambda x, y: (x, _one_hot(y)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
