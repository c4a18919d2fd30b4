"""Model pieces without training: the metadata input, self-describing float32 .h5 files,
calibration maps and the metadata encoding."""
from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from skin_lesion.data.metadata import MetadataEncoding
from skin_lesion.metrics import brier_score, expected_calibration_error
from skin_lesion.models.calibration import Calibration, fit_calibration
from skin_lesion.models.factory import SkinLesionCNN, unfreeze_top_layers
from skin_lesion.models.saved import ModelFileError, load_for_prediction, read_model_info, save_model
from tests.conftest import BINARY_TASK, SEVEN_CLASS_TASK


def test_metadata_model_has_two_named_inputs_and_uses_both(tmp_path):
    model = SkinLesionCNN("simple_cnn", BINARY_TASK, weights="none", img_size=32, metadata_features=5).build()
    assert sorted(tensor.name for tensor in model.inputs) == ["image", "metadata"]
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:  # untrained heads can be flat; make both branches bite
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
    images = rng.integers(0, 256, (2, 32, 32, 3)).astype("float32")
    metadata = np.zeros((2, 5), "float32")
    base = model.predict({"image": images, "metadata": metadata}, verbose=0)
    changed = model.predict({"image": images, "metadata": metadata + 1}, verbose=0)
    assert not np.allclose(base, changed)
    save_model(model, tmp_path / "m.h5", {"task": "binary"})
    loaded = keras.models.load_model(tmp_path / "m.h5", compile=False)
    np.testing.assert_allclose(loaded.predict({"image": images, "metadata": metadata}, verbose=0), base, rtol=1e-5)


def test_saved_models_describe_themselves_and_compute_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = SkinLesionCNN("simple_cnn", BINARY_TASK, weights="none", img_size=32).build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("backbone").layers[1].compute_dtype == "bfloat16"
    save_model(model, tmp_path / "m.h5", {"task": "binary", "img_size": 32})
    assert read_model_info(tmp_path / "m.h5") == {"task": "binary", "img_size": 32}
    loaded = load_for_prediction(tmp_path / "m.h5")
    dtypes = {layer.compute_dtype for layer in loaded.get_layer("backbone").layers}
    assert dtypes == {"float32"}
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=0.02)


def test_unloadable_model_files_are_named(tmp_path):
    (tmp_path / "text.h5").write_text("not a model")
    with pytest.raises(ModelFileError, match=str(tmp_path / "text.h5")):
        load_for_prediction(tmp_path / "text.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_for_prediction(tmp_path / "missing.h5")


def test_unfreezing_keeps_batch_norm_frozen_for_pretrained_backbones():
    model = SkinLesionCNN("mobilenet_v2", BINARY_TASK, weights="none", img_size=48).build()
    backbone = model.get_layer("backbone")
    assert unfreeze_top_layers(model, 20, freeze_batch_norm=True) > 0
    trainable = [layer for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable and all(layer in backbone.layers[-20:] for layer in trainable)
    assert not [layer for layer in trainable if isinstance(layer, keras.layers.BatchNormalization)]
    unfreeze_top_layers(model, -1, freeze_batch_norm=False)
    assert all(layer.trainable for layer in backbone.layers)


def over_confident(rng, n=4000):
    """Labels drawn with probability p, scores pushed towards 0 and 1 and shifted up."""
    truth_probability = rng.uniform(0.02, 0.98, n)
    labels = (rng.uniform(size=n) < truth_probability).astype(int)
    logits = np.log(truth_probability / (1 - truth_probability))
    return labels, 1 / (1 + np.exp(-(3 * logits + 1.5)))


def test_calibration_lowers_ece_and_brier_on_an_over_confident_model():
    rng = np.random.default_rng(0)
    labels, scores = over_confident(rng)
    test_labels, test_scores = over_confident(rng)
    for method in ("platt", "temperature"):
        calibration = fit_calibration(labels, scores, method)
        after = calibration.apply(test_scores)
        assert expected_calibration_error(test_labels, after) < 0.5 * expected_calibration_error(test_labels, test_scores)
        assert brier_score(test_labels, after) < brier_score(test_labels, test_scores)
    platt = fit_calibration(labels, scores, "platt")
    assert platt.slope == pytest.approx(1 / 3, abs=0.05) and platt.intercept == pytest.approx(-0.5, abs=0.15)
    np.testing.assert_array_equal(np.argsort(platt.apply(test_scores)), np.argsort(test_scores))


def test_temperature_scaling_of_seven_classes():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1.5, (4000, 7))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in truth])  # softmax(logits) is the truth
    sharp = np.exp(4 * logits) / np.exp(4 * logits).sum(axis=1, keepdims=True)  # 4x too confident
    calibration = fit_calibration(labels, sharp, "temperature")
    assert calibration.temperature == pytest.approx(4, rel=0.15)
    calibrated = calibration.apply(sharp)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), sharp.argmax(axis=1))
    top = calibrated.max(axis=1)
    assert expected_calibration_error(calibrated.argmax(axis=1) == labels, top) < \
        expected_calibration_error(sharp.argmax(axis=1) == labels, sharp.max(axis=1))
    assert Calibration.from_dict(calibration.as_dict()) == calibration
    with pytest.raises(ValueError, match="Platt scaling is for binary"):
        fit_calibration(labels, sharp, "platt")


