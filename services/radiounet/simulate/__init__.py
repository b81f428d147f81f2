"""Synthetic LOFAR observations with ground truth (see DATASET_FORMAT.md for the dataset layout)."""
