"""Sweeps: many LoadGen runs from one TOML file, peak finding, tables, plots and reports.

One concept a module, bottom first:

* :mod:`~harness.sweep.spec` -- the sweep file: a base configuration, its points, the peak
  search and the report settings, checked into typed settings (a bad file is one line);
  :mod:`~harness.sweep.formula`, the arithmetic a modelled figure may be.
* :mod:`~harness.sweep.plan` -- the points as runs: an id, a ``run`` command line and the
  user.conf each point writes.
* :mod:`~harness.sweep.record` -- what one finished run measured, read from its folder.
* :mod:`~harness.sweep.launch` -- one point as its own ``python -m harness run`` process.
* :mod:`~harness.sweep.peak` -- peak search (bracketing and bisection; LoadGen's own mode).
* :mod:`~harness.sweep.table`, :mod:`~harness.sweep.plots`, :mod:`~harness.sweep.report` --
  CSV and JSON, PNG pictures, one self-contained HTML page.
* :mod:`~harness.sweep.progress` -- the progress bar and its ETA.
* :mod:`~harness.sweep.engine` -- a whole sweep: resume, the peak search's runs, Ctrl-C,
  which pictures a sweep gets.
* :mod:`~harness.sweep.compare` -- the change in every figure between two runs or sweeps.

The point chosen for the latency distribution runs once more with ``run --keep-trace``
(LoadGen's trace holds the per-sample latencies).
"""
