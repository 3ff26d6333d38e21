"""Benchmarks of the controller; each writes its figures into docs/ with the command that made them."""
