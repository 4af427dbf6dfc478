#!/usr/bin/env bash
# Retrain the four shipped models (--model default | gan | lateral | averaged, oct_srgan/weights/) on the
# shared Duke scans, about 1.8 h on 2 CPU cores:
# preprocess (reference pairs, each input's gain/offset fitted) -> `default`: SRResNet stage, a fine-tune
# of the shipped weights with the intensity-faithful, mixed-degradation, synthetic-lesion recipe -> subject
# cross-validation of that recipe (bench/crossval.py) -> `averaged`: the new default fine-tuned on inputs keeping
# 0 to 0.5 of their speckle (configs/oct_x4_averaged.yaml) -> `gan`: the SRGAN stage from the new default ->
# `lateral`: x4 along the A-scan axis on a lateral dataset -> each exported with its model card (three
# protocols, cross-validation figures, no-reference measures on native scans of the test subjects and
# another device). Extra arguments go to the default model's training (from scratch: --set train.init_from=null
# --set train.iterations=1000 --set train.lr=2e-4 --set "train.lr_milestones=[600,850]", the YAML's own schedule).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
DATA="${OCT_SRGAN_DATA:-$ROOT/../shared/data}"
OUT="${OCT_SRGAN_OUT:-$ROOT/outputs}"
cp oct_srgan/weights/oct_srgan_x4.pt "$OUT/base_x4.pt" 2>/dev/null || { mkdir -p "$OUT"; cp oct_srgan/weights/oct_srgan_x4.pt "$OUT/base_x4.pt"; }
oct-srgan preprocess "$DATA/oct/duke_bioptigen" --out "$OUT/duke" --reference average --seed 0 --overwrite --no-progress
# The default model trains on 11 subjects with one for validation; its test subjects are those of $OUT/duke.
oct-srgan preprocess "$DATA/oct/duke_bioptigen" --out "$OUT/duke_train" --reference average --seed 0 --val-fraction 0.05 \
  --overwrite --no-progress
oct-srgan train --config configs/oct_x4_srresnet.yaml --data "$OUT/duke_train" --out "$OUT/runs/oct_x4_srresnet" --overwrite \
  --set train.init_from="$OUT/base_x4.pt" --set train.iterations=1500 --set train.lr=1e-4 \
  --set "train.lr_milestones=[900,1250]" "$@"
oct-srgan train --config configs/oct_x4_averaged.yaml --data "$OUT/duke_train" --out "$OUT/runs/oct_x4_averaged" \
  --overwrite --set train.init_from="$OUT/runs/oct_x4_srresnet/generator.pt"
python bench/crossval.py --folds 3 --out "$OUT/cv" --set train.iterations=500 --set train.lr=4e-4 \
  --set "train.lr_milestones=[300,420]" --set train.val_interval=250
oct-srgan train --config configs/oct_x4_srgan.yaml --data "$OUT/duke" --out "$OUT/runs/oct_x4_srgan" --overwrite \
  --set train.init_from="$OUT/runs/oct_x4_srresnet/generator.pt"
oct-srgan preprocess "$DATA/oct/duke_bioptigen" --out "$OUT/duke_lateral" --reference average --axes lateral \
  --degradation decimate --seed 0 --overwrite --no-progress
cp oct_srgan/weights/oct_srgan_x4_lateral.pt "$OUT/base_x4_lateral.pt"
oct-srgan train --config configs/oct_x4_lateral.yaml --data "$OUT/duke_lateral" --out "$OUT/runs/oct_x4_lateral" --overwrite \
  --set train.init_from="$OUT/base_x4_lateral.pt"
SCANS=()
for f in "$DATA"/oct/formats/octdl_bscan_rgb_channel_*.nii.gz "$DATA"/oct/duke_bioptigen/subject0{3,4}/{1,test}.tif; do
  SCANS+=(--scans "$f")
done
python -m oct_srgan.model_card "$OUT/runs/oct_x4_srresnet/generator.pt" "$OUT/duke" --out oct_srgan/weights \
  --name default --cv "$OUT/cv/cv_summary.csv" "${SCANS[@]}"
python -m oct_srgan.model_card "$OUT/runs/oct_x4_srgan/generator.pt" "$OUT/duke" --out oct_srgan/weights \
  --name gan --stage1 "$OUT/runs/oct_x4_srresnet/generator.pt" "${SCANS[@]}"
python -m oct_srgan.model_card "$OUT/runs/oct_x4_lateral/generator.pt" "$OUT/duke_lateral" --out oct_srgan/weights \
  --name lateral "${SCANS[@]}"
python -m oct_srgan.model_card "$OUT/runs/oct_x4_averaged/generator.pt" "$OUT/duke" --out oct_srgan/weights \
  --name averaged "${SCANS[@]}"
