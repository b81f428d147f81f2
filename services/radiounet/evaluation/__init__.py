"""Evaluation of Radio U-Net on held-out simulated fields against the paper's metrics."""
