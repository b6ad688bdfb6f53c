"""SQuAD v1.1: examples, MLPerf features, post-processing, EM/F1 and accuracy."""
