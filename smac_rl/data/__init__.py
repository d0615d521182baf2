"""Data bundle (smac_rl/data/bundle/), its typed loaders and build rules; importers and generator to come."""
