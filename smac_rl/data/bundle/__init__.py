"""The data bundle files (package data; see DATA_SOURCES.md)."""
