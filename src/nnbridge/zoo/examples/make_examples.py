"""Regenerate the small model files the bundled example manifest uses (run from a checkout, rarely needed).

    python -m nnbridge.zoo.examples.make_examples

- ``tiny_net.onnx`` and ``tiny_mx-symbol.json``/``tiny_mx-0000.params``: the project's example Caffe net with
  seeded random weights (realistic statistics), converted by nnbridge itself (ONNX writer, MXNet writer);
- ``digits_cnn.keras``: a small Keras CNN for 8x8x1 inputs with seeded He-normal weights (needs TensorFlow).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def make_converted(folder: Path = HERE) -> None:
    from nnbridge.api import convert
    from nnbridge.examples import write_example_caffe

    with tempfile.TemporaryDirectory() as tmp:
        prototxt, caffemodel = write_example_caffe(tmp, seed=3)
        convert(prototxt, folder / "tiny_net.onnx", weights=caffemodel)
        convert(prototxt, folder / "tiny_mx", weights=caffemodel, to="mxnet")


def make_keras(path: Path = HERE / "digits_cnn.keras", seed: int = 0) -> None:
    import keras  # type: ignore[import-not-found]

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="digits"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer="he_normal", name="conv"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", kernel_initializer="he_normal", name="fc"),
    ])
    model.save(path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    make_converted()
    make_keras()
