"""Operations: demo data, the worker, deployment files and benchmarks."""
