"""Build the test zoo: a manifest of >= 6 models across Caffe, MXNet, TensorFlow and ONNX sources.

- ``digits_keras``: a small Keras CNN trained here in a few seconds on scikit-learn's 8x8 digits, evaluated on
  held-out digits written as an image folder (accuracy is a real measurement in every framework);
- ``tiny_caffe`` (the project's example net, seeded random weights), ``tiny_onnx`` and ``tiny_mxnet`` (the
  bundled example files);
- ``mtcnn_pnet`` / ``mtcnn_onet`` from ../shared/models when present;
- ``broken``: the bundled MXNet checkpoint with a deliberately wrong option (an input name it does not have).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

EVAL_IMAGES = 120


def train_digits(folder: Path) -> tuple[Path, Path, float]:
    """Train the CNN, save ``digits.keras``, write the held-out digits as ``eval/<label>/<n>.png``;
    returns (model, image folder, the Keras accuracy on those images)."""
    import keras  # type: ignore[import-not-found]
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    from nnbridge.zoo.accuracy import write_image_folder

    digits = load_digits()
    pixels = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)  # what the PNG files will hold
    x = (pixels.astype(np.float32) / 255.0)[..., None]
    y = digits.target
    order = np.random.default_rng(0).permutation(len(y))
    train, held = order[:-EVAL_IMAGES], order[-EVAL_IMAGES:]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="digits"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", name="fc"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=6, batch_size=64, verbose=0)
    path = folder / "digits.keras"
    model.save(path)
    images = folder / "digits_eval"
    write_image_folder(images, pixels[held], y[held])
    # the labels of the folder are the sorted class folder names 00..09 -> 0..9 (the digits themselves)
    keras_acc = float(np.mean(model.predict(x[held], verbose=0).argmax(1) == y[held]))
    return path, images, keras_acc


def write_manifest(folder: Path, digits: Path, images: Path, shared: Path | None, mxnet: bool) -> Path:
    examples = Path(str(resources.files("nnbridge.zoo").joinpath("examples")))
    mx = ', "mxnet"' if mxnet else ""
    text = f"""
[[model]]
name = "digits_keras"
source = "{digits}"
targets = ["onnx", "caffe"{mx}]
task = "classification"
[model.preprocess]
raw_scale = 1.0
[model.dataset]
images = "{images}"
batch = 120

[[model]]
name = "tiny_caffe"
source = "package:nnbridge/examples/tiny_net.prototxt"
random_weights = 0
targets = ["onnx", "caffe"{mx}]

[[model]]
name = "tiny_onnx"
source = "{examples / 'tiny_net.onnx'}"
targets = ["caffe"{mx}]

[[model]]
name = "tiny_mxnet"
source = "{examples / 'tiny_mx-symbol.json'}"
input_shapes = {{ data = [1, 3, 32, 32] }}
targets = ["onnx", "caffe"]

[[model]]
name = "broken"
source = "{examples / 'tiny_mx-symbol.json'}"
input_shapes = {{ image = [1, 3, 32, 32] }}
targets = ["onnx"]
"""
    if shared is not None:
        mtcnn = shared / "caffe" / "mtcnn"
        text += f"""
[[model]]
name = "mtcnn_pnet"
source = "{mtcnn / 'det1.prototxt'}"
weights = "{mtcnn / 'det1.caffemodel'}"
input_shapes = {{ data = [1, 3, 32, 40] }}
targets = ["onnx"{mx}]
task = "detection"

[[model]]
name = "mtcnn_onet"
source = "{mtcnn / 'det3.prototxt'}"
weights = "{mtcnn / 'det3.caffemodel'}"
targets = ["onnx"]
task = "detection"
"""
    path = folder / "zoo.toml"
    path.write_text(text, encoding="utf-8")
    return path
