"""An installed wheel carries each served policy family whole, so ``NAME@ALIAS`` resolves there too.

``pyproject.toml`` force-includes ``models/policies/NAME`` (``ALIASES.json`` and the version
folders) as ``smac_rl_serve/policies/NAME``; outside a checkout :func:`models_root` answers that
folder. The wheel used to carry only ``default/v1`` (as ``smac_rl_serve/default_policy``), without
the alias file: ``smac serve --model default@champion`` failed on a non-editable install.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import smac_rl_serve
from smac_rl_serve import settings as settings_module
from smac_rl_serve.catalog import (
    ALIASES_FILE,
    PACKAGED_MODELS_ROOT,
    REPOSITORY_MODELS_ROOT,
    models_root,
    resolve_model_dir,
)
from smac_rl_serve.forecasters import OnnxArrivalsForecaster, OnnxPriceForecaster
from smac_rl_serve.model import OnnxPolicy
from smac_rl_serve.session_forecaster import OnnxSessionNeedsForecaster

REPOSITORY = Path(__file__).resolve().parents[2]


def _force_include() -> dict[str, str]:
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    return mapping


def test_the_wheel_carries_every_aliased_policy_family_where_the_catalog_looks() -> None:
    package = Path(smac_rl_serve.__file__).resolve().parent
    assert package / "policies" == PACKAGED_MODELS_ROOT
    assert REPOSITORY_MODELS_ROOT == REPOSITORY / "models" / "policies"
    mapping = _force_include()
    families = sorted(p.parent.name for p in REPOSITORY_MODELS_ROOT.glob(f"*/{ALIASES_FILE}"))
    assert "default" in families
    for name in families:
        assert mapping.get(f"models/policies/{name}") == f"smac_rl_serve/policies/{name}", name
    # The default model folder of an installed wheel is inside the packaged default family.
    assert settings_module._WHEEL_MODEL_DIR == PACKAGED_MODELS_ROOT / "default" / "v1"


def test_models_root_is_the_checkouts_else_the_wheels(tmp_path: Path) -> None:
    checkout, wheel = tmp_path / "checkout" / "models" / "policies", tmp_path / "site" / "policies"
    wheel.mkdir(parents=True)
    assert models_root(checkout, wheel) == wheel  # installed: no models/ beside the package
    checkout.mkdir(parents=True)
    assert models_root(checkout, wheel) == checkout


def test_default_at_champion_resolves_and_loads_in_the_wheels_layout(tmp_path: Path) -> None:
    # Lay the force-included folders out as the wheel does, under a site-packages of our own.
    site_packages = tmp_path / "site-packages"
    for source, target in _force_include().items():
        shutil.copytree(REPOSITORY / source, site_packages / target)
    root = models_root(tmp_path / "no-checkout", site_packages / "smac_rl_serve" / "policies")
    folder = resolve_model_dir("default@champion", root)
    assert folder == site_packages / "smac_rl_serve" / "policies" / "default" / "v1"  # ALIASES: champion v1
    assert OnnxPolicy(folder).metadata.n_connectors_max == 16


def test_the_wheel_carries_the_forecasters_where_the_settings_look(tmp_path: Path) -> None:
    mapping = _force_include()
    package = Path(smac_rl_serve.__file__).resolve().parent
    wheel_dirs = {
        "nl_day_ahead_prices": settings_module._WHEEL_PRICE_FORECASTER_DIR,
        "caltech_session_needs": settings_module._WHEEL_SESSION_FORECASTER_DIR,
        "caltech_arrivals": settings_module._WHEEL_ARRIVALS_FORECASTER_DIR,
    }
    for name, wheel_dir in wheel_dirs.items():
        assert package.parent / mapping[f"models/forecasters/{name}/v1"] == wheel_dir, name
    # Laid out as the wheel does, each folder loads and passes its start checks.
    site_packages = tmp_path / "site-packages"
    for name in wheel_dirs:
        target = mapping[f"models/forecasters/{name}/v1"]
        shutil.copytree(REPOSITORY / "models" / "forecasters" / name / "v1", site_packages / target)
    forecasters = site_packages / "smac_rl_serve" / "forecaster_models"
    price_dir = settings_module.default_forecaster_dir(
        tmp_path / "no-checkout", forecasters / "nl_day_ahead_prices" / "v1"
    )
    session_dir = settings_module.default_forecaster_dir(
        tmp_path / "no-checkout", forecasters / "caltech_session_needs" / "v1"
    )
    arrivals_dir = settings_module.default_forecaster_dir(
        tmp_path / "no-checkout", forecasters / "caltech_arrivals" / "v1"
    )
    assert price_dir is not None
    assert session_dir is not None
    assert arrivals_dir is not None
    assert OnnxPriceForecaster(price_dir).name == "nl_day_ahead_prices"
    assert OnnxSessionNeedsForecaster(session_dir).name == "caltech_session_needs"
    assert OnnxArrivalsForecaster(arrivals_dir).name == "caltech_arrivals"
