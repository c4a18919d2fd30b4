"""A small synthetic dataset in the exact Kaggle HAM10000 layout.

It lets every script run before anyone downloads HAM10000: 600x450 JPEGs, all seven metadata
columns, several images for some lesions, a HAM10000-like class imbalance, and a drawn
dermoscopic pattern that differs by diagnosis so that a model can really learn it (malignant
classes are dark and irregular, pink with branching vessels, or red and scaly).

Only the layout is HAM10000's: the ids (``SYN_0000001``, lesions ``SYN_L_0000001``) cannot be
taken for real ones, and ``provenance.json`` marks the data synthetic, which every step that
speaks about the data repeats (model card, data report, app, console).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from skin_lesion.data.dataset import Provenance, write_provenance_file
from skin_lesion.data.datasets.ham10000 import IMAGE_FOLDERS, METADATA_COLUMNS, METADATA_FILE
from skin_lesion.errors import OverwriteError
from skin_lesion.io_utils import staging_dir

WIDTH, HEIGHT = 600, 450
#: Images per diagnosis: HAM10000's order of frequency, with enough of the rare classes that
#: every class reaches every split.
IMAGES_PER_CLASS = {"nv": 300, "mel": 60, "bkl": 60, "bcc": 36, "akiec": 28, "vasc": 20, "df": 20}
LOCALIZATIONS = ("back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest")
DX_TYPES = {"nv": "follow_up", "df": "consensus", "vasc": "consensus"}
PROVENANCE = Provenance(name="Synthetic sample (generated drawings)",
                        source="scripts/00_make_sample_data.py",
                        licence="MIT, as this project's code that draws it", synthetic=True)


def radial_field() -> tuple[np.ndarray, np.ndarray]:
    """Squared and plain distance from the frame centre (normalised), computed once."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    squared = (xx / WIDTH - 0.5) ** 2 + (yy / HEIGHT - 0.5) ** 2
    return squared, np.hypot(xx - WIDTH / 2, yy - HEIGHT / 2)


RADIAL_SQUARED, RADIUS_PIXELS = radial_field()
#: Sensor grain is cut from one larger field at random offsets: drawing fresh Gaussian noise
#: for every image would make up most of the generation time.
GRAIN = np.random.default_rng(0).standard_normal((2 * HEIGHT, 2 * WIDTH, 3), dtype=np.float32)


def noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    top, left = rng.integers(HEIGHT), rng.integers(WIDTH)
    return GRAIN[top:top + HEIGHT, left:left + WIDTH] * np.float32(sigma)


def draw_skin(rng: np.random.Generator) -> np.ndarray:
    """Skin-coloured background with shading, grain and, sometimes, a dark dermoscope rim."""
    tone = (np.array([225, 185, 160]) + rng.normal(0, 12, 3)).astype(np.float32)
    shade = 1 - 0.15 * RADIAL_SQUARED
    image = tone[None, None, :] * shade[..., None] + noise(rng, 6)
    if rng.random() < 0.3:
        image[RADIUS_PIXELS > 0.55 * WIDTH] *= 0.15
    return np.clip(image, 0, 255).astype(np.uint8)


