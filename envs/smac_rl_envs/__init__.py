"""Gymnasium environments of charging sites, single and batched (thin-path and simulation issues)."""
