"""The ``nnbridge`` command line: convert, verify, inspect, ops, mean, example.

Errors nnbridge raises on purpose (:class:`~nnbridge.errors.NNBridgeError`) are printed as one line,
``nnbridge: error: <message>``, with exit status 1; usage errors exit with 2 (argparse). ``--debug`` shows
the traceback instead; ``-v``/``-vv`` turn on INFO/DEBUG logging.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnbridge import __version__
from nnbridge.cli_data import add_data_parser
from nnbridge.cli_zoo import add_zoo_parser
from nnbridge.errors import ConversionError, NNBridgeError

logger = logging.getLogger("nnbridge")

_DIALECTS = ("bvlc", "bvlc-master", "ssd", "opencv")


def parse_input_shapes(items: Sequence[str] | None) -> dict[str, list[int]] | None:
    """``["data=1,3,224,224", ...]`` -> ``{"data": [1, 3, 224, 224]}``."""
    if not items:
        return None
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            values = [int(d) for d in dims.split(",") if d.strip()]
        except ValueError:
            values = []
        if not sep or not name or not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"--input-shape {item!r}: expected NAME=D,D,... with positive ints")
        shapes[name] = values
    return shapes


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnbridge", description="Convert trained networks between Caffe, ONNX, MXNet and TensorFlow/Keras "
        "exactly, and prove it.")
    parser.add_argument("--version", action="version", version=f"nnbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: INFO logging, -vv: DEBUG")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert a model (.prototxt + .caffemodel <-> .onnx <-> MXNet)")
    p.add_argument("source", help="source model: .prototxt (with --weights), .onnx, MXNet prefix-symbol.json "
                   "(or a checkpoint prefix), or TensorFlow: a SavedModel directory, .pb, .keras, .h5, .tflite, "
                   "a TF1 checkpoint (.meta or its prefix)")
    p.add_argument("-o", "--output", required=True,
                   help="output: .onnx, .prototxt (+ .caffemodel beside it), or an MXNet prefix with --to mxnet "
                   "(writes prefix-symbol.json + prefix-0000.params)")
    p.add_argument("--weights", help="the .caffemodel of a .prototxt source, the .params of an MXNet source "
                   "(default: the highest epoch beside the symbol)")
    p.add_argument("--random-weights", type=int, metavar="SEED",
                   help="convert a weightless .prototxt with seeded random weights")
    p.add_argument("--to", choices=("onnx", "caffe", "mxnet"), help="output format (default: from the extension)")
    p.add_argument("--swap-input-channels", action="store_true",
                   help="the converted model takes the image input's colour channels reversed (RGB <-> BGR): "
                   "the weights of the convolutions reading it are permuted")
    p.add_argument("--caffe-dialect", default="bvlc", choices=_DIALECTS, help="Caffe flavour to write")
    p.add_argument("--input-shape", action="append", metavar="NAME=D,D,..",
                   help="fix an input's shape (TensorFlow sources: NHWC, as TensorFlow sees it)")
    p.add_argument("--verify", action="store_true", help="run both models and compare every blob")
    _tensorflow_options(p)
    p.add_argument("--no-optimize", action="store_true", help="do not fold constants of ONNX sources")
    _runtime_option(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("verify", help="run a model and its conversion on one input, compare every blob")
    p.add_argument("source")
    p.add_argument("converted")
    p.add_argument("--weights", help="the .caffemodel of a .prototxt source, the .params of an MXNet source")
    p.add_argument("--converted-weights", help="the .caffemodel/.params of the conversion (default: beside it)")
    p.add_argument("--input-shape", action="append", metavar="NAME=D,D,..")
    p.add_argument("--image", help="feed this image (resized to the input) instead of random data")
    p.add_argument("--mean", help="per-channel mean subtracted from the image (e.g. 104,117,123, in the "
                   "network's channel order) or a mean file (.npy/.binaryproto)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the image by this after the mean")
    p.add_argument("--raw-scale", type=float, default=255.0, help="pixel range before the mean (default 255)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input when no --image is given")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--bgr", dest="bgr", action="store_true", default=True, help="channels BGR (default)")
    order.add_argument("--rgb", dest="bgr", action="store_false", help="channels RGB")
    p.add_argument("--rtol", type=float, default=1e-4, help="max relative error per blob (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute error that always passes")
    _runtime_option(p)
    _tensorflow_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="layers/nodes, shapes, parameter counts, unsupported layers")
    p.add_argument("model")
    p.add_argument("--weights")
    p.add_argument("--input-shape", action="append", metavar="NAME=D,D,..")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("ops", help="list the supported layers and ops of each direction")
    p.add_argument("--format", choices=("md", "text"), default="text")
    p.set_defaults(func=cmd_ops)

    p = sub.add_parser("mean", help="convert a mean file: .binaryproto, .npy, .nd (MXNet)")
    p.add_argument("input", help="IN.binaryproto, IN.npy or IN.nd")
    p.add_argument("-o", "--output", required=True, help="OUT.npy, OUT.binaryproto or OUT.nd")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--bgr", dest="rgb", action="store_false", default=False,
                       help="keep the channel order (default; Caffe means are BGR)")
    order.add_argument("--rgb", dest="rgb", action="store_true",
                       help="reverse the channel order (BGR <-> RGB), as MXNet's caffe_converter convert_mean.py "
                       "always did; use it for a model converted with --swap-input-channels")
    p.set_defaults(func=cmd_mean)

    p = sub.add_parser("example", help="write the built-in example net, convert it both ways, verify")
    p.add_argument("-o", "--outdir", default="nnbridge-example", help="directory to write (default ./nnbridge-example)")
    p.set_defaults(func=cmd_example)
    add_data_parser(sub)
    add_zoo_parser(sub)
    return parser


def _runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", action="append", metavar="NAME[=PYTHON]",
                        help="interpreter of a runtime, e.g. mxnet=/venv-mx/bin/python (default: "
                        "$NNBRIDGE_MXNET_PYTHON, or this Python when it imports mxnet); repeatable")


def _tensorflow_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TensorFlow sources")
    group.add_argument("--allow-lambda", action="store_true",
                       help="run the Python code of Keras Lambda layers (only for models you trust)")
    group.add_argument("--outputs", metavar="NAME[,NAME..]",
                       help="output nodes of a frozen .pb or TF1 checkpoint (default: the nodes nobody consumes)")
    group.add_argument("--signature", metavar="NAME", help="SavedModel signature (default: serving_default)")


def _tf_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The TensorFlow options given on the command line, as :func:`nnbridge.convert` keyword arguments."""
    outputs = [o for o in (args.outputs or "").split(",") if o] or None
    return {"allow_lambda": args.allow_lambda, "outputs": outputs, "signature": args.signature}


