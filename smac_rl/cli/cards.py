"""Model cards: written by ``smac export``, scored again by ``smac card`` after a physics change."""

from __future__ import annotations

import re
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smac_rl.cli.common import console, fail
from smac_rl.core.errors import SmacError

if TYPE_CHECKING:
    from smac_rl.agents.config import TrainConfig
    from smac_rl.core.artifacts import PolicyMetadata

CARD_NAME = "MODEL_CARD.md"
_REGISTRY = re.compile(r", registry (`[^`\n]+` v\d+ \([^)\n]*\))\.$", re.MULTILINE)
_REPRODUCE = re.compile(r"^## Reproduce\n```bash\n(.*?)\n```", re.MULTILINE | re.DOTALL)
_CARD_COMMAND = ("smac card ", "# scored again")


def invoked_command() -> str:
    """The ``smac`` command line this process runs, shell-quoted."""
    return "smac " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def write_card(
    target: Path,
    config: TrainConfig,
    metadata: PolicyMetadata,
    registry: str | None,
    commands: list[str],
    trained_decoding: dict[str, float | bool | None],
    tail: str = "",
) -> None:
    """Score the exported ONNX policy (as served) on the selection and test days, write the card.

    Args:
        target: The export folder (policy.onnx, metadata.json); the card is written into it.
        config: The training config, with the served decoding options.
        metadata: The export's metadata.
        registry: Where the policy came from in the MLflow registry, if it did.
        commands: The card's reproduce block, in order.
        trained_decoding: The decoding options the export changed, with training's values.
        tail: Text kept after the generated card (sections written by hand after the export).
    """
    from smac_rl.agents.evaluation import HEURISTIC_BASELINES, day_set, heuristic_factory
    from smac_rl.agents.reports import CardInputs, model_card
    from smac_rl.cli.policies import resolve_policy
    from smac_rl.optimal.protocol import PolicyFactory, evaluate_days

    label = f"{target.parent.name}/{target.name}"
    factories: dict[str, PolicyFactory] = {name: heuristic_factory(name) for name in HEURISTIC_BASELINES}
    factories[label] = partial(resolve_policy, str(target))
    results = {}
    for split in ("selection", "test"):
        console.print(f"scoring {label} on the {split} days ...", highlight=False)
        try:
            results[split] = evaluate_days(day_set(config, split), factories, config.eval_time_limit_s)
        except SmacError as exc:
            raise fail(str(exc)) from None
    inputs = CardInputs(
        target.parent.name,
        target.name,
        config,
        metadata,
        label,
        results["selection"],
        results["test"],
        commands,
        registry,
        trained_decoding,
    )
    (target / CARD_NAME).write_text(model_card(inputs) + tail, encoding="utf-8")
    console.print(f"wrote {target / CARD_NAME}", highlight=False)


def card_command(
    policy_dir: Annotated[
        Path,
        typer.Argument(help="An export folder (policy.onnx, metadata.json), e.g. models/policies/NAME/vN."),
    ],
    config: Annotated[
        Path,
        typer.Option(help="The experiment config the policy was trained with (its smac train --config)."),
    ],
    decoding: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE: a decoding option the export changed (`smac export --decoding`); repeatable."
        ),
    ] = None,
) -> None:
    """Score an exported policy again and rewrite its MODEL_CARD.md.

    For a change to the physics, the projection or the scorer after the export: the graph is the
    exported one, the days and time limit come from CONFIG, and the export's metadata must match
    CONFIG (template, observation, actions and decoding options with the --decoding changes). The
    registry line, the reproduce commands and any sections after them (written by hand) of the
    card there are kept, this command added to the commands.
    """
    from pydantic import ValidationError

    from smac_rl.agents.provenance import git_sha
    from smac_rl.cli.agents import decoding_changes, read_train_config, with_decoding
    from smac_rl.core.artifacts import PolicyMetadata

    metadata_path = policy_dir / "metadata.json"
    if not (policy_dir / "policy.onnx").is_file() or not metadata_path.is_file():
        raise fail(
            f"policy_dir: got {str(policy_dir)!r}; expected a folder with policy.onnx and metadata.json"
        )
    try:
        metadata = PolicyMetadata.model_validate_json(metadata_path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        problems = f"{where}: {first['msg']}; {exc.error_count()} error(s) in all"
        raise fail(f"policy_dir: {metadata_path} is not valid policy metadata ({problems})") from None
    changes = decoding_changes(decoding or [])
    trained = read_train_config(config, {})
    trained_decoding = {
        name: getattr(trained, name) for name in changes if getattr(trained, name) != changes[name]
    }
    served = with_decoding(trained, changes) if trained_decoding else trained
    _check_matches(served, metadata)
    old_card = policy_dir / CARD_NAME
    text = old_card.read_text(encoding="utf-8") if old_card.is_file() else ""
    found = _REGISTRY.search(text)
    reproduce = _REPRODUCE.search(text)
    kept = [] if reproduce is None else reproduce.group(1).splitlines()
    commands = [line for line in kept if not line.startswith(_CARD_COMMAND)]
    this = ["smac", "card", str(policy_dir), "--config", str(config)]
    for value in decoding or []:
        this += ["--decoding", value]
    commands += [f"# scored again at git {git_sha()[:12]} by:", " ".join(shlex.quote(a) for a in this)]
    tail = "" if reproduce is None else text[reproduce.end() :].removeprefix("\n")
    registry = found.group(1) if found else None
    write_card(policy_dir, served, metadata, registry, commands, trained_decoding, tail)


def _check_matches(config: TrainConfig, metadata: PolicyMetadata) -> None:
    """Exit naming the first field where the export's metadata and the config's layout differ."""
    from smac_rl.core.artifacts import action_names, layout_entries

    layout = config.layout()
    expected: dict[str, object] = {
        "template": config.template,
        "observation": layout_entries(layout),
        "action": action_names(layout),
        **layout.options(),
    }
    for name, value in expected.items():
        got = getattr(metadata, name)
        if got != value:
            raise fail(
                f"config: the export's metadata has {name} {_shown(got)}, the config (with --decoding) "
                f"gives {_shown(value)}; expected the config the policy was trained with and the "
                "export's --decoding options"
            )


def _shown(value: object) -> str:
    return f"of {len(value)} entries" if isinstance(value, list) else repr(value)
