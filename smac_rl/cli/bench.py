"""``smac bench``: speed benchmarks that measure a baseline in the same run and print ratios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from smac_rl.cli.common import console, fail, print_table, write_output
from smac_rl.core.errors import SmacError

if TYPE_CHECKING:
    from smac_rl.optimal.solve import Builder

bench_app = typer.Typer(
    rich_markup_mode=None,
    help="Speed benchmarks (ratios against a baseline run in the same process).",
    no_args_is_help=True,
)


@bench_app.command("env")
def bench_env(
    episodes: Annotated[int, typer.Option(min=1, help="Single-env episodes per figure.")] = 20,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows of the batched env.")] = 1024,
    batched_episodes: Annotated[int, typer.Option(min=1, help="Episodes per row in the batched run.")] = 2,
    peer: Annotated[bool, typer.Option(help="Run the EV2Gym peer in the same run.")] = True,
    peer_python: Annotated[
        Path, typer.Option(help="Python of the peer's environment (benchmarks/ev2gym_peer/setup.sh).")
    ] = Path(".bench/ev2gym-venv/bin/python"),
    peer_script: Annotated[Path, typer.Option(help="The peer's runner.")] = Path(
        "benchmarks/ev2gym_peer/run_peer.py"
    ),
    output: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Single and batched env speed on the 25-connector benchmark site, against EV2Gym 2.0.0."""
    from smac_rl.bench.env_speed import measure_env, pin_one_core, report, run_peer

    pin_one_core()
    try:
        peer_figures = run_peer(peer_python, peer_script, episodes) if peer else None
    except SmacError as exc:
        raise fail(str(exc)) from None
    console.print(f"measuring smac-rl: {episodes} episodes single, B = {batch_size} batched ...")
    ours = measure_env(episodes, batch_size, batched_episodes)
    result = report(ours, peer_figures)
    table = Table(title="Env speed, one core (connector-steps/s = steps/s x connectors)")
    table.add_column("figure")
    table.add_column("smac-rl", justify="right")
    table.add_column("EV2Gym 2.0.0", justify="right")
    table.add_column("ratio", justify="right")
    c = ours.n_connectors
    rows = [
        (
            "single env, step only [conn-steps/s]",
            ours.single_step_only_steps_per_s * c,
            "step_only_connector_steps_per_s",
            "single_step_only",
        ),
        (
            "single env, episodes, fixed scenario [conn-steps/s]",
            ours.single_episode_fixed_steps_per_s * c,
            "episode_connector_steps_per_s",
            "single_episode_fixed",
        ),
        (
            "single env, episodes, new day per reset [conn-steps/s]",
            ours.single_episode_generated_steps_per_s * c,
            "episode_connector_steps_per_s",
            "single_episode_generated",
        ),
        (
            f"batched env B={ours.batch_size}, episodes [conn-steps/s]",
            ours.batched_connector_steps_per_s,
            "step_only_connector_steps_per_s",
            "batched",
        ),
    ]
    ratio = result.get("ratios_per_connector_step", {})
    for label, value, peer_key, ratio_key in rows:
        peer_value = "" if peer_figures is None else f"{float(peer_figures[peer_key]):,.0f}"
        shown = "" if not ratio else f"{ratio[ratio_key]:.1f}x"
        table.add_row(escape(label), f"{value:,.0f}", peer_value, shown)
    table.add_row(escape("batched memory per site [KB]"), f"{ours.batched_bytes_per_site / 1000:.1f}", "", "")
    print_table(table)
    text = json.dumps(result, indent=2)
    console.print_json(text)
    if output is not None:
        write_output(output, text + "\n")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


