"""Training: data loaders, the training loop, held-out fusion, what a dataset can train."""
