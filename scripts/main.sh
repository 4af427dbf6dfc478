#!/usr/bin/env bash
# The main job on the shared real data (creates or reuses .venv first):
# preprocess the Duke scans -> train (smoke run; --full for the default model's CPU
# recipe: training measured 12.6 min on 2 cores, about 15 min with the other stages) -> evaluate on the
# test subjects -> enhance the shared DICOM volume. Extra arguments go to `oct-srgan chain`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
DATA="${OCT_SRGAN_DATA:-$ROOT/../shared/data}"
exec oct-srgan chain --scans "$DATA/oct/duke_bioptigen" --enhance "$DATA/oct/formats/oct_volume_s14.dcm" --out "${OCT_SRGAN_OUT:-$ROOT/outputs}" "$@"
