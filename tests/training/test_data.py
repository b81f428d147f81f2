"""Tests for radiounet.training.data: dataset manifests to tiles, the validation split, tf.data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from radiounet.core.normalisation import PROFILES, normalise
from radiounet.core.segmentation import normalised_tiles
from radiounet.io.fits_image import read_image
from radiounet.training.data import (
    TileSet,
    augment_pair,
    balance_tiles,
    evaluation_batches,
    load_tiles,
    read_manifest,
    split_validation,
    tile_origins,
    training_batches,
)


def manifest_of(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def rewrite_manifest(path: Path, **changes: object) -> None:
    manifest = manifest_of(path)
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def copy_dataset(ds: Any, target: Path) -> Path:
    shutil.copytree(ds.path, target)
    return target


# ---------------------------------------------------------------------------
# load_tiles
# ---------------------------------------------------------------------------


def test_tiles_shapes_and_provenance(toy_dataset: Any) -> None:
    tiles = load_tiles(toy_dataset.path)
    # 384 px at stride 192: 2x2 tiles per field, three training fields.
    assert len(tiles) == 12
    assert tiles.images.shape == (12, 192, 192, 1) and tiles.images.dtype == np.float32
    assert tiles.masks.shape == (12, 192, 192) and tiles.masks.dtype == np.uint8
    assert tiles.field_ids.tolist() == [f for f in toy_dataset.train_ids for _ in range(4)]
    assert tiles.origins.tolist() == [[0, 0], [0, 192], [192, 0], [192, 192]] * 3
    assert tiles.dataset_index.tolist() == [0] * 12
    assert tiles.profile == PROFILES["synthetic"]  # from set-up "paper-6arcsec"
    assert tiles.n_fields == 3 and tiles.tile == 192
    (source,) = tiles.sources
    assert source.path == str(toy_dataset.path.resolve())
    assert (source.seed, source.setup, source.fields) == (0, "paper-6arcsec", toy_dataset.train_ids)
    assert 0.0 <= tiles.images.min() and tiles.images.max() <= 1.0
    assert set(np.unique(tiles.masks).tolist()) == {0, 1}


def test_normalisation_is_the_segmentations(toy_dataset: Any) -> None:
    tiles = load_tiles(toy_dataset.path)
    entry = read_manifest(toy_dataset.path).fields[1]
    image = read_image(entry.image)
    scale = image.scale_to("Jy/pixel")
    # The beam (6" FWHM on 2" pixels) turns Jy/beam into Jy/pixel.
    assert scale == pytest.approx(1 / (np.pi / (4 * np.log(2)) * 9.0))
    raw = np.stack([image.data[y : y + 192, x : x + 192] for y, x in tiles.origins[4:8]])
    want, _ = normalised_tiles(raw, PROFILES["synthetic"], scale=scale)
    np.testing.assert_array_equal(tiles.images[4:8, ..., 0], want)


def test_profile_can_be_given(toy_dataset: Any) -> None:
    tiles = load_tiles(toy_dataset.path, profile="1e-7:1e-3:Jy/beam", max_fields=1)
    data = read_image(read_manifest(toy_dataset.path).fields[0].image).data
    np.testing.assert_array_equal(
        tiles.images[0, ..., 0], normalise(data[:192, :192], tiles.profile)
    )
    assert tiles.profile.unit == "Jy/beam"


def test_blanked_pixels_enter_as_zero(tmp_path: Path, make_dataset) -> None:
    ds = make_dataset(tmp_path / "blank", n_train=1, n_test=0, blank_corner=True)
    tiles = load_tiles(ds.path)
    assert np.all(tiles.images[0, :30, :40] == 0.0)
    assert np.all(np.isfinite(tiles.images))
    assert tiles.images[0, 30:, 40:].min() >= 0.0 and tiles.images[0, 30:, 40:].max() > 0.5


def test_masks_line_up_with_images(toy_dataset: Any) -> None:
    tiles = load_tiles(toy_dataset.path, max_fields=1)
    y, x, r = toy_dataset.known_disk  # disk at row 250, column 100 of the first field
    k = tiles.origins.tolist().index([192, 0])
    mask, image = tiles.masks[k], tiles.images[k, ..., 0]
    dy, dx = y - 192, x
    yy, xx = np.mgrid[:192, :192]
    disk = (yy - dy) ** 2 + (xx - dx) ** 2 <= r**2
    assert mask[disk].all()  # the whole known disk is in this tile's mask, at its offset
    assert mask[dy, dx] == 1 and mask[dy, dx + r + 3] == 0
    # The mask is the FITS mask's crop, and the image is bright where the mask is.
    full = fits.getdata(read_manifest(toy_dataset.path).fields[0].mask)
    np.testing.assert_array_equal(mask, full[192:384, 0:192])
    assert image[disk].mean() > 0.9 > image[mask == 0].mean() + 0.3


def test_test_fields_are_never_read(toy_dataset: Any, tmp_path: Path) -> None:
    path = copy_dataset(toy_dataset, tmp_path / "ds")
    # Ruin every file of the test field: reading any of them would fail.
    for entry in read_manifest(path).split("test"):
        for f in (path / "fields").glob(f"{entry.id}_*.fits"):
            f.write_bytes(b"not a FITS file")
    tiles = load_tiles(path)
    assert set(tiles.field_ids.tolist()) == set(toy_dataset.train_ids)
    assert not set(tiles.field_ids.tolist()) & set(toy_dataset.test_ids)
    with pytest.raises(ValueError, match=r"f0003_image\.fits: not a readable FITS file"):
        load_tiles(path, split="test")


def test_test_split_loads_on_request(toy_dataset: Any) -> None:
    tiles = load_tiles(toy_dataset.path, split="test")
    assert tiles.field_ids.tolist() == [toy_dataset.test_ids[0]] * 4


def test_stride_and_max_fields(toy_dataset: Any) -> None:
    tiles = load_tiles(toy_dataset.path, stride=96, max_fields=2)
    assert len(tiles) == 2 * 9  # origins 0, 96, 192 per axis
    assert tiles.field_ids.tolist() == ["f0000"] * 9 + ["f0001"] * 9
    assert tile_origins(384, tile=192, stride=96) == [0, 96, 192]
    assert tile_origins(2000, tile=192, stride=192) == list(range(0, 1729, 192))


def test_several_datasets_combine(toy_dataset: Any, tmp_path: Path, make_dataset) -> None:
    other = make_dataset(tmp_path / "other", n_train=1, n_test=1, seed=7)
    tiles = load_tiles([toy_dataset.path, other.path])
    assert len(tiles) == 16
    assert tiles.dataset_index.tolist() == [0] * 12 + [1] * 4
    assert [s.seed for s in tiles.sources] == [0, 7]
    assert [len(s.fields) for s in tiles.sources] == [3, 1]
    assert tiles.n_fields == 4


def test_lotss_setup_uses_the_lotss_profile(tmp_path: Path, toy_dataset: Any, make_dataset) -> None:
    ds = make_dataset(tmp_path / "lotss", n_train=1, n_test=0, setup="lotss-dr2-lowres")
    tiles = load_tiles(ds.path)
    assert tiles.profile == PROFILES["lotss-dr2-lowres"]
    data = read_image(read_manifest(ds.path).fields[0].image).data
    # Jy/beam images in a Jy/beam profile: no beam conversion.
    np.testing.assert_array_equal(
        tiles.images[0, ..., 0], normalise(data[:192, :192], tiles.profile)
    )
    with pytest.raises(ValueError, match="imply different normalisation profiles"):
        load_tiles([toy_dataset.path, ds.path])
    assert len(load_tiles([toy_dataset.path, ds.path], profile="synthetic")) == 16


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no manifest\.json in .*not a dataset written by"):
        load_tiles(tmp_path)
    with pytest.raises(ValueError, match="dataset folder not found"):
        load_tiles(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "radiounet-sim/2"}, "unsupported dataset format 'radiounet-sim/2'"),
        ({"setup": {"name": "vla-a"}}, "no default normalisation profile for set-up 'vla-a'"),
        ({"fields": "f0000"}, "'fields' must be a list"),
    ],
)
def test_bad_manifests(toy_dataset: Any, tmp_path: Path, changes, message) -> None:
    path = copy_dataset(toy_dataset, tmp_path / "ds")
    rewrite_manifest(path, **changes)
    with pytest.raises(ValueError, match=message):
        load_tiles(path)


def test_manifest_not_json(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tiles(tmp_path)


def test_empty_train_split(toy_dataset: Any, tmp_path: Path) -> None:
    path = copy_dataset(toy_dataset, tmp_path / "ds")
    manifest = manifest_of(path)
    rewrite_manifest(path, fields=[{**f, "split": "test"} for f in manifest["fields"]])
    with pytest.raises(ValueError, match="no 'train' fields in"):
        load_tiles(path)


def test_unknown_split_value(toy_dataset: Any, tmp_path: Path) -> None:
    path = copy_dataset(toy_dataset, tmp_path / "ds")
    manifest = manifest_of(path)
    manifest["fields"][0]["split"] = "validation"
    rewrite_manifest(path, fields=manifest["fields"])
    with pytest.raises(ValueError, match="has split 'validation'; expected one of"):
        load_tiles(path)


def test_labels_are_not_a_mask(toy_dataset: Any, tmp_path: Path) -> None:
    path = copy_dataset(toy_dataset, tmp_path / "ds")
    labels = path / "fields" / "f0000_labels.fits"
    with fits.open(labels, mode="update") as hdul:
        hdul[0].data[hdul[0].data > 0] = 3
    manifest = manifest_of(path)
    manifest["fields"][0]["mask"] = "fields/f0000_labels.fits"
    rewrite_manifest(path, fields=manifest["fields"])
    with pytest.raises(ValueError, match=r"mask values must be 0 or 1, got also \[3\]"):
        load_tiles(path)


def test_mask_of_another_size(toy_dataset: Any, tmp_path: Path) -> None:
    path = copy_dataset(toy_dataset, tmp_path / "ds")
    fits.PrimaryHDU(np.zeros((200, 384), np.uint8)).writeto(
        path / "fields" / "f0000_mask.fits", overwrite=True
    )
    with pytest.raises(ValueError, match=r"mask shape \(200, 384\) differs from the image's"):
        load_tiles(path)


def test_images_smaller_than_a_tile(tmp_path: Path, make_dataset) -> None:
    ds = make_dataset(tmp_path / "small", n_train=1, n_test=0, size=160)
    with pytest.raises(ValueError, match="no 'train' image is at least 192x192 pixels"):
        load_tiles(ds.path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "val"}, "split must be one of"),
        ({"stride": 0}, r"stride must be an integer in 1\.\.tile \(192\), got 0"),
        ({"stride": 200}, "got 200"),
        ({"max_fields": 0}, "max_fields must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(toy_dataset: Any, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_tiles(toy_dataset.path, **kwargs)
    with pytest.raises(ValueError, match="at least one dataset folder"):
        load_tiles([])


# ---------------------------------------------------------------------------
# Validation split
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"), [(10000, 0.05, 500), (12, 0.25, 3), (7, 0.05, 1)]
)
def test_validation_split(n: int, fraction: float, n_val: int) -> None:
    train, val = split_validation(n, fraction, seed=3)
    again = split_validation(n, fraction, seed=3)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(val, again[1])
    assert len(val) == n_val
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_validation_split_depends_on_the_seed() -> None:
    assert not np.array_equal(
        split_validation(1000, 0.05, 0)[1], split_validation(1000, 0.05, 1)[1]
    )
    train, val = split_validation(5, 0.0, 0)
    assert train.tolist() == [0, 1, 2, 3, 4] and val.tolist() == []


@pytest.mark.parametrize(("n", "fraction"), [(1, 0.5), (10, 1.0), (10, -0.1), (0, 0.1)])
def test_validation_split_errors(n: int, fraction: float) -> None:
    with pytest.raises(ValueError, match=r"fraction|n must be"):
        split_validation(n, fraction, 0)


# ---------------------------------------------------------------------------
# tf.data
# ---------------------------------------------------------------------------


def l_shape(size: int = 192) -> np.ndarray:
    """An image with no symmetry: an L of bright pixels plus a gradient."""
    image = np.tile(np.linspace(0.0, 0.4, size, dtype=np.float32), (size, 1))
    image[20:120, 30:50] = 0.9
    image[100:120, 50:150] = 0.8
    return image


def dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The eight symmetries of the square applied to a 2-D array."""
    rotations = [np.rot90(x, k) for k in range(4)]
    return rotations + [np.fliplr(r) for r in rotations]


