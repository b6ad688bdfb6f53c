"""The sweep report's table and machine facts, and the small texts around them."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.sweep.report import report_html, short_reason

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
