"""Architecture table, in-model preprocessing and portable .h5 models."""
from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from skin_lesion.errors import ConfigError, UserError
from skin_lesion.models.architectures import ARCHITECTURES, get_architecture, resolve_defaults
from skin_lesion.models.backbones import resolve_weights
from skin_lesion.models.factory import SkinLesionCNN
from tests.conftest import BINARY_TASK, SEVEN_CLASS_TASK
from skin_lesion.models.saved import save_model
from skin_lesion.models.preprocessing import apply_preprocessing


@pytest.mark.parametrize("alias, name", [
    ("EfficientNetB3", "efficientnet_b3"), ("efficientnet-b0", "efficientnet_b0"),
    ("InceptionV3", "inception_v3"), ("ResNet50", "resnet50"), ("InceptionResNetV2", "inception_resnet_v2"),
    ("DenseNet121", "densenet121"), ("vgg16", "vgg16"), ("SIMPLE_CNN", "simple_cnn"),
])
def test_common_spellings_resolve(alias, name):
    assert get_architecture(alias).name == name


def test_unknown_architecture_lists_choices():
    with pytest.raises(ConfigError, match="choose one of: simple_cnn, vgg_scratch, resnet50"):
        get_architecture("alexnet")


class NativeSize(Exception):
    pass


@pytest.mark.parametrize("name", [name for name, spec in ARCHITECTURES.items() if spec.pretrained])
def test_native_input_size_is_the_one_keras_trained_the_weights_at(name, monkeypatch):
    """The table's size must be Keras' default size for the backbone (its ImageNet size)."""
    from keras.src.applications import imagenet_utils

    def capture(input_shape, default_size, *args, **kwargs):
        raise NativeSize(default_size)

    monkeypatch.setattr(imagenet_utils, "obtain_input_shape", capture)
    spec = get_architecture(name)
    with pytest.raises(NativeSize) as size:
        getattr(keras.applications, spec.keras_class)(weights=None)
    assert spec.input_size == size.value.args[0]
    assert hasattr(getattr(keras.applications, spec.keras_module), "preprocess_input")


def test_defaults_are_resolved_in_one_place():
    spec = get_architecture("resnet50")
    assert resolve_defaults(spec) == {"img_size": 224, "learning_rate": 1e-3,
                                      "fine_tune_learning_rate": pytest.approx(1e-4),
                                      "unfreeze_layers": 30}
    custom = resolve_defaults(spec, img_size=96, learning_rate=3e-3, unfreeze_layers=0)
    assert custom["fine_tune_learning_rate"] == pytest.approx(3e-4) and custom["unfreeze_layers"] == 0
    assert resolve_defaults(spec, fine_tune_learning_rate=5e-5)["fine_tune_learning_rate"] == 5e-5
    assert SkinLesionCNN("resnet50", BINARY_TASK, weights="none").input_size == 224


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_in_model_preprocessing_equals_preprocess_input(name):
    spec = get_architecture(name)
    images = np.random.default_rng(1).uniform(0, 255, (4, 17, 23, 3)).astype(np.float32)
    inputs = keras.Input((17, 23, 3))
    layers_only = keras.Model(inputs, apply_preprocessing(inputs, spec.preprocessing))
    ours = layers_only.predict(images, verbose=0)
    if spec.pretrained:
        reference = getattr(keras.applications, spec.keras_module).preprocess_input(images.copy())
    else:
        reference = images / 255.0
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)
    used = {type(layer).__name__ for layer in layers_only.layers}
    assert "Lambda" not in used
    if spec.preprocessing == "builtin":  # EfficientNet normalises inside the backbone
        backbone = getattr(keras.applications, spec.keras_class)(include_top=False, weights=None,
                                                                 input_shape=(32, 32, 3))
        assert {"Rescaling", "Normalization"} <= {type(layer).__name__ for layer in backbone.layers[:4]}


