"""Sweeps, triage and exploration as Ray tasks on a cluster (`--ray`); Ray is imported here only."""
