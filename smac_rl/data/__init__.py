"""Data bundle, loaders, importers and the scenario generator; filled by the data issue."""
