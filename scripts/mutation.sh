#!/usr/bin/env bash
# Mutation testing: scripts/mutation.sh [module ...] [--sample N] [--seed S] [--budget SECONDS]
# Modules: dotted names below mentorpay, e.g. money ledger.rules webhooks.processor (default: all;
# see MODULE_TESTS in scripts/mutation.py). Runs at low CPU priority; see
# scripts/mutation.py for how it works and README.md ("Mutation testing") for the goals.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
if [ -z "${PYTHON:-}" ] && [ -n "${VIRTUAL_ENV:-}" ]; then python="$VIRTUAL_ENV/bin/python"; fi
exec nice -n 10 "$python" scripts/mutation.py "$@"