@bench_app.command("optimal")
def bench_optimal(
    sizes: Annotated[str, typer.Option(help="Session counts N, comma-separated.")] = "10,50,200",
    time_limit_s: Annotated[
        float, typer.Option("--time-limit-s", min=1.0, help="Solver time limit per solve [s].")
    ] = 120.0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the generated scenarios.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
    builder: Annotated[
        str,
        typer.Option(help="How the optimum is built: assemble (arrays, the default) or pyomo (the model)."),
    ] = "assemble",
) -> None:
    """Where the optimum's time goes at N sessions, positive and negative prices, one thread."""
    if builder not in ("assemble", "pyomo"):
        raise fail(f"builder: got {builder!r}; expected assemble or pyomo")
    chosen: Builder = "pyomo" if builder == "pyomo" else "assemble"
    try:
        counts = [int(part) for part in sizes.split(",") if part.strip()]
    except ValueError:
        raise fail(f"sizes: got {sizes!r}; expected whole numbers separated by commas (10,50,200)") from None
    if not counts or min(counts) < 1:
        raise fail(f"sizes: got {sizes!r}; expected at least one session count, each >= 1")
    try:
        from smac_rl.bench.env_speed import pin_one_core
        from smac_rl.bench.optimal_speed import OptimalSpeed, measure_optimal, report
    except ImportError as exc:
        raise fail(
            f"bench optimal needs the [data] and [milp] extras ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[data,milp]'"
        ) from None

    def progress(record: OptimalSpeed) -> None:
        console.print(
            f"N = {record.n_sessions}, {record.price_case} prices: {record.status} in {record.total_s:.2f} s"
        )

    pin_one_core()
    console.print(
        f"measuring the optimum at N = {', '.join(map(str, counts))}, time limit {time_limit_s:g} s "
        f"per solve, built by {chosen}"
    )
    try:
        records = measure_optimal(counts, time_limit_s, seed, progress, chosen)
    except SmacError as exc:
        raise fail(str(exc)) from None
    table = Table(
        title="Optimum's time on one thread (HiGHS threads=1, one core), 96 steps of 15 min. Target at "
        "N = 200: proven optimal, gap <= 1e-4, total s <= target s. LP gap: (MIP - LP objective) / |MIP|"
    )
    for name in (
        "N",
        "prices",
        "binaries",
        "build s",
        "solve s",
        "compile s",
        "replay s",
        "total s",
        "status",
        "gap",
        "LP s",
        "LP gap",
        "target s",
        "met",
    ):
        table.add_column(name, justify="left" if name in ("prices", "status", "met") else "right")
    for r in records:
        target = "-" if r.target_total_s is None else f"{r.target_total_s:g}"
        met = "-" if r.is_target_met is None else ("yes" if r.is_target_met else "no")
        table.add_row(
            str(r.n_sessions),
            r.price_case,
            str(r.n_binaries),
            _seconds(r.build_s),
            _seconds(r.solve_s),
            _seconds(r.compile_s),
            _seconds(r.replay_score_s),
            _seconds(r.total_s),
            r.status,
            _fraction(r.mip_gap_frac),
            _seconds(r.lp_solve_s),
            _fraction(r.lp_objective_gap_frac),
            target,
            met,
        )
    print_table(table)
    text = json.dumps(report(records, time_limit_s, seed, chosen), indent=2)
    console.print_json(text)
    if output is not None:
        write_output(output, text + "\n")


def _ms(value_s: float) -> str:
    return "-" if value_s != value_s else f"{value_s * 1000:.1f}"  # NaN: no 2xx answer


