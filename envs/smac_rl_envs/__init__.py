"""Gymnasium environments of charging sites; importing this package registers them.

``gym.make("smac_rl_envs:smac_rl/SiteCharging-v0")`` works without a prior import.
"""

from gymnasium.envs.registration import register

register(id="smac_rl/SiteCharging-v0", entry_point="smac_rl_envs.site_env:SiteChargingEnv")
