#!/usr/bin/env bash
# Acceptance check against the reference trainer (not part of CI): one sd-scripts TOML per run,
# trained unchanged by our trainer (and, with KOHYA=1, by kohya's train_network.py /
# sdxl_train_network.py), then the harness's check_lora.py (kohya's loader, diffusers' converter,
# kohya's merge, metadata) on our file.
#
# Usage: benchmarks/harness_check.sh [RUN ...]   RUN in sd15_lora sd15_locon sdxl_lora sdxl_locon
#                                                (default: sd15_lora sd15_locon)
# Env:   HARNESS_DATA  (default ../harness-data beside this checkout's parent; see ../shared/harness)
#        KOHYA=1       also train each TOML with kohya (outputs in $WORK/kohya)
#        STEPS         max_train_steps (default 4)
#        OURS_PY       python for our trainer (default .venv/bin/python, else python3)
# Needs: the harness set up (setup.sh, make_tokenizer.py, make_ckpt.py for the arch you run).
# SDXL: ours peaks at ~12 GiB, kohya's trainer at ~21 GiB and check_lora at ~20 GiB: run alone.
# Outputs under $WORK (default $HARNESS_DATA/trainer-check): <run>.toml, ours/, kohya/, logs/,
# summary.tsv (measure.py's columns), and the last line of each check in logs/<run>.check.log.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/harness}"
[ -d "$HARNESS" ] || HARNESS="$(cd "$ROOT/../.." && pwd)/shared/harness"
HARNESS="$(cd "$HARNESS" && pwd)"
HARNESS_DATA="${HARNESS_DATA:-$HARNESS/../../harness-data}"
HARNESS_DATA="$(cd "$HARNESS_DATA" && pwd)"
export HARNESS_DATA
WORK="${WORK:-$HARNESS_DATA/trainer-check}"
STEPS="${STEPS:-4}"
HPY="$HARNESS_DATA/venv/bin/python"
OURS_PY="${OURS_PY:-$ROOT/.venv/bin/python}"
[ -x "$OURS_PY" ] || OURS_PY=python3
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(sd15_lora sd15_locon)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DISABLE_TELEMETRY=1

[ -x "$HPY" ] || { echo "harness venv missing: run $HARNESS/setup.sh" >&2; exit 1; }
mkdir -p "$WORK/ours" "$WORK/kohya" "$WORK/logs"
DATA="$HARNESS_DATA/dataset/img"
[ -d "$DATA/1_test" ] || "$HPY" "$HARNESS/make_dataset.py" --out "$DATA"

for run in "${RUNS[@]}"; do
  arch="${run%%_*}"
  kind="${run#*_}"
  ckpt="$HARNESS_DATA/ckpt/${arch}_random.safetensors"
  [ -f "$ckpt" ] || { echo "missing $ckpt: run $HARNESS/make_ckpt.py --arch $arch" >&2; exit 1; }
  toml="$WORK/$run.toml"
  cat > "$toml" <<EOF
pretrained_model_name_or_path = "$ckpt"
train_data_dir = "$DATA"
output_dir = "$WORK/out"
output_name = "$run"
save_model_as = "safetensors"
tokenizer_cache_dir = "$HARNESS_DATA/tokenizers"
caption_extension = ".txt"
resolution = "128,128"
train_batch_size = 1
max_train_steps = $STEPS
network_module = "networks.lora"
network_dim = 4
network_alpha = 1
learning_rate = 1e-4
optimizer_type = "AdamW"
mixed_precision = "no"
seed = 42
max_data_loader_n_workers = 0
EOF
  [ "$kind" = locon ] && echo 'network_args = ["conv_dim=4", "conv_alpha=1"]' >> "$toml"
  if [ "${KOHYA:-0}" = 1 ]; then
    script=train_network.py
    [ "$arch" = sdxl ] && script=sdxl_train_network.py
    echo "=== kohya $run ($(uptime | sed 's/.*load/load/'))"
    "$HPY" "$HARNESS/measure.py" --name "kohya_$run" --log "$WORK/logs/kohya_$run.log" \
      --summary "$WORK/summary.tsv" --cwd "$HARNESS_DATA/sd-scripts" --quiet -- \
      "$HPY" "$HARNESS_DATA/sd-scripts/$script" --config_file "$toml" --output_dir "$WORK/kohya"
  fi
  echo "=== ours $run ($(uptime | sed 's/.*load/load/'))"
  "$HPY" "$HARNESS/measure.py" --name "ours_$run" --log "$WORK/logs/ours_$run.log" \
    --summary "$WORK/summary.tsv" --cwd "$ROOT" --quiet -- \
    "$OURS_PY" -m lib_train_tools.train --config_file "$toml" --output_dir "$WORK/ours" \
      --progress_file "$WORK/ours/$run.jsonl"
  echo "=== check_lora ours/$run.safetensors"
  "$HPY" "$HARNESS/check_lora.py" "$WORK/ours/$run.safetensors" "$ckpt" --arch "$arch" \
    | tee "$WORK/logs/$run.check.log" | tail -n 7
done