def randomise_trainable_weights(model: keras.Model, seed: int = 0) -> None:
    """Untrained heads can give constant outputs; random weights make the comparison bite."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_weights:
        value = variable.numpy()
        variable.assign((value + rng.normal(0, 0.05, value.shape)).astype(value.dtype))


def outputs_and_features(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
    """One eager call (tracing ``predict`` twice per large backbone costs more than it runs)."""
    both = keras.Model(model.input, [model.output, model.get_layer("pool").output])
    outputs, features = both(images, training=False)
    return {"outputs": np.asarray(outputs), "features": np.asarray(features)}


CHECKER = """
import sys, numpy as np, keras
folder, names = sys.argv[1], sys.argv[2:]
images = np.load(folder + '/images.npy')
for name in names:
    model = keras.models.load_model(f'{folder}/{name}.h5')
    expected = np.load(f'{folder}/{name}.npz')
    both = keras.Model(model.input, [model.output, model.get_layer('pool').output])
    got = dict(zip(('outputs', 'features'), map(np.asarray, both(images, training=False))))
    for key in ('outputs', 'features'):
        scale = float(np.abs(expected[key]).max()) or 1.0
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=f'{name} {key}')
    spread = float(np.ptp(got['features'], axis=0).max()) / (float(np.abs(got['features']).max()) or 1.0)
    print('ok', name, 'varies' if spread > 1e-3 else 'constant')
assert "skin_lesion" not in sys.modules
"""


@pytest.mark.slow
def test_every_architecture_saves_portable_h5_and_is_explained(tmp_path):
    """Per architecture (built once, it takes a while): the .h5 loads without skin_lesion and predicts
    the same, the unfreeze default fits the backbone, and Grad-CAM gives finite
    maps of the input's size."""
    from skin_lesion.explanation.gradcam import explain

    size = 80
    images = np.random.default_rng(2).integers(0, 256, (3, size, size, 3)).astype(np.float32)
    for name in ARCHITECTURES:
        task = SEVEN_CLASS_TASK if name in ("simple_cnn", "densenet121") else BINARY_TASK
        model = SkinLesionCNN(name, task, weights="none", img_size=size).build()
        spec = get_architecture(name)
        assert spec.unfreeze_layers < len(model.get_layer("backbone").layers), name
        heat = explain(model, images, "gradcam")  # saliency shares the rewiring (test_explain.py)
        assert heat.shape == (3, size, size) and np.isfinite(heat).all(), name
        assert heat.min() >= 0 and heat.max() <= 1, name
        randomise_trainable_weights(model)
        save_model(model, tmp_path / f"{name}.h5", task.as_record())  # our attribute must not hurt
        np.savez(tmp_path / f"{name}.npz", **outputs_and_features(model, images))
        keras.backend.clear_session()
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run([sys.executable, "-c", CHECKER, str(tmp_path), *ARCHITECTURES],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("ok ") == len(ARCHITECTURES)
    # Pooled features must differ between images, or the comparison would prove little.
    assert result.stdout.count("varies") == len(ARCHITECTURES), result.stdout


def test_weights_argument_is_checked(tmp_path):
    simple = get_architecture("simple_cnn")
    assert resolve_weights("none", simple) is None
    with pytest.raises(ValueError, match="--weights none"):
        resolve_weights("imagenet", simple)
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_weights(str(tmp_path / "missing.h5"), get_architecture("resnet50"))


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")  # Keras, on the default size
def test_imagenet_download_failure_says_what_to_do(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(UserError, match="--weights none") as error:
        SkinLesionCNN("mobilenet_v2", BINARY_TASK, weights="imagenet", img_size=64).build()
    assert "--weights PATH" in str(error.value) and "~/.keras/models" in str(error.value)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
def test_offline_imagenet_training_stops_before_caching_or_making_a_run_folder(monkeypatch, sample_split, tmp_path):
    from keras.src.utils import file_utils

    from skin_lesion.training.config import TrainConfig
    from skin_lesion.training.trainer import train

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(file_utils, "get_file", offline)
    config = TrainConfig(architecture="mobilenet_v2", weights="imagenet", split_file=str(sample_split),
                         outputs_dir=str(tmp_path / "outputs"), img_size=64)
    with pytest.raises(UserError, match="--weights none"):
        train(config)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_local_weights_file_is_loaded_into_the_backbone(tmp_path):
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3))
    randomise_trainable_weights(donor, seed=3)
    donor.save_weights(tmp_path / "mobilenet_v2_notop.weights.h5")
    model = SkinLesionCNN("mobilenet_v2", BINARY_TASK, weights=str(tmp_path / "mobilenet_v2_notop.weights.h5"),
                          img_size=64).build()
    backbone = model.get_layer("backbone")
    for mine, theirs in zip(backbone.weights, donor.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_every_architecture_without_weights_has_a_builder():
    from skin_lesion.models.backbones import SCRATCH_BACKBONES

    assert {name for name, spec in ARCHITECTURES.items() if not spec.pretrained} == set(SCRATCH_BACKBONES)
