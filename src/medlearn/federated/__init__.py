"""Federated learning on Flower around the one Task and Trainer (``medlearn federate``)."""
