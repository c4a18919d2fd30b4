"""Explanations: the heatmaps point where the evidence is, for every architecture, and
07_explain.py writes the figures a person would show."""
from __future__ import annotations

import json
import logging
import shutil
from types import SimpleNamespace

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from skin_lesion.explanation.figures import BINARY_GROUPS, multiclass_cases, write_empty_groups
from skin_lesion.explanation.gradcam import explain, gradcam, upsample
from skin_lesion.models.factory import SkinLesionCNN
from tests.conftest import BINARY_TASK, SEVEN_CLASS_TASK, run_script

SIZE = 32
ROWS, COLUMNS = slice(0, 16), slice(16, 32)  # the top-right quadrant: catches swapped axes too


def region_only_model() -> keras.Model:
    """Our model's shape (image -> backbone -> pooling -> prediction), but the backbone's
    features are zero outside the top-right quadrant, so the output depends on it alone."""
    pixels = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(pixels)
    features = keras.layers.Cropping2D(((0, 16), (16, 0)))(features)
    features = keras.layers.ZeroPadding2D(((0, 16), (16, 0)))(features)
    backbone = keras.Model(pixels, features, name="backbone")
    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(keras.layers.Rescaling(1 / 255)(image)))
    output = keras.layers.Dense(1, activation="sigmoid", name="prediction")(x)
    model = keras.Model(image, output)
    backbone.layers[1].set_weights([np.abs(backbone.layers[1].get_weights()[0]), np.full(4, 0.1)])
    model.get_layer("prediction").set_weights([np.ones((4, 1)), np.zeros(1)])
    return model


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_a_model_that_reads_one_region_gets_its_heat_there(method):
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype("float32")
    heat = explain(region_only_model(), images, method)
    assert heat.shape == (3, SIZE, SIZE) and np.isfinite(heat).all()
    inside = heat[:, 2:14, 18:30].mean()  # away from the upsampling blur at the edge
    outside = np.concatenate([heat[:, 20:, :].ravel(), heat[:, :, :12].ravel()]).mean()
    assert inside > 0.3 and outside < 0.1 * inside, (inside, outside)


def reach_ratios(heat: np.ndarray, levels=(0.5, 0.7, 0.9)) -> list[float]:
    """For a single peak: how far its level lines reach along the diagonal, over how far along
    an axis (1 for round lines, 1/sqrt(2) for a diamond)."""
    centre = np.array(np.unravel_index(heat.argmax(), heat.shape), float)
    ratios = []
    for level in levels:
        def reach(direction) -> float:
            steps = np.arange(0, heat.shape[0] / 2, 0.05)
            points = np.round(centre + steps[:, None] * np.asarray(direction)).astype(int)
            return steps[np.argmax(heat[points[:, 0], points[:, 1]] < level)]
        ratios.append(reach((np.sqrt(0.5), np.sqrt(0.5))) / reach((0, 1)))
    return ratios


def test_a_coarse_map_is_upsampled_to_round_level_lines_not_diamonds():
    coarse = np.zeros((1, 7, 7), np.float32)
    coarse[0, 3, 3] = 1  # one feature-map cell, as the last 7x7 map of a 224-pixel backbone
    heat = upsample(coarse, (224, 224))[0]
    assert heat.shape == (224, 224) and heat.min() >= 0
    assert all(0.9 < ratio < 1.1 for ratio in reach_ratios(heat / heat.max())), reach_ratios(heat / heat.max())
    bilinear = cv2.resize(coarse[0], (224, 224), interpolation=cv2.INTER_LINEAR)
    assert min(reach_ratios(bilinear / bilinear.max())) < 0.85  # the measure sees the diamond