def test_augmentation_moves_image_and_mask_together() -> None:
    image = l_shape()
    mask = (image > 0.5).astype(np.uint8)
    candidates = dihedral(image)
    seen = set()
    for seed in range(48):
        out_image, out_mask = augment_pair(image[..., None], mask, np.array([7, seed]))
        out_image, out_mask = np.asarray(out_image)[..., 0], np.asarray(out_mask)
        assert out_mask.dtype == np.uint8
        np.testing.assert_array_equal(out_mask, (out_image > 0.5).astype(np.uint8))
        matches = [i for i, c in enumerate(candidates) if np.array_equal(out_image, c)]
        assert len(matches) == 1
        seen.add(matches[0])
        again = np.asarray(augment_pair(image[..., None], mask, np.array([7, seed]))[0])[..., 0]
        np.testing.assert_array_equal(again, out_image)
    assert seen == set(range(8))  # every rotation and flip occurs


def toy_tileset(n: int, *, augmentable: bool = False) -> TileSet:
    """Tiles identified by their constant value ``i / 100`` (or L-shapes with a marker)."""
    images = np.empty((n, 192, 192, 1), np.float32)
    masks = np.empty((n, 192, 192), np.uint8)
    for i in range(n):
        image = l_shape() if augmentable else np.full((192, 192), i / 100, np.float32)
        images[i, ..., 0] = image
        masks[i] = image > 0.5 if augmentable else (i % 2)
    return TileSet(
        images=images,
        masks=masks,
        field_ids=np.array(["f"] * n),
        dataset_index=np.zeros(n, np.intp),
        origins=np.zeros((n, 2), np.intp),
        profile=PROFILES["synthetic"],
        sources=(),
    )


