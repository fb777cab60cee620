"""Model-zoo runs: a TOML manifest of models, each converted to its targets, verified blob by blob (and
evaluated on a labelled dataset), in a resumable, parallel batch with a JSON/Markdown/HTML report.

Entry points: :func:`nnbridge.zoo.executor.run_zoo` and the CLI ``nnbridge zoo run``.
"""