def test_an_empty_group_gets_a_figure_and_a_console_line(tmp_path, caplog):
    """No false negatives in the test split is a result a reader must see, not a missing file."""
    predictor = SimpleNamespace(task=BINARY_TASK, threshold=0.4, model_file=tmp_path / "model.h5")
    cases = pd.DataFrame({"group": ["true_positive", "false_positive", "true_negative"]})
    with caplog.at_level(logging.INFO):
        write_empty_groups(predictor, cases, tmp_path, "gradcam")
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["gradcam_false_negative.png"]
    assert "No false negatives in the test split at threshold 0.400." in caplog.text
    seven_class = SimpleNamespace(task=SEVEN_CLASS_TASK, threshold=0.4, model_file=tmp_path / "model.h5")
    with caplog.at_level(logging.INFO):
        write_empty_groups(seven_class, pd.DataFrame({"group": ["mel_correct"]}), tmp_path / "seven", "saliency")
    assert len(list((tmp_path / "seven").glob("saliency_*.png"))) == 13
    assert "No mel image of the test split is predicted as another class." in caplog.text


def test_metadata_and_mixed_precision_models_are_explained():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, SIZE, SIZE, 3)).astype("float32")
    with_metadata = SkinLesionCNN("simple_cnn", BINARY_TASK, weights="none", img_size=SIZE, metadata_features=3).build()
    assert np.isfinite(gradcam(with_metadata, images, metadata=np.zeros((2, 3), "float32"))).all()
    with pytest.raises(ValueError, match="metadata input"):
        gradcam(with_metadata, images)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = SkinLesionCNN("vgg_scratch", SEVEN_CLASS_TASK, weights="none", img_size=SIZE).build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    heat = gradcam(mixed, images, class_index=np.array([0, 4]))
    assert heat.dtype == np.float32 and np.isfinite(heat).all() and heat.shape == (2, SIZE, SIZE)


@pytest.fixture(scope="module")
def trained(trained_run):
    """The shared sample run: a model that has learned the sample data."""
    return trained_run.outputs, trained_run.run


