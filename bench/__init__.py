"""Benchmarks of the controller against the raw OVSDB limit (`python -m bench --help`)."""
