"""Numpy-only feature builders shared by training and the service.

The forecasters' training (``smac_rl_forecasting``) and the service (``smac_rl_serve``) compute the
same features from one implementation here; an import-linter contract keeps this package free of
pandas, the training stack and every higher layer.
"""
