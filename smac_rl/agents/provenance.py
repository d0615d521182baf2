"""Provenance every tracked run carries (command, git SHA, data hash, versions): light, no SB3 or torch."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import metadata, resources

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def git_sha() -> str:
    """The repository's commit, or ``unknown`` outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def data_bundle_sha256() -> str:
    """sha256 of the data bundle's provenance file (it lists every file's own hash)."""
    data = (resources.files("smac_rl.data.bundle") / "PROVENANCE.json").read_bytes()
    return hashlib.sha256(data).hexdigest()


def provenance_tags() -> dict[str, str]:
    """Tags every run carries: command, git SHA, data hash, package versions."""
    versions = {}
    for package in ("smac-rl", "torch", "stable-baselines3", "gymnasium", "numpy", "pyomo", "highspy"):
        try:
            versions[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[f"version.{package}"] = "not installed"
    return {
        "command": " ".join(sys.argv),
        "git_sha": git_sha(),
        "data_bundle_sha256": data_bundle_sha256(),
        **versions,
    }
