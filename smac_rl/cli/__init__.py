"""The ``smac`` command line (typer)."""
