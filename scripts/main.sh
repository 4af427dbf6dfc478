#!/usr/bin/env bash
# The main job on the shared real data (creates or reuses .venv first).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
DATA="${OCT_SRGAN_DATA:-$ROOT/../shared/data}"
OUT="${OCT_SRGAN_OUT:-$ROOT/outputs}"
oct-srgan preprocess "$DATA/oct/duke_bioptigen" --out "$OUT/duke" --overwrite
echo "dataset: $OUT/duke (manifest.csv, preview.png); MLflow store: $ROOT/mlruns"
