"""The sweep report's table and machine facts, and the small texts around them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from harness.cli import main
from harness.sweep.plots import latency_plot
from harness.sweep.report import report_html, short_reason
from harness.sweep.stream_plots import stream_plot

SERVER_REASONS = ("Reduce target QPS to improve latency; The test exited early, before "
                  "enough queries were issued.")


def test_loadgens_reasons_are_a_few_words_each_with_the_full_text_on_hover() -> None:
    assert short_reason(SERVER_REASONS) == "latency over the bound; ended early"
    assert short_reason("latency constraint not met; early stopping not met: Processed 300 "
                        "queries. Need to process at least 459") \
        == "latency over the bound; early stopping not met"
    unknown = "a reason no one has seen before, longer than the table's column"
    assert short_reason(unknown).endswith("…") and len(short_reason(unknown)) == 40
    row = {"label": "target_qps=10", "status": "done", "valid": False,
           "reason": SERVER_REASONS, "samples_per_second": 3.6}
    page = report_html({"sweep": "s"}, [row], [])
    assert '<td class="text" title="Reduce target QPS to improve latency; The test exited ' \
        'early, before enough queries were issued.">latency over the bound; ended early</td>' \
        in page


def test_the_machine_names_the_backend_with_its_version() -> None:
    page = report_html({"sweep": "s", "base": {"backend": "null"}, "backend_version": "0"},
                       [], [])
    assert "<dt>backend</dt><dd>null 0</dd>" in page
    varied = report_html({"sweep": "s", "axes": {"backend": ["null", "onnxruntime"]},
                          "backend_version": "1.2"}, [], [])
    assert "<dt>backend</dt><dd>varied (null, onnxruntime) 1.2</dd>" in varied


def test_list_says_what_a_wrapping_backend_loads(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("ray", "wafer"):
        line = next(line for line in lines if line.split()[:1] == [name])
        assert line.split(None, 1)[1] == "loads what the backend it wraps loads (its options)"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", head[16:24])


def _server_rows() -> list[dict]:
    """Past saturation: the achieved rate stalls at 10 while p99 climbs."""
    rows = []
    for target, achieved, p99, valid in ((4, 4.0, 60.0, True), (8, 7.9, 110.0, True),
                                         (12, 10.1, 900.0, False), (16, 9.8, 3000.0, False)):
        rows.append({"label": f"target_qps={target}", "status": "done", "target_qps": target,
                     "samples_per_second": achieved, "p50_ms": p99 / 3, "p90_ms": p99 / 2,
                     "p99_ms": p99, "valid": valid, "latency_bound_ms": 130.0})
    return rows


def test_server_latency_is_drawn_against_the_target_and_the_achieved_rate(
        tmp_path: Path) -> None:
    both = latency_plot(_server_rows(), ["target_qps"], tmp_path / "both.png", "s")
    achieved_only = [{**row, "target_qps": None} for row in _server_rows()]
    one = latency_plot(achieved_only, [], tmp_path / "one.png", "s")
    assert both is not None and one is not None
    (w2, h2), (w1, h1) = _png_size(both), _png_size(one)
    assert h2 == h1 and w2 > 1.8 * w1  # two panels side by side, one without targets


def test_stream_sweeps_plot_latency_percentiles_by_setting(tmp_path: Path) -> None:
    rows = [{"label": f"clock={c}", "status": "done", "backend_options.clock": c,
             "samples_per_second": 1000 / (8 / c), "p50_ms": 8 / c, "p90_ms": 9 / c,
             "p99_ms": 10 / c, "query_p99_ms": 11 / c, "valid": True} for c in (0.5, 1.0)]
    single = stream_plot(rows, ["backend_options.clock"], "SingleStream", tmp_path / "s.png",
                         "w")
    multi = stream_plot(rows, ["backend_options.clock"], "MultiStream", tmp_path / "m.png",
                        "w")
    assert single is not None and multi is not None
    assert single.read_bytes() != multi.read_bytes()  # MultiStream adds its query p99
    assert stream_plot([{"label": "x", "status": "failed"}], [], "SingleStream",
                       tmp_path / "none.png", "w") is None