def lesion_outline(rng: np.random.Generator, irregular: bool, radius: float) -> np.ndarray:
    """Polygon of a lesion border; irregular borders (melanoma) wobble at several frequencies."""
    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    wobble = 0.04 + (0.22 if irregular else 0.0)
    radii = radius * (1 + sum(
        wobble / k * np.sin(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    ))
    aspect = rng.uniform(0.75, 1.0)
    points = np.stack([radii * np.cos(angles), aspect * radii * np.sin(angles)], axis=1)
    return points.astype(np.int32)


def draw_lesion(dx: str, lesion: dict, view: np.random.Generator) -> np.ndarray:
    """One photograph of a lesion: the lesion's own pattern, seen with a new pose and light."""
    rng = np.random.default_rng(lesion["seed"])  # the lesion's look, shared by its images
    image = draw_skin(view)
    center = np.array([WIDTH / 2, HEIGHT / 2]) + view.normal(0, 25, 2)
    outline = lesion_outline(rng, dx == "mel", lesion["radius"] * view.uniform(0.9, 1.1))
    angle = view.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    polygon = (outline @ rotation.T + center).astype(np.int32)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(mask, [polygon], 255)
    x0, y0, w, h = cv2.boundingRect(polygon)

    paint = image.copy()
    base = {
        "nv": (150, 95, 60), "mel": (70, 40, 30), "bkl": (185, 140, 95), "bcc": (215, 140, 140),
        "akiec": (200, 90, 85), "vasc": (160, 40, 80), "df": (165, 115, 80),
    }[dx]
    paint[mask > 0] = np.array(base) + rng.normal(0, 8, 3)
    if dx == "mel":  # blue-grey and black blotches
        for _ in range(6):
            spot = (int(x0 + rng.uniform(0.2, 0.8) * w), int(y0 + rng.uniform(0.2, 0.8) * h))
            colour = (90, 100, 130) if rng.random() < 0.5 else (25, 15, 15)
            cv2.circle(paint, spot, int(rng.uniform(8, 25)), colour, -1)
    elif dx == "bkl":  # cerebriform ridges
        for _ in range(25):
            start = (int(x0 + rng.uniform(0, w)), int(y0 + rng.uniform(0, h)))
            end = (start[0] + int(rng.normal(0, 25)), start[1] + int(rng.normal(0, 25)))
            cv2.line(paint, start, end, (120, 85, 55), 3)
    elif dx == "bcc":  # arborizing red vessels
        for _ in range(10):
            start = np.array([x0 + rng.uniform(0.2, 0.8) * w, y0 + rng.uniform(0.2, 0.8) * h])
            for _ in range(4):
                end = start + rng.normal(0, 18, 2)
                cv2.line(paint, tuple(start.astype(int)), tuple(end.astype(int)), (180, 20, 30), 2)
                start = end
    elif dx == "akiec":  # white scale
        for _ in range(120):
            spot = (int(x0 + rng.uniform(0, w)), int(y0 + rng.uniform(0, h)))
            cv2.circle(paint, spot, 2, (245, 235, 230), -1)
    elif dx == "vasc":  # red-purple lacunae
        for _ in range(12):
            spot = (int(x0 + rng.uniform(0.15, 0.85) * w), int(y0 + rng.uniform(0.15, 0.85) * h))
            cv2.circle(paint, spot, int(rng.uniform(8, 18)), (120, 10, 60), -1)
    elif dx == "df":  # central white patch
        centre = (int(x0 + w / 2), int(y0 + h / 2))
        cv2.ellipse(paint, centre, (max(w // 6, 4), max(h // 6, 4)), 0, 0, 360, (240, 225, 215), -1)

    paint = cv2.GaussianBlur(paint, (5, 5), 0)
    soft = cv2.GaussianBlur(mask, (21, 21), 0)[..., None].astype(np.float32) / 255
    image = image * (1 - soft) + paint * soft
    image = image * np.float32(view.uniform(0.85, 1.15)) + noise(view, 4)
    return np.clip(image, 0, 255).astype(np.uint8)


def sample_metadata(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Metadata rows and per-lesion drawing parameters; ~30 % of lesions get 2-3 images."""
    rows, lesions = [], {}
    image_number = lesion_number = 1
    for dx, count in IMAGES_PER_CLASS.items():
        made = 0
        while made < count:
            images = min(count - made, int(rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3])))
            lesion_id = f"SYN_L_{lesion_number:07d}"
            lesion_number += 1
            lesions[lesion_id] = {"seed": int(rng.integers(2**31)), "radius": rng.uniform(70, 150)}
            age = float(5 * rng.integers(4, 18))
            sex = str(rng.choice(["male", "female"]))
            site = str(rng.choice(LOCALIZATIONS))
            for _ in range(images):
                rows.append((lesion_id, f"SYN_{image_number:07d}", dx,
                             DX_TYPES.get(dx, "histo"), age, sex, site))
                image_number += 1
            made += images
    order = rng.permutation(len(rows))  # ids interleave classes, as in HAM10000
    table = pd.DataFrame(rows, columns=list(METADATA_COLUMNS))
    table["image_id"] = table["image_id"].to_numpy()[np.argsort(order)]
    return table.sort_values(["lesion_id", "image_id"]).reset_index(drop=True), lesions


def make_sample_dataset(out_dir: Path, seed: int = 0, force: bool = False) -> Path:
    """Write the sample dataset, marked synthetic, to ``out_dir`` (built in a staging folder,
    then renamed)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise OverwriteError(
            f"{out_dir} already exists; pass --force to rebuild it or choose another folder."
        )
    rng = np.random.default_rng(seed)
    metadata, lesions = sample_metadata(rng)
    with staging_dir(out_dir, replace=force) as build_dir:
        for folder in IMAGE_FOLDERS:
            (build_dir / folder).mkdir()
        halfway = sorted(metadata["image_id"])[len(metadata) // 2]
        for row in metadata.sort_values("image_id").itertuples():
            image = draw_lesion(row.dx, lesions[row.lesion_id], rng)
            folder = IMAGE_FOLDERS[0] if row.image_id < halfway else IMAGE_FOLDERS[1]
            cv2.imwrite(str(build_dir / folder / f"{row.image_id}.jpg"),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        metadata.to_csv(build_dir / METADATA_FILE, index=False, lineterminator="\n")
        write_provenance_file(build_dir, PROVENANCE)
    return out_dir
