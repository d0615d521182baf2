"""Where episodes come from: a fixed scenario, generated template days, or replayed Caltech days.

One :class:`EpisodeSource` serves the single env and every row of the batched env, so both draw
the same episodes from the same random generator state. With ``pool_size`` the source keeps a
pool of that many distinct episodes, built on first use and then shared: a reset costs a copy
instead of a generation (the batched env resets many rows at once).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

import numpy as np

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.specs import ObjectiveSpec, ScenarioSpec
from smac_rl.data.generator import caltech_days, generate_scenario, replay_caltech_day
from smac_rl.data.periods import CALTECH_PERIODS
from smac_rl.data.template_spec import SiteTemplate, load_template

BillingPeriod = Literal["episode", "month"]
"""Over what the demand charge's peak is billed: each episode, or a calendar month of consecutive episodes."""

EpisodeOrder = Literal["random", "consecutive"]
"""``random``: each episode a drawn day; ``consecutive``: the days in calendar order (cycling), each
with a drawn generator seed, as a site lives them (a month's episodes share its billing peak)."""

SessionMode = Literal["generated", "caltech_replay"]
"""``generated``: ElaadNL-sampled sessions on a drawn day; ``caltech_replay``: the real sessions of
a drawn Caltech day of ``caltech_period``."""


class EpisodeSource:
    """Draws episodes (compiled scenarios) from a random generator (module docstring)."""

    def __init__(
        self,
        scenario: ScenarioSpec | None = None,
        template: str = "budapest_workplace",
        first_day: dt.date = dt.date(2023, 1, 1),
        last_day: dt.date = dt.date(2023, 12, 31),
        sessions: SessionMode = "generated",
        caltech_period: str = CALTECH_PERIODS[0],
        pool_size: int | None = None,
        objective: ObjectiveSpec | None = None,
        order: EpisodeOrder = "random",
    ) -> None:
        """Create the source.

        Args:
            scenario: A fixed scenario for every episode; None: draw days of ``template``.
            template: Pilot template name or YAML file.
            first_day: First local day generated episodes may start on.
            last_day: Last local day generated episodes may start on.
            sessions: How the sessions of a drawn day are made.
            caltech_period: The Caltech period replayed days come from (``caltech_replay``).
            pool_size: Distinct episodes to draw from (built on first use); None: a fresh one each time.
            objective: The objective drawn days are judged on; None: the scenario's own (``cost``
                for generated days). A fixed scenario keeps its own.
            order: Days drawn at random, or walked through in calendar order.

        Raises:
            ValueError: For an empty day range, an unknown period, a pool size below 1, or a pool
                with consecutive days.
        """
        self._fixed = None if scenario is None else compile_scenario(scenario)
        self._template: SiteTemplate = load_template(template)
        self._sessions = sessions
        if pool_size is not None and pool_size < 1:
            raise ValueError(f"pool_size: got {pool_size}; expected at least 1 or None")
        if order == "consecutive" and pool_size is not None:
            raise ValueError(
                f"pool_size: got {pool_size} with order 'consecutive'; expected None (a pool draws "
                "days at random)"
            )
        if sessions == "caltech_replay":
            if caltech_period not in CALTECH_PERIODS:
                raise ValueError(
                    f"caltech_period: got {caltech_period!r}; expected one of {', '.join(CALTECH_PERIODS)}"
                )
            self._days = caltech_days(caltech_period)
        else:
            n_days = (last_day - first_day).days + 1
            if n_days < 1:
                raise ValueError(f"last_day: got {last_day}; expected on or after first_day {first_day}")
            self._days = [first_day + dt.timedelta(days=k) for k in range(n_days)]
        self._pool_size = pool_size
        self._objective = objective
        self._pool: dict[int, tuple[ScenarioArrays, dt.date]] = {}
        self._order = order
        self._next_index = 0
        self.last_day: dt.date | None = None
        """The local day of the last drawn episode (None before the first draw or for a fixed scenario)."""

    @property
    def fixed(self) -> ScenarioArrays | None:
        """The fixed scenario's arrays, if the source has one."""
        return self._fixed

    def draw(self, rng: np.random.Generator) -> ScenarioArrays:
        """The next episode for a generator (same generator state, same episode).

        Args:
            rng: The env's (or the batch row's) random generator; advanced by the draw.

        Returns:
            The episode's compiled scenario (shared, never modify it).
        """
        if self._fixed is not None:
            return self._fixed
        if self._order == "consecutive":
            index, self._next_index = self._next_index, (self._next_index + 1) % len(self._days)
            return self._build(index, int(rng.integers(2**31)))
        if self._pool_size is None:
            return self._build(int(rng.integers(len(self._days))), int(rng.integers(2**31)))
        slot = int(rng.integers(self._pool_size))
        if slot not in self._pool:
            slot_rng = np.random.default_rng([self._pool_size, slot])
            index = int(slot_rng.integers(len(self._days)))
            self._pool[slot] = (self._build(index, int(slot_rng.integers(2**31))), self._days[index])
        arrays, self.last_day = self._pool[slot]
        return arrays

    def restart(self) -> None:
        """Walk consecutive days from the first again (a seeded reset of the env does this)."""
        self._next_index = 0

    def _build(self, day_index: int, seed: int) -> ScenarioArrays:
        day = self._days[day_index]
        self.last_day = day
        if self._sessions == "caltech_replay":
            spec, _ = replay_caltech_day(self._template, day, seed)
        else:
            spec, _ = generate_scenario(self._template, day, 1, seed=seed)
        if self._objective is not None:
            data = spec.model_dump(mode="json")
            data["objective"] = self._objective.model_dump(mode="json")
            spec = parse_scenario(data, source=f"{spec.name} with objective {self._objective.name}")
        return compile_scenario(spec)


def check_billing(billing_period: BillingPeriod, episode_order: EpisodeOrder, is_fixed: bool) -> None:
    """Refuse a monthly billing period without consecutive drawn days.

    Raises:
        ValueError: Naming the values and what is expected.
    """
    if billing_period == "month" and (is_fixed or episode_order != "consecutive"):
        raise ValueError(
            f"billing_period: got 'month' with episode_order {episode_order!r}"
            + (" and a fixed scenario" if is_fixed else "")
            + "; expected episode_order 'consecutive' on drawn days (a month is a run of days)"
        )


class MonthlyBilling:
    """The running billing peak of a calendar month of consecutive episodes (one per env row).

    Each episode starts from the highest import of the month's earlier episodes as its billing
    start (``SiteArrays.billing_peak_start_kw``), so its demand charge is only for raising it; the
    first episode of a month starts from the scenario's own start.
    """

    def __init__(self) -> None:
        """Start with no month."""
        self.month: tuple[int, int] | None = None
        self.peak_kw = 0.0

    def restart(self) -> None:
        """Forget the month (a seeded reset)."""
        self.month, self.peak_kw = None, 0.0

    def begin(self, arrays: ScenarioArrays, day: dt.date | None) -> ScenarioArrays:
        """The episode of local day ``day`` with the month's running peak as its billing start."""
        month = None if day is None else (day.year, day.month)
        if month != self.month:
            self.month, self.peak_kw = month, 0.0
        self.peak_kw = max(arrays.site.billing_peak_start_kw, self.peak_kw)
        return dataclasses.replace(
            arrays, site=dataclasses.replace(arrays.site, billing_peak_start_kw=self.peak_kw)
        )

    def record(self, billing_peak_kw: float) -> None:
        """Take in the billing peak an episode ended with [kW]."""
        self.peak_kw = max(self.peak_kw, billing_peak_kw)
