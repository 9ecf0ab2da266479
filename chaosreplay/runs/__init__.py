"""Runs as units of work: record and replay, seed sweeps, fault schedules, what-if branches."""
