#!/usr/bin/env bash
# The main job on the shared real data (creates or reuses .venv first):
# preprocess the Duke scans -> fine-tune the shipped model (configs/main.yaml; --full trains the
# default model's stage-1 CPU recipe from scratch instead) -> evaluate it and the shipped model on the
# test subjects -> enhance the shared DICOM volume with the better one; ends on a short summary (each
# stage's printed tables are in OUT/logs/). Extra arguments go to `oct-srgan chain`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
DATA="${OCT_SRGAN_DATA:-$ROOT/../shared/data}"
exec oct-srgan chain --scans "$DATA/oct/duke_bioptigen" --enhance "$DATA/oct/formats/oct_volume_s14.dcm" --out "${OCT_SRGAN_OUT:-$ROOT/outputs}" "$@"
