#!/usr/bin/env bash
# Create the virtual environment and install av-pipeline with everything it needs
# (every extra and the test tools), at the exact versions of constraints.txt.
# Usage: scripts/bootstrap.sh [VENV_DIR]   (default .venv)
# Idempotent: a second run only re-installs the package itself.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"

say() { printf '[bootstrap] %s\n' "$*" >&2; }

"$python" - <<'PY' || { say "Python >= 3.10 is required (found $($python --version 2>&1))."; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

# open3d loads libusb-1.0 at import time; it is a Debian package, not a wheel.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  say "libusb-1.0-0 (needed by open3d) is missing; installing it with apt-get."
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1; } \
      || { say "ERROR: 'apt-get install -y libusb-1.0-0' failed. Install it by hand, then re-run."; exit 1; }
  else
    say "ERROR: cannot install libusb-1.0-0 (need root and apt-get). Run as root:"
    say "    apt-get install -y libusb-1.0-0"
    say "or install your distribution's libusb 1.0 runtime, then re-run."
    exit 1
  fi
fi

# The report's browser test (tests/av_pipeline/test_report_browser.py) drives Debian's headless
# Chromium through its matching chromedriver. Optional: without them only that test skips.
if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  say "chromium and chromium-driver (for the report's browser test) are missing; installing them with apt-get."
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
      || say "WARNING: 'apt-get install -y chromium chromium-driver' failed; the report's browser test will skip. Install them by hand to run it."
  else
    say "WARNING: cannot install chromium (need root and apt-get); the report's browser test will skip. To run it, as root:"
    say "    apt-get install -y chromium chromium-driver"
    say "(Debian's packages: the driver must match the browser's version)."
  fi
fi

# The Spark driver (`avp run --engine spark`, its tests) needs a Java runtime; pyspark 3.5 runs on
# Java 8, 11 or 17. Optional: without Java the Spark tests skip and everything else works.
if command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ]; then
  say "Java found ($(java -version 2>&1 | head -n 1)): the Spark driver can run"
else
  say "WARNING: no Java runtime (java not on PATH, JAVA_HOME unset): 'avp run --engine spark' and its tests"
  say "will not run (they skip). To enable them install Java 17, e.g. as root on Debian/Ubuntu:"
  say "    apt-get install -y openjdk-17-jre-headless"
  say "(elsewhere: any Java 17 runtime, e.g. Eclipse Temurin 17, with JAVA_HOME set), then re-run."
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
constraints="$here/constraints.txt"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints")
torch_version="$(sed -n 's/^torch==//p' "$constraints")"

# torch first and exactly: any looser spec resolves to multi-GB CUDA wheels.
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
  say "installing torch==$torch_version"
  "${pip[@]}" "torch==$torch_version"
fi
say "installing av-pipeline with every extra, pyspark and the test tools"
"${pip[@]}" -e "$here[all,spark,test]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
# nuscenes-devkit is the independent reference for the centre-distance AP in the tests. It pins
# numpy<2 and shapely~=2.0 but its eval modules run on ours, so it goes in without its dependencies.
"${pip[@]}" --no-deps nuscenes-devkit 2>&1 | grep -v "^WARNING: Location" >&2 || true
"$venv/bin/python" -c 'import calibration, av_pipeline, beam_jobs, open3d, spconv, pyspark' \
  || { say "ERROR: the installation is incomplete (see pip output above)."; exit 1; }
# The bundled synthetic log (the demo's input) is generated, not stored in git: about 15 s,
# checked against av_pipeline/data/synthetic/synthetic_default.sha256.json.
"$venv/bin/python" -c 'from av_pipeline.synthetic import bundled_log; print(bundled_log().mcap)' >/dev/null \
  || { say "ERROR: could not generate the bundled synthetic log (see above)."; exit 1; }
say "ready: $venv"
