"""MLPerf Inference submissions (v1.0, v1.1): compliance tests, the tree and its checker.

Each round's BERT rules are a ``RuleSet`` in ``harness.loadgen.rulesets``, applied to a run by
``harness.loadgen.rules``; the tree's folders and files are ``harness.loadgen.layout``.
``compliance``: TEST01 and TEST05; ``tree``: runs -> ``submission/<division>/<submitter>/``;
``checker`` (with ``result_check``, ``compliance_check``, ``findings``, ``reading``,
``rescore``): what the round's MLCommons submission checker counts as an error (FAIL) and
what it accepts (WARN). See docs/submission.md.
"""
