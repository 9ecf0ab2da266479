"""`chaosreplay explore`: a coverage-guided search of fault schedules from checkpoints.

Runs start from seeds; whenever one reaches something new (signals.py, coverage.py), the
checkpoint after the discovery becomes a frontier entry (frontier.py); branches continue
from an entry with a mutated future fault schedule (mutator.py); the energy rule decides
how many branches an entry gets (energy.py); runs are lean, in forked workers, in rounds
whose results are taken in decision order (runner.py), so the whole search is a function
of its seed and job count (explorer.py). Failing branches are recorded from scratch as
standalone recordings (findings.py); report.py and display.py show what was found.
"""
