"""Model preparation: export, conversion and storage of BERT SQuAD models."""
