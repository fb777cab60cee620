"""Old Caffe net definitions upgraded to today's V2 form, following Caffe's ``upgrade_proto.cpp``.

Steps, in Caffe's order (``UpgradeNetAsNeeded``), each applied only when needed:

1. **V0 -> V1** (a ``layers`` entry wraps a V0 ``layer``): first *padding layers are folded*: a V0
   ``"padding"`` layer is dropped and the conv/pool layer reading its top gets the padding layer's
   ``pad`` and reads the padding layer's bottom instead (only conv/pool may follow one; both layers must
   have one bottom and the padding layer one top). Then each V0 field moves to its V1 home by layer type
   (``num_output``/``biasterm``/fillers -> convolution/inner_product params, ``pad``/``kernelsize``/
   ``stride`` -> convolution/pooling, ``pool`` -> pooling, ``dropout_ratio`` -> dropout, LRN's
   ``local_size``/``alpha``/``beta``/``k``, data sources and batch sizes, ``concat_dim`` -> concat,
   window-data ``det_*``), and ``scale``/``meanfile``/``cropsize``/``mirror`` -> ``transform_param``.
2. **Data transformation**: V1 Data/ImageData/WindowData layers move ``scale``, ``mean_file``,
   ``crop_size``, ``mirror`` from their own param into ``transform_param``.
3. **V1 -> V2**: ``layers`` -> ``layer``; the enum type becomes its string name (``CONVOLUTION`` ->
   ``"Convolution"``, ``SOFTMAX_LOSS`` -> ``"SoftmaxWithLoss"``...); ``param`` names,
   ``blob_share_mode``, ``blobs_lr`` and ``weight_decay`` become ``ParamSpec`` name/share_mode/
   ``lr_mult``/``decay_mult``; every ``*_param`` is copied to the V2 field of the same name. When a net
   has both ``layers`` and ``layer``, Caffe ignores ``layer``.
4. **Input fields**: ``input`` with ``input_shape`` (one per input) or ``input_dim`` (four per input)
   become one ``Input`` layer named ``"input"``, placed first. ``input`` alone (old caffemodels) is dropped.
5. **BatchNorm**: a BatchNorm layer with three ParamSpecs gets ``lr_mult = decay_mult = 0`` on each.

Beyond Caffe (normalisation for the importer): ``concat_dim``/``slice_dim`` become ``axis``, which
Caffe's Concat/Slice layers treat identically (both set is an error, as in Caffe).
"""

from __future__ import annotations

import logging
from typing import Any

from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError

logger = logging.getLogger(__name__)

V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

V0_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION", "data": "DATA",
    "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS", "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT", "im2col": "IM2COL", "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS", "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT",
    "tanh": "TANH", "window_data": "WINDOW_DATA",
}

_CONV_IP = {"conv": "convolution_param", "innerproduct": "inner_product_param"}
_CONV_POOL = {"conv": "convolution_param", "pool": "pooling_param"}
_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param", "images": "image_data_param",
            "window_data": "window_data_param"}
