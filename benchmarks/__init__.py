"""PTM Studio's figures held against their targets (issue 14): ``python -m benchmarks``."""