def _runtimes(items: Sequence[str] | None) -> tuple[str, ...] | None:
    """``--runtime`` values as :func:`nnbridge.verify` ``runtimes``: interpreters only (``name=python``)."""
    if not items:
        return None
    bad = [item for item in items if "=" not in item]
    if bad:
        raise argparse.ArgumentTypeError(f"--runtime {bad[0]!r}: expected NAME=PYTHON, e.g. mxnet=/venv/bin/python")
    return tuple(items)


# -- commands --------------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    from nnbridge.api import convert

    result = convert(
        args.source, args.output, weights=args.weights, to=args.to, dialect=args.caffe_dialect,
        input_shapes=parse_input_shapes(args.input_shape), verify=args.verify,
        optimize=not args.no_optimize, random_weights=args.random_weights,
        swap_input_channels=args.swap_input_channels, runtimes=_runtimes(args.runtime),
        **_tf_kwargs(args),  # type: ignore[arg-type]
    )
    written = result.output + (f" + {result.output_weights}" if result.output_weights else "")
    print(f"{result.source} ({result.source_format}) -> {written} ({result.target_format}) "
          f"in {result.seconds:.2f} s")
    for note in result.notes:
        print(f"  note: {note}")
    if result.verification is not None:
        print(_report_text(result.verification))
        if not result.passed:
            raise ConversionError(f"verification failed; the converted model {written} differs (see the table)")
    return 0


def _report_text(report: object) -> str:
    for method in ("render", "summary", "table"):
        func = getattr(report, method, None)
        if callable(func):
            return str(func())
    return str(report)


