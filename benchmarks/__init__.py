"""`distribution bench`: the service's figures beside baselines measured in the same run on
the same machine (see BENCHMARKS.md and benchmarks/run.py)."""
