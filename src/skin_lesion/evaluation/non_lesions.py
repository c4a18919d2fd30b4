"""Images that are not skin lesions, for checking the out-of-distribution flag: scikit-image's
bundled photographs (a test and benchmark requirement, not a runtime one) and constructed
pictures of nothing (flat colours, noise, a single pixel, a thumbnail)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: scikit-image's bundled photographs and pictures (``skimage.data``), none of a skin lesion.
PHOTOGRAPHS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "page", "text", "moon",
               "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo", "brick",
               "grass", "gravel")


def photographs() -> dict[str, np.ndarray]:
    """The photographs as uint8 RGB arrays (greyscale repeated, alpha dropped)."""
    from skimage import data

    images = {}
    for name in PHOTOGRAPHS:
        image = np.asarray(getattr(data, name)())
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        images[name] = image.astype(np.uint8)
    return images


def constructed_images(seed: int = 0) -> dict[str, np.ndarray]:
    """Pictures of nothing at a dermoscopic frame's size (600x450), and one pixel."""
    rng = np.random.default_rng(seed)
    frame = (450, 600, 3)
    return {"skin_colour": np.full(frame, (200, 150, 130), np.uint8), "black": np.zeros(frame, np.uint8),
            "white": np.full(frame, 255, np.uint8), "grey": np.full(frame, 128, np.uint8),
            "uniform_noise": rng.integers(0, 256, frame, dtype=np.uint8),
            "gaussian_noise": np.clip(rng.normal(150, 40, frame), 0, 255).astype(np.uint8),
            "one_pixel": np.full((1, 1, 3), (200, 150, 130), np.uint8), "thumbnail": thumbnail()}


def thumbnail() -> np.ndarray:
    """A brown spot on skin, 48x36 pixels: too small for any dermoscopic image."""
    image = np.full((36, 48, 3), (200, 150, 130), np.uint8)
    return cv2.circle(image, (24, 18), 10, (90, 55, 40), thickness=-1)


def write_png_folder(images: dict[str, np.ndarray], folder: Path) -> list[Path]:
    """Each image as ``<name>.png`` in ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in images.items():
        paths.append(folder / f"{name}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return paths
