"""Evaluation metrics for retrieval and answer quality."""
