"""The simulation: the controller, scenarios, the oracle, checkpoints, the network and faults."""
