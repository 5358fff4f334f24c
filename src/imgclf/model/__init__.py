"""Core model layer: hyperparameters, the network, the input pipeline, the search space, SavedModel export."""
