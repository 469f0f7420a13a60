"""Benchmarks (print figures; never run in CI, never timed assertions). See README.md."""
