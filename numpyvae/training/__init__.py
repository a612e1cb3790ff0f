"""Training: the loop, its configuration, checkpoints and run folders."""