def batches_of(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(x), np.asarray(y)) for x, y in dataset]


def test_training_batches_shuffle_per_epoch_deterministically() -> None:
    tiles = toy_tileset(11)
    indices = np.array([0, 2, 3, 5, 6, 7, 9, 10])  # 1, 4 and 8 are validation tiles
    batches = batches_of(training_batches(tiles, indices, batch_size=3, seed=4, epochs=3))
    assert [len(x) for x, _ in batches] == [3, 3, 2] * 3  # per epoch, the last batch is short
    orders = []
    for epoch in range(3):
        ids = np.concatenate(
            [np.round(x[:, 0, 0, 0] * 100) for x, _ in batches[3 * epoch : 3 * epoch + 3]]
        )
        assert sorted(ids.astype(int).tolist()) == indices.tolist()  # each tile once per epoch
        orders.append(ids.tolist())
    assert orders[0] != orders[1] != orders[2]
    # One-hot masks of depth 2 line up with their tiles.
    for x, y in batches:
        assert y.shape == (*x.shape[:3], 2) and y.dtype == np.float32
        ids = np.round(x[:, 0, 0, 0] * 100).astype(int)
        np.testing.assert_array_equal(y[:, 0, 0, 1], ids % 2)
        np.testing.assert_array_equal(y.sum(-1), 1.0)
    # A run resumed at epoch 1 sees exactly the batches of epochs 1 and 2.
    tail = batches_of(
        training_batches(tiles, indices, batch_size=3, seed=4, epochs=3, initial_epoch=1)
    )
    assert len(tail) == 6
    for (x, y), (x2, y2) in zip(batches[3:], tail, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    other = batches_of(training_batches(tiles, indices, batch_size=3, seed=5, epochs=1))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, other, strict=False))


