#!/usr/bin/env bash
# ipc-bench: rsvg-convert renders chart.svg to a 1400 px PNG in the report test
# (ipc-bench/tests/report.rs, chart_renders_to_png_at_1400_px), which says "skipped" without
# it. Debian's librsvg2-bin; DejaVu fonts so the text has the metrics the chart is laid out for.
set -euo pipefail
if command -v rsvg-convert >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends librsvg2-bin fonts-dejavu-core; } \
  || echo "librsvg2-bin could not be installed: the chart PNG test will say it is skipped"
