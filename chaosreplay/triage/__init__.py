"""Triage of failing runs: classify, cluster, compare, shrink and report (docs/triage.md)."""
