"""The supported-ops table, generated from the registries (never kept by hand).

Sources: ``CAFFE_IMPORTERS`` and ``TRAINING_LAYERS`` (Caffe -> hub), ``CAFFE_EXPORTERS`` (hub -> Caffe,
keyed by ONNX ``op_type`` or ``domain::op_type``), ``MXNET_IMPORTERS`` (MXNet -> hub), ``MXNET_EXPORTERS``
(hub -> MXNet), ``CUSTOM_OPS`` (the ``ai.nnbridge`` domain) and ``CAFFE_OP_LAYERS`` (Caffe layers translated
natively by ``nnbridge.mxnet.CaffeOp``).
``nnbridge ops --format md`` prints it; ``scripts/gen_ops_table.py`` writes it into docs/supported_ops.md
and the README between the ``ops-table`` markers, and a test fails when either file drifts.
"""

from __future__ import annotations

from dataclasses import dataclass

START = "<!-- ops-table:start -->"
END = "<!-- ops-table:end -->"


@dataclass
class OpsTables:
    caffe_import: list[tuple[str, str]]  # (layer type, notes)
    caffe_training: list[tuple[str, str]]
    caffe_export: list[tuple[str, str]]  # (hub op key, notes)
    mxnet_import: list[tuple[str, str]]  # (MXNet operator, notes)
    mxnet_export: list[tuple[str, str]]  # (hub op key, notes)
    custom: list[tuple[str, str]]
    caffe_op: list[tuple[str, str]]  # (Caffe layer type, notes): native MXNet translation of CaffeOp


def _first_line(text: str) -> str:
    line = " ".join(text.strip().split("\n")[0].split()) if text else ""
    return line.replace("|", "\\|")


def collect() -> OpsTables:
    from nnbridge.caffe.export.context import CAFFE_EXPORTERS
    from nnbridge.caffe.exporter import _load_exporters
    from nnbridge.caffe.importer import CAFFE_IMPORTERS, TRAINING_LAYERS, _load_ops
    from nnbridge.hub.custom import CUSTOM_OPS, _load_definitions
    from nnbridge.mxnet import exporter as mxnet_exporter
    from nnbridge.mxnet import importer as mxnet_importer
    from nnbridge.mxnet.caffe_op import CAFFE_OP_LAYERS
    from nnbridge.mxnet.export.context import MXNET_EXPORTERS

    _load_ops()
    _load_exporters()
    _load_definitions()
    mxnet_importer._load_ops()
    mxnet_exporter._load_exporters()
    return OpsTables(
        caffe_import=[(e.key, _first_line(e.notes)) for e in CAFFE_IMPORTERS],
        caffe_training=[(k, _first_line(v)) for k, v in sorted(TRAINING_LAYERS.items())],
        caffe_export=[(e.key, _first_line(e.notes)) for e in CAFFE_EXPORTERS],
        mxnet_import=[(e.key, _first_line(e.notes)) for e in mxnet_importer.MXNET_IMPORTERS],
        mxnet_export=[(e.key, _first_line(e.notes)) for e in MXNET_EXPORTERS],
        custom=[(e.key, _first_line(e.notes)) for e in CUSTOM_OPS],
        caffe_op=[(e.key, _first_line(e.notes)) for e in CAFFE_OP_LAYERS],
    )


def _md_table(head: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return ["(none yet)", ""]
    lines = [f"| {head[0]} | {head[1]} |", "| --- | --- |"]
    lines += [f"| `{key}` | {notes} |" for key, notes in rows]
    return [*lines, ""]


def ops_markdown() -> str:
    """The table as Markdown (what docs/supported_ops.md and the README section hold)."""
    t = collect()
    lines = [
        "Generated from the converter registries by `nnbridge ops --format md` "
        "(`python scripts/gen_ops_table.py` rewrites this section); do not edit by hand.",
        "",
        f"### Caffe -> ONNX: {len(t.caffe_import)} layer types",
        "",
        *_md_table(("Caffe layer", "notes"), t.caffe_import),
        f"Training-only layers, recognised and dropped for inference ({len(t.caffe_training)}):",
        "",
        *_md_table(("Caffe layer", "why"), t.caffe_training),
        f"### ONNX -> Caffe: {len(t.caffe_export)} ops",
        "",
        *_md_table(("ONNX op", "notes"), t.caffe_export),
        f"### MXNet -> ONNX: {len(t.mxnet_import)} operators",
        "",
        *_md_table(("MXNet operator", "notes"), t.mxnet_import),
        f"### ONNX -> MXNet: {len(t.mxnet_export)} ops",
        "",
        *_md_table(("ONNX op", "notes"), t.mxnet_export),
        f"### Custom ops (domain `ai.nnbridge`): {len(t.custom)}",
        "",
        *_md_table(("op", "what"), t.custom),
        f"### Caffe layers inside MXNet (`CaffeOp`, native translation): {len(t.caffe_op)}",
        "",
        "Other layers run in real pycaffe with `engine=\"caffe\"`.",
        "",
        *_md_table(("Caffe layer", "notes"), t.caffe_op),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def ops_text() -> str:
    """A compact plain-text listing for the terminal."""
    t = collect()
    out = []
    for title, rows in (
        ("Caffe -> ONNX layer types", t.caffe_import),
        ("Caffe training layers (dropped)", t.caffe_training),
        ("ONNX -> Caffe ops", t.caffe_export),
        ("MXNet -> ONNX operators", t.mxnet_import),
        ("ONNX -> MXNet ops", t.mxnet_export),
        ("custom ops (ai.nnbridge)", t.custom),
        ("Caffe layers inside MXNet (CaffeOp, native)", t.caffe_op),
    ):
        out.append(f"{title} ({len(rows)}):")
        width = max((len(k) for k, _ in rows), default=0)
        out += [f"  {k.ljust(width)}  {n}".rstrip() for k, n in rows]
    return "\n".join(out) + "\n"


def replace_section(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``; raises if markers are missing."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers {START} ... {END} not found")
    return text[: start + len(START)] + "\n" + table + text[end:]