def test_bias_corrected_temperature_undoes_the_prior_shift_of_class_weights():
    """A class-weighted 7-class model outputs balanced, over-confident probabilities; the truth
    has HAM10000's class prior. Biases recover the prior, the malignant score becomes calibrated
    (one temperature cannot do that) and the top class stays the balanced decision."""
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1.5, (6000, 7))
    log_prior = np.log([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02])  # akiec ... vasc
    truth = np.exp(logits + log_prior) / np.exp(logits + log_prior).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in truth])
    balanced = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)
    fit, test = slice(0, 3000), slice(3000, None)
    malignant = SEVEN_CLASS_TASK.malignant_of_labels(labels[test])
    errors = {}
    for method in ("temperature", "bias_temperature"):
        calibration = fit_calibration(labels[fit], balanced[fit], method)
        calibrated = calibration.apply(balanced[test])
        errors[method] = expected_calibration_error(malignant, SEVEN_CLASS_TASK.malignant_score(calibrated))
    assert errors["bias_temperature"] < 0.03 < 0.1 < errors["temperature"]
    assert calibration.temperature == pytest.approx(2, rel=0.15)
    np.testing.assert_allclose(np.array(calibration.biases) - calibration.biases[5], log_prior - log_prior[5], atol=0.3)
    top = calibration.top_class(calibrated)
    assert balanced_accuracy_score(labels[test], top) > balanced_accuracy_score(labels[test], balanced[test].argmax(axis=1))
    assert balanced_accuracy_score(labels[test], calibrated.argmax(axis=1)) < balanced_accuracy_score(labels[test], top) - 0.1
    assert Calibration.from_dict(calibration.as_dict()) == calibration
    unweighted = fit_calibration(labels[fit], balanced[fit], "bias_temperature", balanced=False)
    assert unweighted.biases == calibration.biases and not unweighted.class_prior  # keeps its own argmax
    np.testing.assert_array_equal(unweighted.top_class(calibrated), calibrated.argmax(axis=1))
    with pytest.raises(ValueError, match="bias_temperature is for multi-class"):
        fit_calibration(labels[fit] % 2, balanced[fit, 0], "bias_temperature")


def test_metadata_encoding_is_fitted_on_training_and_says_what_is_missing():
    train = pd.DataFrame({"age": ["30", "50", "", "70"], "sex": ["male", "female", "male", "unknown"],
                          "localization": ["back", "face", "back", "trunk"]})
    encoding = MetadataEncoding.fit(train)
    assert encoding.sex == ("female", "male") and encoding.localization == ("back", "face", "trunk")
    assert encoding.age_mean == pytest.approx(50) and encoding.age_std == pytest.approx(np.std([30, 50, 70]))
    assert encoding.columns == ("age", "age_missing", "sex=female", "sex=male", "sex=unknown",
                                "localization=back", "localization=face", "localization=trunk",
                                "localization=unknown")
    rows = pd.DataFrame({"age": ["50", "abc", "90"], "sex": ["MALE ", "", "female"],
                         "localization": ["back", "palm", "face"]})
    features, notes = encoding.encode(rows)
    assert features.shape == (3, encoding.width) and features.dtype == np.float32
    np.testing.assert_allclose(features[0], [0, 0, 0, 1, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(features[1], [0, 1, 0, 0, 1, 0, 0, 0, 1])
    assert notes == ["", "age missing; sex unknown; localization 'palm' not seen in training, encoded as unknown", ""]
    empty, empty_notes = encoding.encode(pd.DataFrame(index=range(2)))
    np.testing.assert_allclose(empty[:, [1, 4, 8]], 1)
    assert empty_notes == ["age missing; sex unknown; localization unknown"] * 2
    assert MetadataEncoding.from_dict(encoding.as_dict()) == encoding
