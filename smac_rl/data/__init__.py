"""Data: bundle and loaders, pilot templates, generator, importers and online adapters (needs [data])."""
