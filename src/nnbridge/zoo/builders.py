"""Manifest sources built at run time: ``keras.applications:NAME`` and ``gluoncv:NAME``.

The model is built with NO pretrained weights (``weights=None``; ``pretrained=False, pretrained_base=False``),
given seeded realistic parameters (He-normal kernels, small biases, BatchNorm gamma and moving variance
~U(0.5, 1.5), moving mean ~N(0, 0.2), beta ~N(0, 0.1)) so outputs do not vanish, and written into the model's
report folder (atomically): a ``.keras`` file, or an MXNet ``-symbol.json`` + ``-0000.params`` checkpoint. It is
then converted like any file. GluonCV runs in the MXNet interpreter (a subprocess); mxnet is never imported here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from nnbridge.errors import NNBridgeError

logger = logging.getLogger(__name__)

BUILDERS = ("keras.applications", "gluoncv")
#: part of a built model's content hash: bump when the building or the parameter initialisation changes
BUILD_VERSION = 1


class BuilderUnavailable(NNBridgeError):
    """The runtime a builder needs (TensorFlow, the MXNet environment with gluoncv) is missing."""


def builder_of(source: str) -> tuple[str, str] | None:
    """``("gluoncv", "mobilenet1.0")`` for ``gluoncv:mobilenet1.0``; None for a file source."""
    kind, sep, name = source.partition(":")
    return (kind, name) if sep and kind in BUILDERS and name else None


def build(kind: str, name: str, options: dict[str, Any], folder: Path, mxnet_python: str | None) -> str:
    """Build the model into ``folder/built``; return the path to convert. ``options`` are the builder's
    keyword arguments plus ``seed`` (default 0) for the parameter values."""
    options = dict(options)
    seed = int(options.pop("seed", 0))
    out = folder / "built"
    out.mkdir(parents=True, exist_ok=True)
    if kind == "keras.applications":
        return _keras(name, options, seed, out)
    return _gluoncv(name, options, seed, out, mxnet_python)


def _keras(name: str, options: dict[str, Any], seed: int, out: Path) -> str:
    try:
        import keras
        import numpy as np
    except ImportError as exc:
        raise BuilderUnavailable(f"keras.applications:{name}: TensorFlow/Keras is not installed ({exc}); "
                                 "install tensorflow-cpu to build this model") from exc
    factory = getattr(keras.applications, name, None)
    if not callable(factory):
        raise NNBridgeError(f"keras.applications:{name}: no such model in keras.applications")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}
    kwargs["weights"] = None
    keras.utils.set_random_seed(seed)
    model = factory(**kwargs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for var in layer.weights:
            shape, path = tuple(var.shape), var.path.rsplit("/", 1)[-1]
            if "moving_variance" in path or path == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif "moving_mean" in path:
                value = rng.normal(0.0, 0.2, shape)
            elif len(shape) >= 2:
                fan_in = int(np.prod(shape[:-1])) if "depthwise" not in path else int(np.prod(shape[:2]))
                value = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
            values.append(value.astype(np.float32))
        if values:
            layer.set_weights(values)
    target = out / f"{name}.keras"
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        staged = Path(tmp) / target.name
        model.save(staged)
        os.replace(staged, target)
    return str(target)


_GLUON_SCRIPT = r'''
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
import mxnet as mx
from gluoncv import model_zoo

args = json.loads(sys.argv[1])
kwargs = dict(args["options"])
shape = tuple(kwargs.pop("input_shape", [1, 3, 224, 224]))
try:  # classification nets have no backbone and refuse pretrained_base; no pretrained file is ever loaded
    net = model_zoo.get_model(args["name"], pretrained=False, pretrained_base=False, **kwargs)
except TypeError as exc:
    if "pretrained_base" not in str(exc):
        raise
    net = model_zoo.get_model(args["name"], pretrained=False, **kwargs)
net.initialize()
net(mx.nd.zeros(shape))
rng = np.random.default_rng(args["seed"])
for pname, param in sorted(net.collect_params().items()):
    shp = param.shape
    if pname.endswith("running_var") or pname.endswith("gamma"):
        value = rng.uniform(0.5, 1.5, shp)
    elif pname.endswith("running_mean"):
        value = rng.normal(0.0, 0.2, shp)
    elif pname.endswith("weight") and len(shp) >= 2:
        value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shp[1:])), shp)
    else:
        value = rng.normal(0.0, 0.1, shp)
    param.set_data(mx.nd.array(value.astype(np.float32)))
net.hybridize()
net(mx.nd.zeros(shape))
net.export(args["prefix"], epoch=0)
'''


def _gluoncv(name: str, options: dict[str, Any], seed: int, out: Path, mxnet_python: str | None) -> str:
    if not mxnet_python:
        raise BuilderUnavailable(f"gluoncv:{name}: no MXNet environment; set NNBRIDGE_MXNET_PYTHON to a Python "
                                 "with mxnet==1.9.1 and gluoncv")
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        prefix = os.path.join(tmp, name)
        args = json.dumps({"name": name, "options": options, "seed": seed, "prefix": prefix})
        proc = subprocess.run([mxnet_python, "-c", _GLUON_SCRIPT, args], capture_output=True, text=True,
                              timeout=600, check=False)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-3:])
            if "No module named 'gluoncv'" in proc.stderr:
                raise BuilderUnavailable(f"gluoncv:{name}: gluoncv is not installed in {mxnet_python}")
            raise NNBridgeError(f"gluoncv:{name}: building failed in {mxnet_python}: {tail}")
        # params first, symbol last: a symbol file present means a complete checkpoint
        os.replace(prefix + "-0000.params", out / f"{name}-0000.params")
        os.replace(prefix + "-symbol.json", out / f"{name}-symbol.json")
    return str(out / f"{name}-symbol.json")
