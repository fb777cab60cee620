"""MXNet -> hub importers, op by op, against real MXNet 1.9.1.

Each case builds a small symbol in MXNet (through :mod:`support.mxnet_env`), gives it realistic random
parameters (He-normal weights, small biases, BatchNorm gamma/var in [0.5, 1.5]), runs it with every internal
output (``get_internals()``), and returns the symbol JSON, parameters, inputs and outputs. Here the JSON is read
with nnbridge's own reader, imported, run in onnxruntime, and every MXNet output is compared by name
(``conv_output`` -> ``conv``, ``split_output1`` -> ``split:1``) with max relative error <= 1e-4.
All cases run in one MXNet subprocess.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from nnbridge.mxnet.formats.symbol import parse_symbol_json
from nnbridge.mxnet.importer import hub_name, import_mxnet
from nnbridge.verify.compare import compare
from nnbridge.verify.runtimes.onnxruntime_rt import run
from support.mxnet_env import run_mxnet

X = {"data": (2, 4, 7, 7)}  # the default input
# (id, code that sets `out` from `data` (mx.sym.var) and `S` (= mx.sym), input shapes or None for X)
CASES: list[tuple[str, str, dict[str, tuple[int, ...]] | None]] = [
    ("conv", "out = S.Convolution(data, kernel=(3, 3), num_filter=6, name='conv')", None),
    ("conv_group_dilate", "out = S.Convolution(data, kernel=(3, 3), num_filter=8, num_group=2, dilate=(2, 1), "
                          "pad=(2, 1), stride=(2, 1), no_bias=True, name='conv')", None),
    ("conv1d", "out = S.Convolution(data, kernel=(3,), num_filter=5, pad=(1,), stride=(2,), name='conv')",
     {"data": (2, 3, 9)}),
    ("deconv", "out = S.Deconvolution(data, kernel=(4, 4), stride=(2, 2), pad=(1, 1), num_filter=3, name='deconv')",
     None),
    ("deconv_adj_bias", "out = S.Deconvolution(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1), "
                        "num_filter=4, num_group=2, no_bias=False, name='deconv')", None),
    ("deconv_target", "out = S.Deconvolution(data, kernel=(3, 3), stride=(2, 2), target_shape=(13, 13), dilate=(1, 1), "
                      "num_filter=2, name='deconv')", None),
    ("fc", "out = S.FullyConnected(data, num_hidden=10, name='fc')", None),
    ("fc_noflat_3d", "out = S.FullyConnected(data, num_hidden=6, flatten=False, name='fc')", {"data": (2, 5, 8)}),
    ("fc_noflat_4d", "out = S.FullyConnected(data, num_hidden=3, flatten=False, no_bias=True, name='fc')", None),
    ("bn_fix_gamma", "out = S.BatchNorm(data, name='bn')", None),
    ("bn_gamma_eps", "out = S.BatchNorm(data, fix_gamma=False, eps=1e-5, name='bn')", None),
    ("bn_axis", "out = S.BatchNorm(data, fix_gamma=False, axis=-1, use_global_stats=True, name='bn')", None),
    ("activations", "a = S.Activation(data, act_type='relu', name='relu'); "
                    "b = S.Activation(a - 0.5, act_type='sigmoid', name='sig'); "
                    "c = S.Activation(data, act_type='tanh', name='tanh'); "
                    "d = S.Activation(data * 8, act_type='softrelu', name='softrelu'); "
                    "e = S.Activation(data, act_type='softsign', name='softsign'); "
                    "out = S.Group([b, c, d, e])", None),
    ("leaky", "out = S.Group([S.LeakyReLU(data, name='leaky'), S.LeakyReLU(data, act_type='elu', slope=0.7, "
              "name='elu'), S.LeakyReLU(data, act_type='selu', name='selu'), S.LeakyReLU(data, act_type='gelu', "
              "name='gelu'), S.LeakyReLU(data, act_type='rrelu', name='rrelu')[0]])", None),
    ("prelu", "out = S.LeakyReLU(data, act_type='prelu', name='prelu')", None),
    ("hard_sigmoid_clip", "out = S.Group([S.hard_sigmoid(data, alpha=0.3, beta=0.4, name='hs'), "
                          "S.clip(data, a_min=-0.5, a_max=0.7, name='clip')])", None),
    ("pool_valid", "out = S.Pooling(data, kernel=(3, 3), stride=(2, 2), name='pool')", None),
    ("pool_full_pad", "out = S.Group([S.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), "
                      "pooling_convention='full', pool_type=t, name='pool_' + t) for t in ('max', 'avg', 'sum')])",
     {"data": (1, 3, 8, 8)}),
    ("pool_full_h5", "out = S.Group([S.Pooling(data, kernel=(2, 2), stride=(2, 2), pad=(1, 1), "
                     "pooling_convention='full', pool_type=t, count_include_pad=c, name='p_%s_%d' % (t, c)) "
                     "for t in ('max', 'avg', 'sum') for c in (0, 1)])", {"data": (1, 2, 5, 5)}),
    ("pool_avg_exclude", "out = S.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg', "
                         "count_include_pad=False, name='pool')", None),
    ("pool_global", "out = S.Group([S.Pooling(data, kernel=(1, 1), global_pool=True, pool_type=t, name='g' + t) "
                    "for t in ('max', 'avg', 'sum')])", None),
    ("pool_1d", "out = S.Pooling(data, kernel=(3,), stride=(2,), pad=(1,), pool_type='avg', "
                "pooling_convention='full', name='pool')", {"data": (2, 3, 10)}),
    ("flatten_reshape", "f = S.Flatten(data, name='flat'); "
                        "r1 = S.Reshape(data, shape=(0, -1), name='r1'); "
                        "r2 = S.Reshape(data, shape=(-3, -2), name='r2'); "
                        "r3 = S.Reshape(data, shape=(0, -4, 2, -1, -2), name='r3'); "
                        "r4 = S.Reshape(data, shape=(-1, 0), reverse=True, name='r4'); "
                        "r5 = S.Reshape(data, shape=(2, 0, 0, -1), name='r5'); "
                        "out = S.Group([f, r1, r2, r3, r4, r5])", None),
    ("transpose_concat", "t = S.transpose(data, axes=(0, 2, 3, 1), name='t'); "
                         "t2 = S.transpose(data, name='t2'); "
                         "c = S.Concat(data, data * 2, dim=1, name='cat'); "
                         "c2 = S.Concat(data, data, dim=-1, name='cat2'); "
                         "out = S.Group([t, t2, c, c2])", None),
    ("split", "s = S.SliceChannel(data, num_outputs=2, name='split'); "
              "q = S.split(data, num_outputs=4, axis=1, squeeze_axis=True, name='sq'); "
              "out = S.Group([s[0] + s[1], q[3]])", None),
    ("slices", "a = S.slice_axis(data, axis=2, begin=1, end=-1, name='sa'); "
               "b = S.slice_axis(data, axis=-1, begin=2, end=None, name='sb'); "
               "c = S.slice(data, begin=(None, 1, 2), end=(None, 3, None), name='sc'); "
               "d = S.slice(data, begin=(None, None, 5), end=(None, None, 1), step=(1, 1, -2), name='sd'); "
               "e = S.slice(data, begin=(1, None, None, None), end=(2, None, None, None), "
               "step=(1, -1, 1, 3), name='se'); "
               "out = S.Group([a, b, c, d, e])", None),
    ("elemwise", "w = S.var('w', shape=(2, 4, 7, 7)); "
                 "out = S.Group([S.elemwise_add(data, w, name='add'), S.elemwise_sub(data, w, name='sub'), "
                 "S.elemwise_mul(data, w, name='mul'), S.elemwise_div(data, w + 3, name='div'), "
                 "S.maximum(data, w), S.add_n(data, w, data, name='addn')])", None),
    ("broadcast_se", "pooled = S.Pooling(data, kernel=(1, 1), global_pool=True, pool_type='avg', name='gap'); "
                     "gate = S.Activation(S.FullyConnected(pooled, num_hidden=4, name='fc'), act_type='sigmoid', "
                     "name='gate'); "
                     "g = S.Reshape(gate, shape=(0, 0, 1, 1), name='gview'); "
                     "out = S.Group([S.broadcast_mul(data, g, name='se'), S.broadcast_add(data, g, name='badd'), "
                     "S.broadcast_sub(g, data, name='bsub'), S.broadcast_div(data, g + 1, name='bdiv'), "
                     "S.broadcast_maximum(data, g, name='bmax'), S.broadcast_minimum(data, g, name='bmin'), "
                     "S.broadcast_greater(data, g, name='bgt'), S.broadcast_equal(data, data, name='beq')])", None),
    ("scalar", "out = S.Group([data + 1.5, data - 0.5, 2.0 - data, data * 3, data / 4, 2 / (S.abs(data) + 1), "
               "S.abs(data) ** 1.5, 2 ** data, S.maximum(data, 0.2), S.minimum(data, -0.1), data > 0.3])", None),
    ("softmax", "out = S.Group([S.softmax(data, name='sm'), S.softmax(data, axis=1, name='sm1'), "
                "S.softmax(data, axis=2, temperature=2.5, name='smt'), S.log_softmax(data, axis=1, name='lsm'), "
                "S.SoftmaxActivation(data, name='sai'), S.SoftmaxActivation(data, mode='channel', name='sac')])",
     None),
    ("softmax_output", "out = S.Group([S.SoftmaxOutput(data, name='so'), "
                       "S.SoftmaxOutput(data, multi_output=True, name='som'), "
                       "S.SoftmaxOutput(data, preserve_shape=True, name='sop')])", None),
    ("dropout_misc", "d = S.Dropout(data, p=0.3, name='drop'); b = S.BlockGrad(d, name='bg'); "
                     "i = S.identity(b, name='ident'); c = S.Cast(i, dtype='float16', name='c16'); "
                     "out = S.Group([S.Cast(c, dtype='float32', name='c32'), S.zeros_like(data, name='z'), "
                     "S.ones_like(data, name='o')])", None),
    ("l2norm", "out = S.Group([S.L2Normalization(data, name='l2i'), "
               "S.L2Normalization(data, mode='channel', name='l2c'), "
               "S.L2Normalization(data, mode='spatial', eps=1e-3, name='l2s')])", None),
    ("lrn_instnorm", "out = S.Group([S.LRN(data, nsize=3, alpha=1e-2, name='lrn'), "
                     "S.InstanceNorm(data, eps=1e-4, name='inorm')])", None),
    ("upsampling", "out = S.Group([S.UpSampling(data, scale=2, sample_type='nearest', name='up'), "
                   "S.UpSampling(data, scale=3, sample_type='bilinear', num_filter=4, name='bil')])", None),
    ("bilinear_resize", "out = S.Group([S.contrib.BilinearResize2D(data, height=11, width=5, name='rs'), "
                        "S.contrib.BilinearResize2D(data, height=12, width=14, align_corners=False, name='rs2')])",
     None),
    ("crop", "big = S.Pooling(data, kernel=(2, 2), stride=(1, 1), name='small'); "
             "out = S.Group([S.Crop(data, offset=(1, 2), h_w=(4, 3), num_args=1, name='c1'), "
             "S.Crop(data, big, num_args=2, center_crop=True, name='c2'), "
             "S.Crop(data, big, num_args=2, offset=(1, 0), name='c3')])", None),
    ("pad", "out = S.Group([S.Pad(data, mode=m, pad_width=(0, 0, 0, 0, 1, 2, 2, 1), constant_value=0.5, name=m) "
            "for m in ('constant', 'edge', 'reflect')])", None),
    ("reduce", "out = S.Group([S.mean(data, axis=(2, 3), keepdims=True, name='m'), S.sum(data, axis=1, name='s'), "
               "S.sum(data, axis=1, exclude=True, name='sx'), S.mean(data, name='mall'), "
               "S.max(data, axis=-1, name='mx')])", None),
    ("dims", "e = S.expand_dims(data, axis=-1, name='ed'); "
             "out = S.Group([S.squeeze(e, axis=-1, name='sq'), S.squeeze(S.slice_axis(data, axis=2, begin=0, "
             "end=1), name='sqall')])", None),
    ("embedding", "out = S.Embedding(data, input_dim=10, output_dim=5, name='emb')", {"data": (3, 4)}),
    ("multibox_prior", "out = S.Group([S.contrib.MultiBoxPrior(data, sizes=(0.5, 0.25), ratios=(1, 2, 0.5), "
                       "name='p1'), S.contrib.MultiBoxPrior(data, sizes=(0.7,), ratios=(2, 1, 3), clip=True, "
                       "steps=(0.1, 0.15), offsets=(0.3, 0.6), name='p2')])", None),
]

# MultiBoxDetection: softmax-ed scores, small box offsets, anchors from MultiBoxPrior.
_DET = ("anchors = S.contrib.MultiBoxPrior(feat, sizes=(0.4, 0.2), ratios=(1, 2, 0.5), name='anchors'); "
        "cls = S.softmax(S.Reshape(S.Convolution(feat, kernel=(1, 1), num_filter=4 * 4, name='cls_conv'), "
        "shape=(0, 4, -1)), axis=1, name='cls_prob'); "
        "loc = S.Flatten(S.transpose(S.Convolution(feat, kernel=(1, 1), num_filter=4 * 4, name='loc_conv'), "
        "axes=(0, 2, 3, 1)), name='loc') * 0.3; ")
for _i, _kw in enumerate(["", "threshold=0.2, nms_threshold=0.3", "force_suppress=True, nms_topk=20, clip=False",
                          "variances=(0.2, 0.2, 0.1, 0.1), nms_threshold=0.7, threshold=0.3"]):
    CASES.append((f"multibox_detection{_i}", _DET.replace("feat", "data") +
                  f"out = S.contrib.MultiBoxDetection(cls, loc, anchors, {_kw}{', ' if _kw else ''}name='det')",
                  {"data": (2, 8, 5, 5)}))

_SCRIPT = r'''
S = mx.sym
rng = np.random.RandomState(0)
cases = {}
def build(case_id, code, shapes):
    data = S.var("data")
    scope = {"S": S, "data": data, "mx": mx, "np": np}
    exec(code, scope)
    sym = scope["out"]
    internals = sym.get_internals()
    arg_shapes, _, aux_shapes = internals.infer_shape(**shapes)
    params, feeds, label = {}, {}, {}
    for name, shape in zip(internals.list_arguments(), arg_shapes):
        if name in shapes:
            if case_id == "embedding":
                feeds[name] = rng.randint(0, 10, size=shape).astype(np.float32)
            else:
                feeds[name] = rng.randn(*shape).astype(np.float32)
        elif name.endswith("_label"):
            label[name] = np.zeros(shape, np.float32)
        elif name.endswith("_weight") and "bil" in name:
            weight = mx.nd.zeros(shape)
            mx.init.Bilinear()._init_weight(name, weight)
            params[name] = weight.asnumpy()
        elif name.endswith("_weight"):
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            params[name] = (rng.randn(*shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif name.endswith("_gamma") and "prelu" in name:
            params[name] = rng.uniform(0.1, 0.4, size=shape).astype(np.float32)
        elif name.endswith("_gamma"):
            params[name] = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        else:  # biases, betas, extra operands
            params[name] = (rng.randn(*shape) * (0.1 if name.endswith(("_bias", "_beta")) else 1.0)).astype(np.float32)
    for name, shape in zip(internals.list_auxiliary_states(), aux_shapes):
        if name.endswith("_var"):
            params[name] = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        else:
            params[name] = (rng.randn(*shape) * 0.1).astype(np.float32)
    values = {**feeds, **label, **params}
    outputs = {}
    # one executor per internal output: with every internal bound at once, MXNet may hand back a buffer that an
    # in-place consumer has already overwritten (seen: an Activation read before its sigmoid was applied)
    for index, name in enumerate(internals.list_outputs()):
        if "_output" not in name:
            continue
        head = internals[index]
        exe = head.bind(mx.cpu(), args={k: mx.nd.array(values[k]) for k in head.list_arguments()},
                        aux_states={k: mx.nd.array(values[k]) for k in head.list_auxiliary_states()},
                        grad_req="null")
        outputs[name] = exe.forward(is_train=False)[0].asnumpy()
    return {
        "json": sym.tojson(), "params": params, "inputs": feeds,
        "outputs": outputs,
    }

for case_id, code, shapes in args["cases"]:
    try:
        cases[case_id] = build(case_id, code, {k: tuple(v) for k, v in shapes.items()})
    except Exception as exc:  # reported by the test of this case
        cases[case_id] = {"error": repr(exc)[-3000:]}
result["cases"] = cases
'''


@functools.lru_cache(maxsize=1)
def _mxnet_results() -> dict[str, Any]:
    cases = [(cid, code, shapes or X) for cid, code, shapes in CASES]
    return run_mxnet(_SCRIPT, cases=cases, timeout=600)["cases"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_op_matches_mxnet(case_id: str) -> None:
    case = _mxnet_results()[case_id]
    if "dilated deconvolution" in case.get("error", ""):
        pytest.skip("MXNet 1.9.1's oneDNN kernel cannot run a Deconvolution with target_shape (no reference)")
    assert "error" not in case, f"MXNet could not run the case: {case.get('error')}"
    graph = parse_symbol_json(case["json"])
    shapes = {name: tuple(a.shape) for name, a in case["inputs"].items()}
    model = import_mxnet(graph, case["params"], shapes, source=case_id)
    got = run(model, case["inputs"])
    reference = {hub_name(name): array for name, array in case["outputs"].items()}
    result = compare(reference, got, outputs=list(reference), rtol=1e-4)
    assert result.passed, f"{case_id}:\n{result.table()}"
