"""MLPerf Inference v1.0 submissions: compliance tests, the tree and its checker.

The v1.0 BERT rules as LoadGen 6 needs them are ``harness.loadgen.rules`` (every run can
use them); ``compliance: TEST01 and TEST05;
``tree``: runs -> ``submission/<division>/<submitter>/``; ``checker``: what the MLCommons
v1.0 submission checker checks, and what it only warns about. See docs/submission.md.
"""
