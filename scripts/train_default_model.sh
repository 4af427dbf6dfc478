#!/usr/bin/env bash
# Retrain the shipped default model (oct_srgan/weights/oct_srgan_x4.pt) on the shared Duke scans:
# preprocess -> SRResNet stage -> SRGAN stage -> export -> evaluate on the test split.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
DATA="${OCT_SRGAN_DATA:-$ROOT/../shared/data}"
OUT="${OCT_SRGAN_OUT:-$ROOT/outputs}"
oct-srgan preprocess "$DATA/oct/duke_bioptigen" --out "$OUT/duke" --reference average --seed 0 --overwrite --no-progress
oct-srgan train --config configs/oct_x4_srresnet.yaml --data "$OUT/duke" --out "$OUT/runs/oct_x4_srresnet" --overwrite "$@"
oct-srgan train --config configs/oct_x4_srgan.yaml --data "$OUT/duke" --out "$OUT/runs/oct_x4_srgan" --overwrite \
  --set train.init_from="$OUT/runs/oct_x4_srresnet/generator.pt" "$@"
python -m oct_srgan.model_card "$OUT/runs/oct_x4_srgan/generator.pt" "$OUT/duke" --out oct_srgan/weights \
  --stage1 "$OUT/runs/oct_x4_srresnet/generator.pt"
