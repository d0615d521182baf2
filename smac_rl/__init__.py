"""SMAC-RL: smart-charging research platform with a production profile service.

Import the sub-packages you need (``smac_rl.core``, ``smac_rl.policies``...); this package
imports nothing at import time.
"""

__version__ = "0.1.0"
