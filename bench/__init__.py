"""layertap's benchmarks (`make bench`): each compares layertap with the usual way, in the same run.

Absolute times drift on shared machines; ratios measured side by side in one run hold. Every figure
is the median of several repetitions after a warm-up, with its spread, and each result file records
the machine it ran on.
"""
