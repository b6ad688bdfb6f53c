"""MLPerf-style BERT SQuAD v1.1 inference harness: LoadGen adapter, data, accuracy, results."""

__version__ = "0.1.0"