def cmd_verify(args: argparse.Namespace) -> int:
    from nnbridge.verify.api import verify
    from nnbridge.verify.inputs import Preprocess

    preprocess = None
    if args.image:
        mean: tuple[float, ...] | None = None
        mean_file = None
        if args.mean and Path(args.mean).suffix.lower() in (".npy", ".binaryproto"):
            mean_file = args.mean
        elif args.mean:
            mean = tuple(_floats(args.mean))
        preprocess = Preprocess(channel_order="BGR" if args.bgr else "RGB", mean=mean, mean_file=mean_file,
                                raw_scale=args.raw_scale, scale=args.scale)
    elif args.mean:
        raise argparse.ArgumentTypeError("--mean only applies with --image")
    report = verify(
        args.source, args.converted, source_weights=args.weights, converted_weights=args.converted_weights,
        input_shapes=parse_input_shapes(args.input_shape), image=args.image, preprocess=preprocess,
        seed=args.seed, rtol=args.rtol, atol=args.atol, runtimes=_runtimes(args.runtime),
        **_tf_kwargs(args),  # type: ignore[arg-type]
    )
    print(_report_text(report))
    if not getattr(report, "passed", True):
        raise ConversionError(f"verification failed: {args.converted} does not reproduce {args.source}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from nnbridge.summary import summarize

    summary = summarize(args.model, weights=args.weights, input_shapes=parse_input_shapes(args.input_shape))
    print(summary.text())
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from nnbridge.opstable import ops_markdown, ops_text

    print(ops_markdown() if args.format == "md" else ops_text(), end="")
    return 0


def cmd_mean(args: argparse.Namespace) -> int:
    """Mean files: ``.binaryproto`` (Caffe BlobProto), ``.npy``, ``.nd`` (MXNet, ``{"mean_image": C x H x W}``).

    Caffe means are BGR; ``--rgb`` reverses the channel axis of a 3-D (C x H x W) or 4-D (N x C x H x W) mean.
    """
    from nnbridge.errors import FormatError

    src, out = Path(args.input), Path(args.output)
    if not src.is_file():
        raise FormatError(str(src), "no such file")
    kinds = {".npy": "npy", ".binaryproto": "binaryproto", ".nd": "nd"}
    for path in (src, out):
        if path.suffix.lower() not in kinds:
            raise FormatError(str(path), "a mean file must be .binaryproto, .npy or .nd")
    array = _read_mean(src, kinds[src.suffix.lower()])
    if args.rgb:
        if array.ndim < 3 or array.shape[-3] != 3:
            raise FormatError(str(src), f"--rgb needs a 3-channel C x H x W mean, not shape {array.shape}")
        array = np.ascontiguousarray(array[..., ::-1, :, :])
    _write_mean(out, kinds[out.suffix.lower()], array)
    order = " (channels reversed)" if args.rgb else ""
    print(f"{src} -> {out}{order}: shape {'x'.join(str(d) for d in array.shape)}, mean {float(np.mean(array)):.4f}")
    return 0


def _read_mean(path: Path, kind: str) -> np.ndarray:
    from nnbridge.errors import FormatError

    if kind == "npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
        except ValueError as exc:
            raise FormatError(str(path), f"not a .npy array: {exc}") from exc
    if kind == "nd":
        from nnbridge.mxnet.formats.checkpoint import load_mean

        return np.asarray(load_mean(path), dtype=np.float32)
    from nnbridge.caffe.formats.binaryproto import read_binaryproto

    return np.asarray(read_binaryproto(path), dtype=np.float32)


def _write_mean(path: Path, kind: str, array: np.ndarray) -> None:
    from nnbridge.fileio import atomic_write

    if kind == "npy":
        with atomic_write(path) as handle:
            np.save(handle, array)
    elif kind == "nd":
        from nnbridge.mxnet.formats.checkpoint import save_mean

        save_mean(path, array.reshape(array.shape[-3:]) if array.ndim == 4 and array.shape[0] == 1 else array)
    else:
        from nnbridge.caffe.formats.binaryproto import write_binaryproto

        write_binaryproto(path, array)


def cmd_example(args: argparse.Namespace) -> int:
    from nnbridge.examples import run_example

    result = run_example(args.outdir)
    if not result.passed:
        raise ConversionError(f"the example's verification failed (files in {args.outdir})")
    return 0


# -- entry point -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except argparse.ArgumentTypeError as exc:  # raised by type= converters called outside argparse
        parser.error(str(exc))
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except argparse.ArgumentTypeError as exc:
        if args.debug:
            raise
        print(f"nnbridge: error: {exc}", file=sys.stderr)
        return 2
    except NNBridgeError as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"nnbridge: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnbridge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