@bench_app.command("serve")
def bench_serve(
    rate: Annotated[float, typer.Option(min=0.1, help="Requests per second of each phase.")] = 50.0,
    duration_s: Annotated[
        float, typer.Option("--duration-s", min=0.1, help="Length of each phase [s].")
    ] = 60.0,
    sessions: Annotated[int, typer.Option(min=1, help="Sessions of the large site (and the MPC's).")] = 50,
    onnx_sessions: Annotated[
        int, typer.Option(min=1, help="Sessions of the site the ONNX policy answers (<= its connectors).")
    ] = 16,
    connections: Annotated[int, typer.Option(min=1, help="Connections of the load generator.")] = 8,
    mpc_repetitions: Annotated[int, typer.Option(min=0, help="MPC steps timed; 0 skips the MPC.")] = 3,
    output: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """The service's latency under an open-loop load (one uvicorn worker), against the MPC's step."""
    try:
        from smac_rl.bench.serve_speed import (
            TARGET_EVENT_P50_S,
            TARGET_PROFILES_P50_S,
            TARGET_PROFILES_P99_S,
            measure_serve,
            report,
            targets_met,
        )

        record = measure_serve(
            rate_per_s=rate,
            duration_s=duration_s,
            n_sessions=sessions,
            n_onnx_sessions=onnx_sessions,
            n_connections=connections,
            n_mpc_repetitions=mpc_repetitions,
            progress=console.print,
        )
    except ImportError as exc:
        raise fail(
            f"bench serve needs the [serve] and [milp] extras ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[serve,milp]'"
        ) from None
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    met = targets_met(record)
    table = Table(
        title=f"Service latency, open loop at {rate:g} requests/s for {duration_s:g} s per phase, "
        f"one uvicorn worker on core {record.server_core_ids}, load on core {record.client_core_ids}; "
        "latency from each request's due time [ms]"
    )
    for name in (
        "phase",
        "sessions",
        "answered by",
        "p50",
        "p99",
        "max",
        "service p50",
        "unloaded p50",
        "errors",
        "throughput [1/s]",
        "target",
        "met",
        "load avg",
    ):
        table.add_column(
            name, justify="left" if name in ("phase", "answered by", "target", "met") else "right"
        )
    for phase in record.phases:
        if phase.phase_name.startswith("profiles"):
            target = (
                f"p50 <= {TARGET_PROFILES_P50_S * 1000:g}, p99 <= {TARGET_PROFILES_P99_S * 1000:g}, 0 errors"
            )
        else:
            target = f"p50 <= {TARGET_EVENT_P50_S * 1000:g}"
        answered = phase.policy_name + (" (fallback)" if phase.fallback_reason else "")
        errors = str(phase.n_errors) + (f" {phase.n_errors_by_name}" if phase.n_errors_by_name else "")
        table.add_row(
            phase.phase_name,
            str(phase.n_sessions),
            answered,
            _ms(phase.p50_s),
            _ms(phase.p99_s),
            _ms(phase.max_s),
            _ms(phase.service_p50_s),
            _ms(phase.unloaded_p50_s),
            escape(errors),
            f"{phase.throughput_per_s:.1f}",
            target,
            "yes" if met[phase.phase_name] else "no",
            f"{phase.n_load_average:.2f}",
        )
    if record.mpc is not None:
        ratio, unloaded = record.mpc_over_service_p50_frac, record.mpc_over_unloaded_p50_frac
        table.add_row(
            "MPC step (in process)",
            str(record.mpc.n_sessions),
            "mpc_perfect",
            _ms(record.mpc.step_s),
            "",
            _ms(record.mpc.step_max_s),
            "",
            "",
            "",
            "",
            ("-" if ratio is None else f"MPC / service p50 = {ratio:.2f}x")
            + ("" if unloaded is None else f"; MPC / unloaded p50 = {unloaded:.2f}x"),
            "",
            "",
        )
    print_table(table)
    text = json.dumps(report(record), indent=2)
    console.print_json(text)
    if output is not None:
        write_output(output, text + "\n")


@bench_app.command("forecast-value")
def bench_forecast_value(
    template: Annotated[str, typer.Option(help="Pilot template name or YAML file (objective cost).")] = (
        "turku_ultrafast_hub"
    ),
    first_day: Annotated[
        str, typer.Option(help="First local day (YYYY-MM-DD), after the price model's training (2024).")
    ] = "2024-04-15",
    days: Annotated[int, typer.Option(min=1, help="Consecutive days.")] = 5,
    seeds: Annotated[int, typer.Option(min=1, help="Generator seeds per day (0 .. K-1).")] = 1,
    horizon_h: Annotated[
        float, typer.Option("--horizon-h", min=0.25, help="MPC window [h], cut at the day's end.")
    ] = 24.0,
    price_model: Annotated[
        Path, typer.Option(help="Exported LightGBM price forecaster (metadata.json, q10/q50/q90.onnx).")
    ] = Path("models/forecasters/nl_day_ahead_prices/v1"),
    time_limit_s: Annotated[
        float, typer.Option("--time-limit-s", min=1.0, help="The oracle's time limit per day [s].")
    ] = 60.0,
    output: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
) -> None:
    """The value of forecasting: MPC with perfect, LightGBM (q50) and seasonal-naive price forecasts.

    On the same generated days: uncontrolled, the three MPCs and the perfect-foresight optimum, with
    total cost and savings capture (median and pooled, as smac evaluate --template reports them).
    """
    import datetime as dt

    try:
        start = dt.date.fromisoformat(first_day)
    except ValueError:
        raise fail(f"first-day: got {first_day!r}; expected a day as YYYY-MM-DD") from None
    extras = (
        "bench forecast-value needs the [data], [milp], [forecast] and [serve] extras ({name} is missing): "
        "pip install -c constraints.txt -e '.[data,milp,forecast,serve]'"
    )
    try:
        from smac_rl.bench.forecast_value import METHODS, method_summary, report, run_forecast_value
    except ImportError as exc:
        raise fail(extras.format(name=exc.name)) from None
    console.print(
        f"{template}: {days} day(s) x {seeds} seed(s) from {start}, MPC window {horizon_h:g} h "
        "(cut at the day's end)",
        highlight=False,
    )
    try:
        result = run_forecast_value(
            template, start, days, seeds, horizon_h, price_model, time_limit_s, console.print
        )
    except ImportError as exc:
        raise fail(extras.format(name=exc.name)) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    summary = method_summary(result)
    table = Table(
        title=f"Value of forecasting, {template}: {days} day(s) x {seeds} seed(s) from {start}, objective "
        f"cost; MPC window {horizon_h:g} h cut at the day's end; prices forecast from each step's hour on "
        "(other series perfect, sessions known at arrival)"
    )
    for header in (
        "method",
        "total cost [EUR]",
        "median capture",
        "pooled capture",
        "excluded days",
        "mean unmet [kWh]",
        "price MAE [EUR/kWh]",
        "MPC step [s]",
    ):
        table.add_column(escape(header), justify="left" if header == "method" else "right")

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    for name in METHODS:
        row = summary[name]
        mae, step_s = row["price_mae_eur_per_kwh"], row["mpc_step_median_s"]
        table.add_row(
            name,
            f"{row['total_cost_sum_eur']:.2f}",
            pct(row["savings_capture_median_frac"]),
            pct(row["savings_capture_pooled_frac"]),
            str(row["n_days_excluded"]),
            f"{row['unmet_energy_mean_kwh']:.2f}",
            "-" if mae is None else f"{mae:.4f}",
            "-" if step_s is None else f"{step_s:.2f}",
        )
    print_table(table)
    proven = summary["optimal"]["n_optimum_proven"]
    console.print(f"optimum proven optimal on {proven} of {days * seeds} day(s)", highlight=False)
    if output is not None:
        write_output(output, json.dumps(report(result), indent=2) + "\n")
        console.print(f"wrote {output}", highlight=False)
