"""Few-state stochastic domain-wall synapses: the backend interface, its implementations and the layers."""
