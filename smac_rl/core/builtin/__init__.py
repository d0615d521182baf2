"""Scenario files shipped with the package (package data, read with importlib.resources)."""
