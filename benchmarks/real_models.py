"""Largest per-blob error on the real models: Caffe -> ONNX -> Caffe, each step verified in real runtimes.

For every model in ../shared/models (MTCNN with its trained weights; the classic prototxts with seeded random
weights of realistic statistics), this converts Caffe -> ONNX and ONNX -> Caffe with ``nnbridge.convert``,
verifies each result against the original in the real runtimes with ``nnbridge.verify`` (pycaffe, or OpenCV
when pycaffe is absent; onnxruntime), and prints the worst blob of each step.

    python benchmarks/real_models.py [--shared ../shared/models] [--out /tmp/nnbridge-real-models]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "mtcnn det1": ("caffe/mtcnn/det1.prototxt", "caffe/mtcnn/det1.caffemodel", "bvlc"),
    "mtcnn det2": ("caffe/mtcnn/det2.prototxt", "caffe/mtcnn/det2.caffemodel", "bvlc"),
    "mtcnn det3": ("caffe/mtcnn/det3.prototxt", "caffe/mtcnn/det3.caffemodel", "bvlc"),
    "mtcnn det4": ("caffe/mtcnn/det4.prototxt", "caffe/mtcnn/det4.caffemodel", "bvlc"),
    "alexnet": ("caffe/prototxt/bvlc_alexnet.prototxt", None, "bvlc"),
    "caffenet": ("caffe/prototxt/bvlc_reference_caffenet.prototxt", None, "bvlc"),
    "googlenet": ("caffe/prototxt/bvlc_googlenet.prototxt", None, "bvlc"),
    "squeezenet 1.0": ("caffe/prototxt/squeezenet_v1.0.prototxt", None, "bvlc"),
    "squeezenet 1.1": ("caffe/prototxt/squeezenet_v1.1.prototxt", None, "bvlc"),
    "mobilenet v1": ("caffe/prototxt/mobilenet_v1.prototxt", None, "bvlc"),
    "mobilenet v2": ("caffe/prototxt/mobilenet_v2.prototxt", None, "bvlc"),
    "resnet-50": ("caffe/prototxt/resnet50.prototxt", None, "bvlc"),
    "mobilenet-ssd": ("caffe/prototxt/mobilenet_ssd_voc.prototxt", None, "ssd"),
}


def random_caffemodel(prototxt: Path, out: Path, seed: int) -> Path:
    """Seeded random weights of realistic statistics for a weightless prototxt, written as a caffemodel."""
    from nnbridge.caffe.formats.caffemodel import write_caffemodel
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights

    loaded = load_caffe(prototxt)
    weights = RandomWeights(seed)
    import_layers(list(loaded.net.layer), loaded.inputs, weights, source=str(prototxt))
    path = out / f"{prototxt.stem}.caffemodel"
    write_caffemodel(path, loaded.net, weights.served)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", nargs="*", help="model names to run")
    args = parser.parse_args()
    if not args.shared.is_dir():
        print(f"no real models at {args.shared}", file=sys.stderr)
        return 2
    import nnbridge

    out = args.out or Path(tempfile.mkdtemp(prefix="nnbridge-real-models-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = [("model", "step", "runtimes", "blobs", "worst blob", "max abs err", "max rel err", "result")]
    failed = False
    for name, (proto_rel, weights_rel, dialect) in MODELS.items():
        if args.only and name not in args.only:
            continue
        prototxt = args.shared / proto_rel
        work = out / name.replace(" ", "_")
        work.mkdir(exist_ok=True)
        weights = args.shared / weights_rel if weights_rel else random_caffemodel(prototxt, work, seed=7)
        onnx_path, back = work / "model.onnx", work / "back.prototxt"
        first = nnbridge.convert(prototxt, onnx_path, weights=weights, verify=True)
        nnbridge.convert(onnx_path, back, dialect=dialect)
        second = nnbridge.verify(prototxt, back, source_weights=weights,
                                 converted_weights=back.with_suffix(".caffemodel"))
        for step, report in (("caffe -> onnx", first.verification), ("onnx -> caffe", second)):
            comparison = report.comparison
            worst = comparison.worst
            compared = [r for r in comparison.rows if r.max_abs == r.max_abs]  # NaN: not compared
            rows.append((name, step, f"{report.source_runtime} / {report.converted_runtime}", str(len(compared)),
                         worst.name if worst else "-", f"{worst.max_abs:.2e}" if worst else "-",
                         f"{worst.max_rel:.2e}" if worst else "-", "pass" if report.passed else "FAIL"))
            failed |= not report.passed
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("-|-".join("-" * w for w in widths))
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
