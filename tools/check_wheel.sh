#!/usr/bin/env bash
# The package as users get it: a wheel built from this tree, installed (not editable) into a fresh venv,
# runs `lensnet demo` with the shipped weights and examples it carries. The venv borrows the dependencies of
# .venv (a path, so .venv's own editable lensnet is not seen) instead of downloading them again.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" .
wheel="$(ls "$work"/dist/lensnet-*.whl)"
.venv/bin/python -c "import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist()
assert any(n.endswith('dist-info/licenses/LICENSE') for n in names), 'LICENSE missing from the wheel'" "$wheel"
.venv/bin/python -m venv "$work/venv"
deps="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$deps" > "$site/lensnet_dependencies.pth"
"$work/venv/bin/python" -m pip install --quiet --no-deps --no-index "$wheel"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import lensnet, sys
assert lensnet.__file__.startswith(sys.prefix), f"lensnet imported from {lensnet.__file__}, not the wheel"
print(f"lensnet {lensnet.__version__} from {lensnet.__file__}")
PY
"$work/venv/bin/lensnet" demo --num 2 --output "$work/demo.png"
test -s "$work/demo.png"
echo "wheel $(basename "$wheel"): installed into a fresh venv, lensnet demo ran"
