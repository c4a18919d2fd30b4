"""Input pipeline: decoding of odd files, the cache, augmentation and evaluation order."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skin_lesion.errors import DatasetError
from skin_lesion.data.images import decode_files, decoding_error
from skin_lesion.data.pipeline import Augmentation, load_or_build_cache, load_split_images, make_dataset

SIZE = (32, 48)


def constant_images(tmp_path, values) -> pd.DataFrame:
    """Split table of uniform PNG images whose pixel value identifies the row."""
    rows = []
    for i, value in enumerate(values):
        path = tmp_path / f"img_{i:03d}.png"
        Image.fromarray(np.full((60, 80, 3), value, np.uint8)).save(path)
        rows.append({"image_id": path.stem, "image_path": str(path), "split": "train"})
    return pd.DataFrame(rows)


@pytest.fixture
def odd_files(tmp_path):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (450, 600, 3), dtype=np.uint8))
    rgb.save(tmp_path / "good.jpg", quality=90)
    rgb.convert("L").save(tmp_path / "gray.jpg")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgb.convert("RGBA").save(tmp_path / "rgba.png")
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("this is not an image")
    return tmp_path


def test_odd_files_decode_or_report(odd_files):
    names = ["good.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "truncated.jpg", "text.jpg", "absent.jpg"]
    paths = [str(odd_files / name) for name in names]
    decoded = {}
    for indices, images in decode_files(paths, (112, 150), batch_size=3):
        decoded.update(zip(indices.tolist(), images))
    assert sorted(decoded) == [0, 1, 2, 3]
    good = decoded[0].astype(float)
    for index in (1, 2, 3):  # converted to RGB and close to the original picture
        assert decoded[index].shape == (112, 150, 3)
        assert abs(decoded[index].astype(float).mean() - good.mean()) < 6
    assert "JPEG" in decoding_error(paths[4], (112, 150))
    assert "Unknown image file format" in decoding_error(paths[5], (112, 150))
    assert "No such file" in decoding_error(paths[6], (112, 150))
    assert decoding_error(paths[0], (112, 150)) == ""


def test_cache_is_reused_and_rebuilt_when_files_or_size_change(tmp_path):
    table = constant_images(tmp_path, [10, 20, 30])
    paths = table["image_path"].tolist()
    first = load_or_build_cache(paths, SIZE, tmp_path / "cache")
    assert first.images.shape == (3, *SIZE, 3) and first.images[1].mean() == 20
    again = load_or_build_cache(paths, SIZE, tmp_path / "cache")
    assert again.path == first.path
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert load_or_build_cache(paths, (16, 16), tmp_path / "cache").path != first.path
    Image.fromarray(np.full((60, 80, 3), 99, np.uint8)).save(paths[1])
    os.utime(paths[1], ns=(1, 1))
    changed = load_or_build_cache(paths, SIZE, tmp_path / "cache")
    assert changed.path != first.path and changed.images[1].mean() == 99
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_broken_images_are_reported_before_training(tmp_path, odd_files, caplog):
    table = constant_images(tmp_path, list(range(0, 250, 5)))  # 50 good images
    broken = pd.DataFrame([{"image_id": "text", "image_path": str(odd_files / "text.jpg"), "split": "train"}])
    images = load_split_images(pd.concat([table, broken], ignore_index=True), "train", SIZE, tmp_path / "c")
    assert len(images.table) == 50 and "text" not in set(images.table["image_id"])
    assert list(images.unusable) == [str(odd_files / "text.jpg")]
    assert "Cannot decode" in caplog.text and "text.jpg" in caplog.text
    many_broken = pd.concat([table.iloc[:10], broken], ignore_index=True)
    with pytest.raises(DatasetError, match="1 of 11 images .* undecodable"):
        load_split_images(many_broken, "train", SIZE, tmp_path / "c")


def batches(dataset):
    return [(images.numpy(), targets.numpy()) for images, targets in dataset]


def test_augmentation_keeps_labels_aligned(tmp_path):
    values = list(range(3, 250, 6))  # 42 distinct uniform images
    images = load_split_images(constant_images(tmp_path, values), "train", SIZE, tmp_path / "c")
    targets = np.array(values, np.float32)[:, None]
    geometric_only = Augmentation(brightness=0.0)
    seen = []
    for epoch_batches in (batches(make_dataset(images, targets, 8, True, geometric_only, seed=1)),):
        for pixels, labels in epoch_batches:
            # A uniform image stays uniform under any affine map with mirrored borders and
            # under contrast around its mean, so its value still names its row.
            np.testing.assert_allclose(pixels.reshape(len(pixels), -1).mean(axis=1), labels[:, 0], atol=1)
            seen.extend(labels[:, 0].tolist())
    assert sorted(seen) == values


def test_augmentation_is_deterministic_for_a_seed_and_changes_images(sample_dir, tmp_path):
    from skin_lesion.data.datasets import load_dataset

    table = load_dataset(sample_dir).table.iloc[:24].assign(split="train")
    images = load_split_images(table, "train", (64, 64), tmp_path / "c")
    targets = np.arange(24, dtype=np.float32)[:, None]
    run_a = batches(make_dataset(images, targets, 8, True, Augmentation(), seed=5))
    run_b = batches(make_dataset(images, targets, 8, True, Augmentation(), seed=5))
    run_c = batches(make_dataset(images, targets, 8, True, Augmentation(), seed=6))
    for (pixels_a, labels_a), (pixels_b, labels_b) in zip(run_a, run_b):
        np.testing.assert_array_equal(pixels_a, pixels_b)
        np.testing.assert_array_equal(labels_a, labels_b)
    assert any(not np.array_equal(a[0], c[0]) for a, c in zip(run_a, run_c))
    first_pixels, first_labels = run_a[0]
    originals = images.cache.images[first_labels[:, 0].astype(int)]
    assert np.abs(first_pixels.astype(float) - originals).mean() > 5  # really augmented
    two_epochs = batches(make_dataset(images, targets, 8, True, Augmentation(), seed=5, epochs=(0, 2)))
    assert len(two_epochs) == 6
    assert not np.array_equal(two_epochs[0][1], two_epochs[3][1])  # reshuffled every epoch
    resumed = batches(make_dataset(images, targets, 8, True, Augmentation(), seed=5, epochs=(1, 2)))
    for (pixels, labels), (again, again_labels) in zip(two_epochs[3:], resumed):  # a resumed epoch 2
        np.testing.assert_array_equal(pixels, again)                             # is the same epoch 2
        np.testing.assert_array_equal(labels, again_labels)


def test_evaluation_is_ordered_complete_and_not_augmented(tmp_path):
    values = list(range(0, 230, 10))  # 23 images: batches of 5 leave a partial one
    images = load_split_images(constant_images(tmp_path, values), "train", SIZE, tmp_path / "c")
    targets = np.arange(23, dtype=np.float32)[:, None]
    result = batches(make_dataset(images, targets, 5, training=False))
    assert [len(labels) for _, labels in result] == [5, 5, 5, 5, 3]
    pixels = np.concatenate([p for p, _ in result])
    labels = np.concatenate([l for _, l in result])[:, 0]
    np.testing.assert_array_equal(labels, np.arange(23))
    np.testing.assert_array_equal(pixels, np.asarray(images.cache.images))
    assert result[0][0].dtype == np.uint8
