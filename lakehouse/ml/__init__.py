"""Training sets, training, evaluation, candidates and the model registry."""
