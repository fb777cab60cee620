"""Small TensorFlow/Keras models with realistic random weights, saved in every TensorFlow format.

Weights: Keras' default initialisers (Glorot-uniform kernels) or He-normal kernels for the TF1 graph;
BatchNormalization gets gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), moving mean ~ N(0, 0.1), moving variance
~ U(0.5, 1.5), so that no output vanishes. Every builder is seeded. Module-level imports stay light: the
callers skip when TensorFlow is absent (``pytest.importorskip``) before calling anything here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _keras() -> Any:
    import keras

    return keras


def realistic_bn(model: Any, seed: int = 0) -> None:
    keras = _keras()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])


def sequential(seed: int = 0) -> Any:
    """conv/bn/relu/pool x2, flatten, dense/relu, dense: 32x32x3 -> 10."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((32, 32, 3), name="img"),
        layers.Conv2D(8, 3, padding="same", name="conv1"), layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"), layers.MaxPooling2D(name="pool1"),
        layers.Conv2D(16, 3, name="conv2"), layers.BatchNormalization(name="bn2"), layers.ReLU(name="relu2"),
        layers.AveragePooling2D(2, name="pool2"), layers.Flatten(name="flat"),
        layers.Dense(32, activation="relu", name="fc1"), layers.Dense(10, name="fc2"),
    ], name="seqnet")
    realistic_bn(model, seed)
    return model


def two_io(seed: int = 0) -> Any:
    """Inputs ``img`` (32x32x3) and ``meta`` (8); outputs ``logits`` (5) and ``embed`` (4)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    img = keras.Input((32, 32, 3), name="img")
    meta = keras.Input((8,), name="meta")
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(img)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    y = layers.Dense(16, activation="relu", name="meta_fc")(meta)
    z = layers.Concatenate(name="cat")([x, y])
    logits = layers.Dense(5, name="logits")(z)
    embed = layers.Dense(4, activation="tanh", name="embed")(z)
    model = keras.Model([img, meta], [logits, embed], name="twoio")
    realistic_bn(model, seed)
    return model


def save_keras(model: Any, path: Path) -> Path:
    model.save(path)
    return path


def save_savedmodel(model: Any, path: Path) -> Path:
    model.export(str(path), verbose=False)
    return path


def save_frozen(model: Any, path: Path) -> Path:
    """A frozen GraphDef of the model's forward pass (Placeholders named after the Input layers, dynamic batch)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=t._keras_history.operation.name)
             for t in model.inputs]

    @tf.function(input_signature=specs)
    def forward(*xs: Any) -> Any:
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


def save_tflite(model: Any, path: Path) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())
    return path


def save_tf1_checkpoint(prefix: Path, seed: int = 0) -> Path:
    """A TF1 graph (placeholder ``x`` Nx32x32x3 -> conv/bias/relu/pool -> conv/relu -> dense ``logits``) and
    a Saver checkpoint of it with He-normal weights; returns the prefix (``prefix.meta`` beside it)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)

    def he(shape: tuple[int, ...]) -> np.ndarray:
        fan_in = int(np.prod(shape[:-1]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 32, 32, 3], name="x")
        w1 = v1.get_variable("conv1/w", initializer=he((3, 3, 3, 8)))
        b1 = v1.get_variable("conv1/b", initializer=(rng.standard_normal(8) * 0.1).astype(np.float32))
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w1, 1, "SAME"), b1), name="conv1/relu")
        h = tf.nn.max_pool2d(h, 2, 2, "VALID", name="pool1")
        w2 = v1.get_variable("conv2/w", initializer=he((3, 3, 8, 16)))
        h = tf.nn.relu(tf.nn.conv2d(h, w2, 1, "VALID"), name="conv2/relu")
        h = tf.reshape(h, [-1, 14 * 14 * 16], name="flat")
        w3 = v1.get_variable("fc/w", initializer=he((14 * 14 * 16, 10)))
        b3 = v1.get_variable("fc/b", initializer=(rng.standard_normal(10) * 0.1).astype(np.float32))
        tf.identity(tf.matmul(h, w3) + b3, name="logits")
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            saver.save(session, str(prefix))
    return prefix


def save_tf1_savedmodel(path: Path, seed: int = 0) -> Path:
    """A TF1 SavedModel (``simple_save``): ``x`` Nx16x16x3 -> conv/relu ``y`` Nx16x16x4, a 4-D (NHWC) output."""
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 16, 16, 3], name="x")
        w = v1.get_variable("w", initializer=(rng.standard_normal((3, 3, 3, 4)) * np.sqrt(2 / 27)).astype(np.float32))
        b = v1.get_variable("b", initializer=(rng.standard_normal(4) * 0.1).astype(np.float32))
        y = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b, name="y")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            v1.saved_model.simple_save(session, str(path), inputs={"x": x}, outputs={"y": y})
    return path
