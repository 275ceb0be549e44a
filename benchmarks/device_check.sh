#!/usr/bin/env bash
# One prepared run on a machine with a CUDA GPU: simulation, inference (fp32/bf16), refine and training
# throughput, then the shipped model trained further for --minutes and evaluated on the seeded test set.
# Every result goes under --out (device_check.json and .md, train/, evaluation/). See device_check.py.
#
#   bash benchmarks/device_check.sh --out device_results --minutes 6
#   bash benchmarks/device_check.sh --tiny --device cpu --out /tmp/check   # seconds, for the test
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
if [[ -x "$here/../.venv/bin/python" && -z "${PYTHON:-}" ]]; then python="$here/../.venv/bin/python"; fi
exec "$python" "$here/device_check.py" "$@"
