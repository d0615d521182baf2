"""Model references: a folder path, or ``NAME@ALIAS`` resolved under ``models/policies``.

Versions of a policy live side by side in ``models/policies/<name>/<version>/`` (``policy.onnx``
and ``metadata.json``). ``models/policies/<name>/ALIASES.json`` maps aliases to version folders,
e.g. ``{"champion": "v2", "previous": "v1"}``; an installed wheel carries the folder of each
family it ships as ``smac_rl_serve/policies/<name>/``. Serving ``NAME@ALIAS`` serves the folder the alias
names; ``NAME@VERSION`` serves a version folder directly. Rolling back is editing ALIASES.json (or
naming the older version) and restarting the service.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from smac_rl_serve.model import ModelError

REPOSITORY_MODELS_ROOT = Path(__file__).resolve().parents[2] / "models" / "policies"
"""The repository's policy folders (``models/policies``), for a checkout or an editable install."""

PACKAGED_MODELS_ROOT = Path(__file__).resolve().parent / "policies"
"""Where an installed wheel carries them: ``pyproject.toml`` force-includes each policy family
``models/policies/NAME`` (its ``ALIASES.json`` and version folders) as ``smac_rl_serve/policies/NAME``."""


def models_root(
    repository_root: Path = REPOSITORY_MODELS_ROOT, packaged_root: Path = PACKAGED_MODELS_ROOT
) -> Path:
    """The folders ``NAME@ALIAS`` is resolved under: the repository's if there is one, else the wheel's."""
    return repository_root if repository_root.is_dir() else packaged_root


MODELS_ROOT = models_root()
"""The policy folders of this installation (:func:`models_root`)."""

ALIASES_FILE = "ALIASES.json"
"""The alias file of a policy name: ``{alias: version folder}``."""

_PART = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}"
REFERENCE_PATTERN = re.compile(rf"({_PART})@({_PART})")
"""``NAME@ALIAS``: letters, digits, ``_``, ``-`` and ``.`` (not leading) on both sides."""


def resolve_model_dir(reference: str | Path, root: Path = MODELS_ROOT) -> Path:
    """The model folder a reference names.

    An existing path, or anything that is not ``NAME@ALIAS``, is a folder path and is returned as
    it is (the model check reports a missing folder). ``NAME@ALIAS`` looks ``ALIAS`` up in
    ``root/NAME/ALIASES.json``, then falls back to a version folder ``root/NAME/ALIAS``.

    Args:
        reference: A folder path or ``NAME@ALIAS``.
        root: The folder holding one folder per policy name.

    Returns:
        The model folder.

    Raises:
        ModelError: When the alias file is malformed, or names neither an alias nor a version.
    """
    text = str(reference)
    match = REFERENCE_PATTERN.fullmatch(text)
    if match is None or Path(text).exists():
        return Path(reference)
    name, alias = match.groups()
    family = root / name
    aliases_path = family / ALIASES_FILE
    aliases = _read_aliases(aliases_path) if aliases_path.is_file() else {}
    version = aliases.get(alias)
    if version is None:
        if (family / alias).is_dir():
            return family / alias
        known = sorted(aliases) + sorted(p.name for p in family.glob("*") if p.is_dir())
        raise ModelError(
            f"model: {text!r} names no alias in {aliases_path} and no version folder in {family}; "
            f"expected one of {known}" + ("" if family.is_dir() else f" ({family} does not exist)")
        )
    return family / version


def _read_aliases(path: Path) -> dict[str, str]:
    """The alias -> version map of an ``ALIASES.json``.

    Raises:
        ModelError: When it is not a JSON object of aliases to plain version folder names.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"model: {path} is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"model: {path} is a {type(raw).__name__}; expected an object of alias -> version")
    for alias, version in raw.items():
        if not isinstance(version, str) or not re.fullmatch(_PART, version):
            raise ModelError(
                f"model: {path} field {alias} is {version!r}; expected a version folder name "
                f"beside it (letters, digits, _, -, .)"
            )
    return {str(alias): str(version) for alias, version in raw.items()}