def test_training_batches_augment_consistently() -> None:
    tiles = toy_tileset(6, augmentable=True)
    candidates = dihedral(tiles.images[0, ..., 0])
    seen = set()
    for x, y in batches_of(
        training_batches(tiles, np.arange(6), batch_size=4, seed=0, epochs=2, augment=True)
    ):
        for image, onehot in zip(x[..., 0], y, strict=True):
            np.testing.assert_array_equal(onehot[..., 1], (image > 0.5).astype(np.float32))
            seen.add(next(i for i, c in enumerate(candidates) if np.array_equal(image, c)))
    assert len(seen) > 1


def test_evaluation_batches_keep_order() -> None:
    tiles = toy_tileset(7)
    batches = batches_of(evaluation_batches(tiles, np.array([1, 4, 6]), batch_size=2))
    ids = np.concatenate([np.round(x[:, 0, 0, 0] * 100) for x, _ in batches]).astype(int)
    assert ids.tolist() == [1, 4, 6]
    assert [len(x) for x, _ in batches] == [2, 1]
    np.testing.assert_array_equal(batches[0][1][:, 5, 5, 1], [1.0, 0.0])


def test_pipeline_arguments() -> None:
    tiles = toy_tileset(3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        training_batches(tiles, np.arange(3), batch_size=0, seed=0, epochs=1)
    with pytest.raises(ValueError, match="at least one tile"):
        evaluation_batches(tiles, np.array([], int), batch_size=2)
    with pytest.raises(ValueError, match=r"initial_epoch must be in 0\.\.epochs \(2\), got 3"):
        training_batches(tiles, np.arange(3), batch_size=1, seed=0, epochs=2, initial_epoch=3)


def test_balance_tiles_keeps_every_positive_and_reaches_the_share() -> None:
    masks = np.zeros((100, 8, 8), dtype=np.uint8)
    positive = [3, 17, 40, 41, 77]
    masks[positive, 2, 5] = 1
    indices = np.arange(100, dtype=np.intp)
    chosen = balance_tiles(masks, indices, positive_fraction=0.25, seed=1)
    assert set(positive) <= set(chosen.tolist())
    assert chosen.size == 20  # 5 positives are a quarter of 20 tiles
    assert list(chosen) == sorted(chosen)
    assert np.array_equal(chosen, balance_tiles(masks, indices, positive_fraction=0.25, seed=1))
    other = balance_tiles(masks, indices, positive_fraction=0.25, seed=2)
    assert not np.array_equal(chosen, other)


def test_balance_tiles_only_draws_from_the_given_indices() -> None:
    masks = np.zeros((50, 4, 4), dtype=np.uint8)
    masks[[0, 10], 0, 0] = 1
    subset = np.arange(0, 50, 2, dtype=np.intp)  # tile 0 and 10 included, odd tiles excluded
    chosen = balance_tiles(masks, subset, positive_fraction=0.5, seed=0)
    assert chosen.size == 4 and set(chosen.tolist()) <= set(subset.tolist())
    # Not enough empty tiles: all of them are kept.
    all_kept = balance_tiles(masks, subset, positive_fraction=0.01, seed=0)
    assert np.array_equal(all_kept, subset)


def test_balance_tiles_errors() -> None:
    masks = np.zeros((5, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="no training tile holds diffuse emission"):
        balance_tiles(masks, np.arange(5, dtype=np.intp), positive_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match=r"positive_fraction must be in \(0, 1\), got 1\.0"):
        balance_tiles(masks, np.arange(5, dtype=np.intp), positive_fraction=1.0, seed=0)
