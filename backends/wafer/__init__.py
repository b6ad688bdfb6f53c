"""A simulated wafer-scale engine: specs, layer shapes, the performance model, a
discrete-event device and the real-time engine behind ``--backend wafer``.

Modules, bottom first: :mod:`~backends.wafer.spec` (preset TOML files with provenance),
:mod:`~backends.wafer.shapes` (layer shapes from ONNX graphs, configs or names),
:mod:`~backends.wafer.planned` (what a plan is: its options, rows, modes, bands, releases),
:mod:`~backends.wafer.layout`, :mod:`~backends.wafer.release` and :mod:`~backends.wafer.report`
(a plan's layout, its mode by release, its table), :mod:`~backends.wafer.plan` (pipelined and
weight-streaming modes: the planning itself), :mod:`~backends.wafer.device`
(the discrete-event model), :mod:`~backends.wafer.engine` (releases on the wall clock),
:mod:`~backends.wafer.numerics` (answers computed ahead), :mod:`~backends.wafer.calibration`
(published anchors) and :mod:`~backends.wafer.cli` (``plan``, ``--zoo``, ``anchors``). The
backend itself is :mod:`backends.wafer_backend`. See docs/wafer.md.
"""