def lesion_and_surrounding_skin(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The drawn lesion (pixels far from the skin colour at the frame's edge) and a band of
    skin around it."""
    border = np.concatenate([image[:8].reshape(-1, 3), image[-8:].reshape(-1, 3)])
    distance = np.linalg.norm(image.astype(float) - np.median(border, axis=0), axis=-1)
    lesion = cv2.morphologyEx((distance > 40).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    around = cv2.dilate(lesion, np.ones((41, 41), np.uint8)) - cv2.dilate(lesion, np.ones((9, 9), np.uint8))
    return lesion.astype(bool), around.astype(bool)


@pytest.mark.slow
def test_explain_writes_grids_and_the_heat_is_on_the_lesions(trained):
    from skin_lesion.explanation.figures import FIGURE_IMAGE_SIZE, decoded
    from skin_lesion.serving.predictor import from_run
    from skin_lesion.layout import open_run

    outputs, run = trained
    result = run_script("07_explain.py", "--outputs-dir", outputs)
    listing = pd.read_csv(run / "explain/gradcam_test_cases.csv", keep_default_na=False)
    assert "Explained" in result.stderr and set(listing["group"]) <= {"true_positive", "false_positive",
                                                                 "false_negative", "true_negative"}
    for group in set(listing["group"]):
        assert (run / f"explain/gradcam_{group}.png").stat().st_size > 10_000
    for group in set(BINARY_GROUPS) - set(listing["group"]):  # a figure and a line say it is empty
        assert (run / f"explain/gradcam_{group}.png").is_file()
        assert f"No {group.replace('_', ' ')}s in the test split" in result.stderr
    assert all((run / "explain" / name).is_file() for name in listing["file"])
    threshold = json.loads((run / "threshold.json").read_text())["threshold"]
    assert np.allclose(listing["threshold"], threshold)
    positives = listing[listing["group"] == "true_positive"]
    assert (positives["score"] >= threshold).all() and positives["score"].is_monotonic_decreasing

    predictor = from_run(open_run(run))
    cases = listing[listing["group"] == "true_positive"]
    heat = gradcam(predictor.model, decoded(cases["image_path"].tolist(), predictor.img_size),
                   class_index=np.ones(len(cases), int))
    shown = decoded(cases["image_path"].tolist(), FIGURE_IMAGE_SIZE)
    ratios = []
    for image, heatmap in zip(shown, heat):
        lesion, around = lesion_and_surrounding_skin(image)
        large = cv2.resize(heatmap, (FIGURE_IMAGE_SIZE, FIGURE_IMAGE_SIZE))
        ratios.append(large[lesion].mean() / max(large[around].mean(), 1e-6))
    # Every lesion at least as hot as the skin around it, and typically 10 % hotter (a 48-pixel
    # model of six epochs; one lesion gave 1.02 on an AVX-512 BF16 CPU).
    assert len(ratios) >= 3 and min(ratios) > 1.0 and np.median(ratios) > 1.1, ratios


@pytest.mark.slow
def test_explain_chosen_images_and_refuse_to_overwrite(trained, sample_dir, tmp_path):
    outputs, run = trained
    images = sorted((sample_dir / "HAM10000_images_part_1").iterdir())[:3]
    (tmp_path / "broken.jpg").write_text("not an image")
    result = run_script("07_explain.py", "--outputs-dir", outputs, "--images", *images, tmp_path / "broken.jpg",
                        "--method", "saliency", "--metadata", sample_dir / "HAM10000_metadata.csv")
    listing = pd.read_csv(run / "explain/saliency_chosen.csv", keep_default_na=False)
    assert list(listing["image_path"]) == [str(p) for p in images]
    assert listing["dx"].ne("").all()  # the metadata names each image's diagnosis: the caption shows it
    assert result.stderr.count("Explained 3 image(s)") == 1 and "Wrote" not in result.stderr
    assert (run / "explain/saliency_chosen.png").is_file()
    again = run_script("07_explain.py", "--outputs-dir", outputs, "--images", images[0], "--method",
                       "saliency", check=False)
    assert again.returncode == 2 and "--force" in again.stderr and "elsewhere with --out-dir DIR" in again.stderr
    twin = tmp_path / "elsewhere" / images[0].name  # the same file name in another folder
    twin.parent.mkdir()
    shutil.copy(images[1], twin)
    run_script("07_explain.py", "--outputs-dir", outputs, "--images", images[0], twin, "--method", "saliency",
               "--out-dir", tmp_path / "chosen")
    pngs = {path.name for path in (tmp_path / "chosen/images").iterdir()}
    assert pngs == {f"{images[0].stem}_chosen_saliency.png", f"{images[0].stem}_2_chosen_saliency.png"}


def test_seven_class_cases_follow_the_top_class_decision_not_the_argmax():
    """The test cases shown for a 7-class model are grouped by its top class (the class-balanced
    decision), with the confidence of that class."""
    table = pd.DataFrame({"image_id": [f"ISIC_{i}" for i in range(4)], "dx": ["mel", "mel", "nv", "nv"]})
    probabilities = np.full((4, 7), 0.05)
    probabilities[:, 5] = 0.7  # nv (index 5) is every row's argmax ...
    probabilities[0, 4] = 0.2
    predicted = np.array([4, 5, 5, 4])  # ... but the decision calls images 0 and 3 melanoma
    cases = multiclass_cases(table, probabilities, predicted, per_group=2, task=SEVEN_CLASS_TASK)
    groups = cases.groupby("group")["image_id"].apply(list).to_dict()
    assert groups == {"mel_correct": ["ISIC_0"], "mel_missed": ["ISIC_1"], "nv_correct": ["ISIC_2"],
                      "nv_missed": ["ISIC_3"]}
    assert cases.set_index("image_id").loc["ISIC_0", "confidence"] == pytest.approx(0.2)
    assert list(cases.set_index("image_id").loc[["ISIC_0", "ISIC_3"], "class_index"]) == [4, 4]
