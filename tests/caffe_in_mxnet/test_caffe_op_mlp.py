"""The original MXNet Caffe-plugin MLP example, with only the import changed (``mx.sym.CaffeOp`` ->
``nnbridge.mxnet.CaffeOp``), trains on scikit-learn's digits (8x8, 10 classes) in MXNet."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from support.mxnet_env import run_mxnet

logger = logging.getLogger(__name__)

SCRIPT = r'''
import time
from nnbridge.mxnet import CaffeOp, CaffeLoss

# --- the plugin example (example/caffe/caffe_net.py, get_mlp), import changed only ---
data = mx.symbol.Variable('data')
fc1 = CaffeOp(data_0=data, num_weight=2, name='fc1',
              prototxt="layer{type:\"InnerProduct\" inner_product_param{num_output: 128} }")
act1 = CaffeOp(data_0=fc1, prototxt="layer{type:\"TanH\"}")
fc2 = CaffeOp(data_0=act1, num_weight=2, name='fc2',
              prototxt="layer{type:\"InnerProduct\" inner_product_param{num_output: 64} }")
act2 = CaffeOp(data_0=fc2, prototxt="layer{type:\"TanH\"}")
fc3 = CaffeOp(data_0=act2, num_weight=2, name='fc3',
              prototxt="layer{type:\"InnerProduct\" inner_product_param{num_output: 10}}")
label = mx.symbol.Variable('softmax_label')
mlp = CaffeLoss(data=fc3, label=label, grad_scale=1, name='softmax',
                prototxt="layer{type:\"SoftmaxWithLoss\"}")
# ---
result["arguments"] = mlp.list_arguments()
mx.random.seed(0)
np.random.seed(0)
x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
train = mx.io.NDArrayIter(x_train, y_train, batch_size=32, shuffle=True)
test = mx.io.NDArrayIter(x_test, y_test, batch_size=100)
start = time.time()
mod = mx.mod.Module(mlp, context=mx.cpu())
mod.fit(train, num_epoch=args["epochs"], optimizer="sgd",
        optimizer_params={"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4},
        initializer=mx.init.Xavier(magnitude=2.0), eval_metric=mx.metric.Loss())
result["seconds"] = time.time() - start
arg_params, aux_params = mod.get_params()
predict = mx.mod.Module(fc3, label_names=None, context=mx.cpu())
predict.bind(data_shapes=test.provide_data, for_training=False)
predict.set_params(arg_params, aux_params, allow_extra=True)
scores = predict.predict(test).asnumpy()
result["accuracy"] = float((scores.argmax(axis=1) == y_test).mean())
'''


def test_plugin_mlp_example_trains_on_digits() -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn provides the digits data set")
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = 1397  # ~78% train, 400 test
    arrays = {"x_train": x[:split], "y_train": y[:split], "x_test": x[split:split + 400],
              "y_test": y[split:split + 400]}
    got = run_mxnet(SCRIPT, arrays, epochs=15)
    logger.info("digits MLP: accuracy %.4f after %.1f s of training", got["accuracy"], got["seconds"])
    assert got["arguments"] == ["data", "fc1_0_weight", "fc1_1_bias", "fc2_0_weight", "fc2_1_bias",
                                "fc3_0_weight", "fc3_1_bias", "softmax_label"]
    assert got["seconds"] < 60, got["seconds"]
    assert got["accuracy"] >= 0.9, got["accuracy"]
