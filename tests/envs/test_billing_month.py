"""A month of consecutive episodes shares one demand-charge peak (``billing_period="month"``)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smac_rl_envs.site_env import SiteChargingEnv
from smac_rl_envs.sources import EpisodeSource
from smac_rl_envs.vector_env import SiteChargingVectorEnv

RATE_EUR_PER_KW = 0.35  # budapest_workplace's demand charge


def _episodes(billing_period: str) -> list[tuple[str, float, float, float]]:
    """Three consecutive days (two in January, one in February) at full charging power.

    Returns:
        Per episode: its scenario, total cost [EUR], its own peak import [kW] (the highest
        ``grid_import_kw``) and the billing peak at its end [kW].
    """
    env = SiteChargingEnv(
        template="budapest_workplace",
        first_day=dt.date(2024, 1, 30),
        last_day=dt.date(2024, 2, 1),
        episode_order="consecutive",
        billing_period=billing_period,  # type: ignore[arg-type]
    )
    episodes = []
    _, info = env.reset(seed=4)
    action = np.ones(env.layout.action_size)
    for _ in range(3):
        name, cost, own_peak, done = info["scenario"], 0.0, 0.0, False
        while not done:
            _, _, done, _, info = env.step(action)
            cost += info["cost_eur"]
            own_peak = max(own_peak, info["grid_import_kw"])
        episodes.append((name, cost, own_peak, info["billing_peak_kw"]))
        _, info = env.reset()
    return episodes


def test_a_months_episodes_pay_the_demand_charge_once_on_the_months_peak() -> None:
    alone, monthly = _episodes("episode"), _episodes("month")
    assert [e[0] for e in alone] == [e[0] for e in monthly]
    assert [e[0][:30] for e in alone] == [
        "budapest_workplace_2024-01-30_",
        "budapest_workplace_2024-01-31_",
        "budapest_workplace_2024-02-01_",
    ]
    p1, p2, p3 = (e[2] for e in alone)
    assert [e[2] for e in monthly] == [p1, p2, p3]  # the same actions give the same imports
    # January: each day alone pays rate * its own peak; together they pay rate * the larger one.
    january_saving = (alone[0][1] + alone[1][1]) - (monthly[0][1] + monthly[1][1])
    assert january_saving == pytest.approx(RATE_EUR_PER_KW * (p1 + p2 - max(p1, p2)), abs=1e-9)
    assert monthly[1][3] == pytest.approx(max(p1, p2))
    # February starts a new billing period: the day pays its own peak, as alone.
    assert monthly[2][1] == pytest.approx(alone[2][1], abs=1e-9)
    assert monthly[2][3] == pytest.approx(p3)


def test_a_monthly_billing_period_needs_consecutive_days() -> None:
    with pytest.raises(ValueError, match="expected episode_order 'consecutive' on drawn days"):
        SiteChargingEnv(template="budapest_workplace", billing_period="month")


def test_consecutive_days_walk_the_calendar_and_refuse_a_pool() -> None:
    source = EpisodeSource(
        template="budapest_workplace",
        first_day=dt.date(2024, 1, 30),
        last_day=dt.date(2024, 1, 31),
        order="consecutive",
    )
    rng = np.random.default_rng(0)
    days = []
    for _ in range(3):
        source.draw(rng)
        days.append(source.last_day)
    assert days == [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 1, 30)]
    with pytest.raises(ValueError, match="pool_size: got 4 with order 'consecutive'"):
        EpisodeSource(template="budapest_workplace", pool_size=4, order="consecutive")


def test_the_batched_env_bills_each_rows_month_like_the_single_env() -> None:
    first, last = dt.date(2024, 1, 30), dt.date(2024, 2, 1)
    vector = SiteChargingVectorEnv(
        2,
        template="budapest_workplace",
        first_day=first,
        last_day=last,
        episode_order="consecutive",
        billing_period="month",
    )
    singles = [
        SiteChargingEnv(
            template="budapest_workplace",
            first_day=first,
            last_day=last,
            episode_order="consecutive",
            billing_period="month",
        )
        for _ in range(2)
    ]
    vector.reset(seed=4)
    for i, env in enumerate(singles):
        env.reset(seed=4 + i)
    rng = np.random.default_rng(0)
    carried = 0
    for _ in range(3 * 96):  # three days: the month's peak carried once, then February afresh
        actions = rng.uniform(-1.0, 1.0, (2, vector.layout.action_size))
        _, rewards, terminated, _, infos = vector.step(actions)
        for i, env in enumerate(singles):
            _, reward, done, _, info = env.step(actions[i])
            assert rewards[i] == pytest.approx(reward, abs=1e-9)
            assert infos["billing_peak_kw"][i] == pytest.approx(info["billing_peak_kw"], abs=1e-9)
            assert bool(terminated[i]) is done
            if done:
                _, started = env.reset()
                carried += started["billing_peak_kw"] > 0.0
    assert carried == 2  # each row's second January day started from its first day's peak
