"""Gymnasium environments of charging sites; importing this package registers them.

``gym.make("smac_rl_envs:smac_rl/SiteCharging-v0")`` works without a prior import;
``gym.make_vec("smac_rl_envs:smac_rl/SiteCharging-v0", num_envs=B, vectorization_mode="vector_entry_point")``
builds the native batched env.
"""

from gymnasium.envs.registration import register

register(
    id="smac_rl/SiteCharging-v0",
    entry_point="smac_rl_envs.site_env:SiteChargingEnv",
    vector_entry_point="smac_rl_envs.vector_env:SiteChargingVectorEnv",
)
