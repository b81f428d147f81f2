"""Training and fine-tuning of Radio U-Net on simulated datasets (``radiounet-sim/1``)."""
