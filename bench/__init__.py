"""Benchmarks of Switchboard against its peers, run on this machine with real processes.

`python -m bench.jobs_bench` (what `make bench` runs) measures the jobs service and one worker against raw
taskiq on the same Redis: how fast a backlog drains, and how long a job waits between its submit and its
start at a steady offered rate. BENCHMARKS.md records the results and how to read them.
"""
