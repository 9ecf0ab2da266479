"""The simulated network: the seven-stage fabric and SDK datagrams over it."""
