"""Site templates: a site plus the rules the generator samples its days from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from smac_rl.core.errors import FieldProblem, ScenarioError, render_path, render_value
from smac_rl.core.scenario_io import parse_data_text, problems_from_pydantic, read_data_file
from smac_rl.core.specs import SiteSpec
from smac_rl.core.specs.base import StrictModel
from smac_rl.core.validation import check_site

TEMPLATES_PACKAGE = "smac_rl.data.templates"

ElaadProfile = Literal["public", "workplace", "private"]


class SessionGroup(StrictModel):
    """A stream of sessions using some of the site's chargers.

    Attributes:
        name: Group name (appears in session ids).
        station_ids: Chargers whose connectors the group's EVs plug into.
        elaad_profile: ElaadNL charger type whose arrival, connection-time and energy
            distributions are sampled (weekends use the ``public`` arrivals for ``workplace``).
        mean_sessions_per_weekday: Mean arrivals on a Monday to Friday (Poisson).
        mean_sessions_per_weekend_day: Mean arrivals on a Saturday or Sunday (Poisson).
        max_dwell_h: Longest stay [h]: fast-charging drivers leave once charged; None: as sampled.
        ev_mix: EV spec mix the models are drawn from, weighted by registrations.
        allow_v2g_frac: Share of sessions whose driver allows V2G [0..1].
        v2g_min_soc_frac: Minimum SoC of V2G sessions [0..1].
        dc_taper: DC taper of the sessions at DC chargers: ``class_default`` (the charging class's,
            :data:`smac_rl.core.specs.site.DEFAULT_TAPER_START_SOC_FRAC`) or ``ev_model`` (each EV
            model's own, derived from its maximum and average DC power:
            :func:`smac_rl.data.loaders.dc_taper_start_soc_frac`; the class default for a model
            whose spec shows none).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    station_ids: list[str] = Field(min_length=1)
    elaad_profile: ElaadProfile
    mean_sessions_per_weekday: float = Field(ge=0, le=10_000)
    mean_sessions_per_weekend_day: float = Field(ge=0, le=10_000)
    max_dwell_h: float | None = Field(default=None, gt=0)
    ev_mix: Literal["fleet", "v2g_2024"] = "fleet"
    allow_v2g_frac: float = Field(default=0.0, ge=0, le=1)
    v2g_min_soc_frac: float = Field(default=0.4, ge=0, le=1)
    dc_taper: Literal["class_default", "ev_model"] = "class_default"


class BaseLoadSpec(StrictModel):
    """Generated non-EV consumption.

    Attributes:
        profile: Daily shape: ``office`` (working hours, weekdays), ``residential`` (morning and
            evening peaks) or ``commercial`` (opening hours, every day).
        mean_kw: Mean over a weekday [kW].
        noise_frac: Standard deviation of the multiplicative noise [0..1].
    """

    profile: Literal["office", "residential", "commercial"]
    mean_kw: float = Field(ge=0)
    noise_frac: float = Field(default=0.05, ge=0, le=1)


class PriceRule(StrictModel):
    """How energy prices are built from the bundled day-ahead series.

    Attributes:
        retail_adder_eur_per_kwh: Network fees, levies and margin added to the day-ahead price [EUR/kWh].
        export_price: ``day_ahead`` (exports paid at the day-ahead price) or ``zero``.
    """

    retail_adder_eur_per_kwh: float = Field(default=0.0, ge=-1, le=5)
    export_price: Literal["day_ahead", "zero"] = "day_ahead"


class SiteTemplate(StrictModel):
    """An illustrative pilot site and how its days are generated.

    Attributes:
        template_id: Name used on the command line.
        description: What the template represents; always labelled illustrative.
        site: The site (chargers, storage, PV, grid, tariff terms).
        session_groups: Session streams.
        base_load: Non-EV consumption.
        prices: Price rule (the bundled Dutch day-ahead series is the only market in the bundle,
            so every template uses it, plus its adder).
        step_min: Time-grid step [min].
        cloudiness_frac: Mean share of clear-sky PV lost to clouds [0..1].
        unmet_energy_penalty_eur_per_kwh: Penalty written into generated scenarios [EUR/kWh].
    """

    template_id: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    description: str = Field(min_length=1)
    site: SiteSpec
    session_groups: list[SessionGroup] = Field(min_length=1)
    base_load: BaseLoadSpec
    prices: PriceRule = PriceRule()
    step_min: int = Field(default=15, gt=0, le=60)
    cloudiness_frac: float = Field(default=0.3, ge=0, le=1)
    unmet_energy_penalty_eur_per_kwh: float = Field(default=2.0, ge=0)


def check_template(template: SiteTemplate) -> list[FieldProblem]:
    """Cross-field problems of a template: its site's, unknown stations, the 'illustrative' label."""
    problems: list[FieldProblem] = check_site(template.site)
    if template.site.tariff.time_of_use is not None:
        problems.append(
            FieldProblem(
                "site.tariff.time_of_use",
                "time-of-use blocks",
                "no time-of-use blocks in a template (its prices come from the price rule)",
            )
        )
    stations = {c.station_id for c in template.site.chargers}
    for g, group in enumerate(template.session_groups):
        for s, station in enumerate(group.station_ids):
            if station not in stations:
                problems.append(
                    FieldProblem(
                        f"session_groups[{g}].station_ids[{s}]",
                        render_value(station),
                        f"a station_id of site.chargers ({', '.join(sorted(stations))})",
                    )
                )
    if "illustrative" not in template.description.lower():
        problems.append(
            FieldProblem(
                "description", render_value(template.description[:40]), "a text that says 'illustrative'"
            )
        )
    if 60 % template.step_min:
        problems.append(FieldProblem("step_min", str(template.step_min), "a step that divides an hour"))
    return problems


def load_template(source: str | Path) -> SiteTemplate:
    """Load a template by built-in name or from a YAML file.

    Args:
        source: A name from :func:`template_names` or a path to a ``.yaml`` file.

    Returns:
        The validated template.

    Raises:
        ScenarioError: For an unknown name, an unreadable file or an invalid template.
    """
    names = template_names()
    if isinstance(source, str) and source in names:
        where = source
        text = (resources.files(TEMPLATES_PACKAGE) / f"{source}.yaml").read_text(encoding="utf-8")
        data = parse_data_text(text, ".yaml", where)
    else:
        path = Path(source)
        if not path.is_file():
            raise ScenarioError(
                [
                    FieldProblem(
                        "site",
                        render_path(source),
                        f"a template name ({', '.join(names)}) or a YAML file",
                    )
                ]
            )
        where = str(path)
        data = read_data_file(path)
    try:
        template = SiteTemplate.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(problems_from_pydantic(exc.errors()), where) from None
    problems = check_template(template)
    if problems:
        raise ScenarioError(problems, where)
    return template


def template_names() -> list[str]:
    """Names of the built-in pilot templates."""
    root = resources.files(TEMPLATES_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))
