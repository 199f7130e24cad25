"""The fault harness (`benchmarks/chaos.sh`): real Redis/PostgreSQL killed under load."""
