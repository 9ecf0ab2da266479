"""File systems: a node's disk and its crash-durability model."""
