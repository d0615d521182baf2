"""The domain core: specs, units, time grid, physics step, scorer, safety projection (numpy + pydantic)."""
