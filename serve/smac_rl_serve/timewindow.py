"""The span of time an event may name: instants within a bound of now, so no date arithmetic overflows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from smac_rl_serve.errors import problem


@dataclass(frozen=True)
class TimeWindow:
    """Instants from ``now_utc - max_offset_h`` to ``now_utc + max_offset_h``.

    Attributes:
        now_utc: Now.
        max_offset_h: Largest distance from now [h].
    """

    now_utc: dt.datetime
    max_offset_h: float

    @property
    def earliest_utc(self) -> dt.datetime:
        """The first instant in the window."""
        return self.now_utc - dt.timedelta(hours=self.max_offset_h)

    @property
    def latest_utc(self) -> dt.datetime:
        """The last instant in the window."""
        return self.now_utc + dt.timedelta(hours=self.max_offset_h)

    def problem(self, path: str, instant_utc: dt.datetime) -> dict[str, str] | None:
        """A problem naming ``path`` when an instant lies outside the window, else None."""
        if self.earliest_utc <= instant_utc <= self.latest_utc:
            return None
        return problem(
            path,
            instant_utc.isoformat(),
            f"an instant within {self.max_offset_h:g} h of now "
            f"({self.earliest_utc.isoformat()} to {self.latest_utc.isoformat()})",
        )

    def span_problem(self, path: str, span: dt.timedelta) -> dict[str, str] | None:
        """A problem naming ``path`` when a duration exceeds the window's width, else None."""
        if span <= dt.timedelta(hours=2 * self.max_offset_h):
            return None
        return problem(path, str(span), f"a duration of at most {2 * self.max_offset_h:g} h")