#: V0 field -> (V1 field name inside the param, {V0 type: V1 param message}).
_V0_FIELDS: dict[str, tuple[str, dict[str, str]]] = {
    "num_output": ("num_output", _CONV_IP),
    "biasterm": ("bias_term", _CONV_IP),
    "weight_filler": ("weight_filler", _CONV_IP),
    "bias_filler": ("bias_filler", _CONV_IP),
    "pad": ("pad", _CONV_POOL),
    "kernelsize": ("kernel_size", _CONV_POOL),
    "stride": ("stride", _CONV_POOL),
    "group": ("group", {"conv": "convolution_param"}),
    "pool": ("pool", {"pool": "pooling_param"}),
    "dropout_ratio": ("dropout_ratio", {"dropout": "dropout_param"}),
    "local_size": ("local_size", {"lrn": "lrn_param"}),
    "alpha": ("alpha", {"lrn": "lrn_param"}),
    "beta": ("beta", {"lrn": "lrn_param"}),
    "k": ("k", {"lrn": "lrn_param"}),
    "source": ("source", {**_SOURCES, "infogain_loss": "infogain_loss_param"}),
    "batchsize": ("batch_size", _SOURCES),
    "rand_skip": ("rand_skip", {"data": "data_param", "images": "image_data_param"}),
    "shuffle_images": ("shuffle", {"images": "image_data_param"}),
    "new_height": ("new_height", {"images": "image_data_param"}),
    "new_width": ("new_width", {"images": "image_data_param"}),
    "concat_dim": ("concat_dim", {"concat": "concat_param"}),
    "det_fg_threshold": ("fg_threshold", {"window_data": "window_data_param"}),
    "det_bg_threshold": ("bg_threshold", {"window_data": "window_data_param"}),
    "det_fg_fraction": ("fg_fraction", {"window_data": "window_data_param"}),
    "det_context_pad": ("context_pad", {"window_data": "window_data_param"}),
    "det_crop_mode": ("crop_mode", {"window_data": "window_data_param"}),
    "hdf5_output_param": ("", {"hdf5_output": "hdf5_output_param"}),
}
_V0_TRANSFORM = {"scale": "scale", "meanfile": "mean_file", "cropsize": "crop_size", "mirror": "mirror"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def _assign(message: Any, name: str, value: Any) -> None:
    """Set a scalar/message field, or append when the field is repeated (e.g. convolution pad)."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        getattr(message, name).append(value)
    elif field.message_type is not None:
        getattr(message, name).CopyFrom(value)
    else:
        setattr(message, name, value)


def fold_padding_layers(net: caffe_pb2.NetParameter, source: str | None) -> None:
    """Caffe's UpgradeV0PaddingLayers, in place on ``net.layers``."""
    last_writer: dict[str, int] = dict.fromkeys(net.input, -1)
    original = list(net.layers)
    kept: list[Any] = []
    for i, connection in enumerate(original):
        v0 = connection.layer
        if v0.type != "padding":
            kept.append(type(connection)())
            kept[-1].CopyFrom(connection)
        for j, blob in enumerate(connection.bottom):
            if blob not in last_writer:
                raise FormatError(source, f"V0 layer {v0.name!r} reads unknown blob {blob!r}")
            writer = last_writer[blob]
            if writer == -1 or original[writer].layer.type != "padding":
                continue
            pad_layer = original[writer]
            if v0.type not in ("conv", "pool") or len(connection.bottom) != 1 or \
                    len(pad_layer.bottom) != 1 or len(pad_layer.top) != 1:
                raise FormatError(source, f"V0 padding layer {pad_layer.layer.name!r} feeds layer {v0.name!r} "
                                  f"({v0.type}); Caffe only folds padding into a single-input conv or pool")
            kept[-1].layer.pad = pad_layer.layer.pad
            kept[-1].bottom[j] = pad_layer.bottom[0]
        for blob in connection.top:
            last_writer[blob] = i
    del net.layers[:]
    net.layers.extend(kept)


def upgrade_v0_layer(connection: Any, source: str | None) -> Any:
    """One V1LayerParameter wrapping a V0 layer -> a plain V1LayerParameter (UpgradeV0LayerParameter)."""
    v1 = caffe_pb2.V1LayerParameter()
    v1.bottom.extend(connection.bottom)
    v1.top.extend(connection.top)
    v0 = connection.layer
    kind = v0.type
    if v0.HasField("name"):
        v1.name = v0.name
    if v0.HasField("type"):
        if kind not in V0_TYPES:
            raise FormatError(source, f"V0 layer {v0.name!r} has unknown type {kind!r}",
                              hint="known V0 types: " + ", ".join(sorted(V0_TYPES)))
        v1.type = caffe_pb2.V1LayerParameter.LayerType.Value(V0_TYPES[kind])
    v1.blobs.extend(v0.blobs)
    v1.blobs_lr.extend(v0.blobs_lr)
    v1.weight_decay.extend(v0.weight_decay)
    for field, value in v0.ListFields():
        if field.name in _V0_TRANSFORM:
            setattr(v1.transform_param, _V0_TRANSFORM[field.name], value)
        elif field.name in _V0_FIELDS:
            target, homes = _V0_FIELDS[field.name]
            if kind not in homes:
                logger.warning("%s: V0 layer %r: parameter %s is unknown for type %r; ignored as Caffe does",
                               source, v0.name, field.name, kind)
                continue
            param = getattr(v1, homes[kind])
            if target:
                _assign(param, target, value)
            else:
                param.CopyFrom(value)
    return v1


def upgrade_data_transformation(net: caffe_pb2.NetParameter) -> None:
    """Caffe's UpgradeNetDataTransformation on V1 layers."""
    homes = {"DATA": "data_param", "IMAGE_DATA": "image_data_param", "WINDOW_DATA": "window_data_param"}
    for layer in net.layers:
        name = caffe_pb2.V1LayerParameter.LayerType.Name(layer.type) if layer.HasField("type") else ""
        if name not in homes or not layer.HasField(homes[name]):
            continue
        param = getattr(layer, homes[name])
        for field in _TRANSFORM_FIELDS:
            if param.HasField(field):
                setattr(layer.transform_param, field, getattr(param, field))
                param.ClearField(field)


def upgrade_v1_layer(v1: Any, source: str | None) -> caffe_pb2.LayerParameter:
    """UpgradeV1LayerParameter: a V1LayerParameter -> a V2 LayerParameter."""
    layer = caffe_pb2.LayerParameter()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        enum_name = caffe_pb2.V1LayerParameter.LayerType.Name(v1.type)
        if enum_name not in V1_TYPE_NAMES:
            raise FormatError(source, f"V1 layer {v1.name!r} has type {enum_name}, which Caffe cannot upgrade")
        layer.type = V1_TYPE_NAMES[enum_name]
    layer.blobs.extend(v1.blobs)
    per_param = (("name", v1.param), ("share_mode", v1.blob_share_mode), ("lr_mult", v1.blobs_lr),
                 ("decay_mult", v1.weight_decay))
    for attr, values in per_param:
        for i, value in enumerate(values):
            while len(layer.param) <= i:
                layer.param.add()
            setattr(layer.param[i], attr, value)
    layer.loss_weight.extend(v1.loss_weight)
    v2_fields = layer.DESCRIPTOR.fields_by_name
    for field, value in v1.ListFields():
        if not field.name.endswith("_param") or field.message_type is None:
            continue
        if field.name not in v2_fields:
            raise FormatError(source, f"V1 layer {v1.name!r}: {field.name} has no V2 equivalent")
        target = getattr(layer, field.name)
        if target.DESCRIPTOR is value.DESCRIPTOR:
            target.CopyFrom(value)
        else:
            target.MergeFromString(value.SerializeToString())
    if v1.HasField("layer"):
        logger.warning("%s: V1 layer %r still holds a V0 layer; ignored as Caffe does", source, v1.name)
    return layer


def upgrade_inputs(net: caffe_pb2.NetParameter, source: str | None) -> None:
    """Caffe's UpgradeNetInput: input + input_shape/input_dim -> one Input layer placed first."""
    if net.input_shape or net.input_dim:
        n = len(net.input)
        if net.input_shape and len(net.input_shape) != n:
            raise FormatError(source, f"{n} inputs but {len(net.input_shape)} input_shape entries",
                              hint="give one input_shape per input")
        if not net.input_shape and len(net.input_dim) != 4 * n:
            raise FormatError(source, f"{n} inputs but {len(net.input_dim)} input_dim values",
                              hint="input_dim needs exactly four numbers (N, C, H, W) per input")
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if net.input_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        layers = [layer, *net.layer]
        del net.layer[:]
        net.layer.extend(layers)
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def upgrade_batch_norm(net: caffe_pb2.NetParameter) -> None:
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


def normalise_axes(net: caffe_pb2.NetParameter, source: str | None) -> None:
    """``concat_dim`` -> ``concat_param.axis``, ``slice_dim`` -> ``slice_param.axis``."""
    for layer in net.layer:
        for param_name, old in (("concat_param", "concat_dim"), ("slice_param", "slice_dim")):
            if not layer.HasField(param_name):
                continue
            param = getattr(layer, param_name)
            if param.HasField(old):
                if param.HasField("axis"):
                    raise FormatError(source, f"layer {layer.name!r} sets both axis and {old}",
                                      hint="Caffe accepts only one of them")
                param.axis = getattr(param, old)
                param.ClearField(old)


def upgrade_net(net: caffe_pb2.NetParameter, source: str | None = None) -> caffe_pb2.NetParameter:
    """Upgrade ``net`` in place to V2 with inputs as an Input layer (Caffe's UpgradeNetAsNeeded)."""
    if any(layer.HasField("layer") for layer in net.layers):
        logger.info("%s: upgrading V0 layers", source)
        fold_padding_layers(net, source)
        upgraded = [upgrade_v0_layer(layer, source) for layer in net.layers]
        del net.layers[:]
        net.layers.extend(upgraded)
    upgrade_data_transformation(net)
    if len(net.layers):
        logger.info("%s: upgrading V1 layers", source)
        if len(net.layer):
            logger.warning("%s: the net has both V1 'layers' and V2 'layer' entries; Caffe ignores the "
                           "'layer' ones", source)
        upgraded_v2 = [upgrade_v1_layer(layer, source) for layer in net.layers]
        net.ClearField("layers")
        net.ClearField("layer")
        net.layer.extend(upgraded_v2)
    upgrade_inputs(net, source)
    upgrade_batch_norm(net)
    normalise_axes(net, source)
    return net
