#!/usr/bin/env bash
# Creates the side virtual environment that runs the EV2Gym 2.0.0 peer benchmark.
#
# Usage (from anywhere; paths resolve against the repo root):
#   bash benchmarks/ev2gym_peer/setup.sh
#   EV2GYM_VENV=/some/where bash benchmarks/ev2gym_peer/setup.sh
#
# EV2GYM_VENV defaults to .bench/ev2gym-venv (relative to the repo root; .bench/ is git-ignored).
# Re-running is quick: a stamp file records the requirement set that was installed, and nothing is
# reinstalled while it matches and the imports still work.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

venv="${EV2GYM_VENV:-.bench/ev2gym-venv}"
constraints="${repo_root}/constraints.txt"
python_bin="${PYTHON:-python3.11}"

# ev2gym 2.0.0 declares gymnasium, pyyaml, matplotlib, pandas, networkx and gurobipy, but its modules
# also import pandapower, numba, psutil and multicopula at import time, and pkg_resources (gone from
# setuptools 81). The undeclared ones, and the numeric stack the timings depend on, are pinned to
# a set known to import and run (resolved and checked on Python 3.11, linux x86_64).
requirements=(
    "ev2gym==2.0.0"
    "setuptools<81"
    "pandapower==3.5.6"
    "numba==0.68.1"
    "psutil==7.2.2"
    "multicopula==0.0.2"
    "numpy==2.4.6"
    "pandas==2.3.3"
    "gymnasium==1.4.0"
)

stamp="${venv}/.ev2gym-peer-stamp"
want="$(printf '%s\n' "${requirements[@]}" | sha256sum | cut -d' ' -f1)"

import_check() {
    "${venv}/bin/python" - <<'PY'
import importlib.metadata as md
import warnings

warnings.filterwarnings("ignore")
import ev2gym.models.ev2gym_env  # noqa: F401  (pulls pandapower, numba, psutil, multicopula)

assert md.version("ev2gym") == "2.0.0", md.version("ev2gym")
PY
}

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]] && import_check 2>/dev/null; then
    echo "ev2gym peer venv already set up at ${venv}"
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "creating ${venv} with ${python_bin}"
    mkdir -p "$(dirname "${venv}")"
    "${python_bin}" -m venv "${venv}"
fi

# Every install goes through constraints.txt: if anything in the tree wants torch it must be the
# local CPU wheel (torch==2.13.0), never a CUDA build fetched from the index.
"${venv}/bin/python" -m pip install --quiet -c "${constraints}" --upgrade pip "setuptools<81" wheel
"${venv}/bin/python" -m pip install --quiet -c "${constraints}" "${requirements[@]}"

import_check
printf '%s\n' "${want}" >"${stamp}"
echo "ev2gym peer venv ready at ${venv}"
