#!/usr/bin/env bash
# Reproduce a shipped model bundle from scratch: collect -> train -> export -> evaluate [-> landmarks].
#   scripts/train_default.sh NAME EPISODES [STEPS [RECIPE [LANDMARKS [COLLECT OPTIONS...]]]]
# NAME names the dataset, run and bundle folders; STEPS: actions per episode (default 100);
# RECIPE: config/train/NAME.yaml by default; LANDMARKS: landmarks to build (0: none, the default);
# COLLECT OPTIONS go to `jepa-pilot collect` (default: --env NAME).
# (run by `make train`; needs scripts/env.sh sourced)
# Re-running reuses the dataset and a finished run (training resumes from its checkpoint).
set -euo pipefail
name="${1:?bundle name}"; episodes="${2:?episodes}"; steps="${3:-100}"
recipe="${4:-config/train/$name.yaml}"; landmarks="${5:-0}"
shift $(( $# < 5 ? $# : 5 ))
collect_options=("$@"); [ ${#collect_options[@]} -gt 0 ] || collect_options=(--env "$name")
data="datasets/$name"; run="runs/$name"; bundle="models/$name"
[ -f "$data/dataset.yaml" ] || jepa-pilot collect "${collect_options[@]}" --episodes "$episodes" --steps "$steps" \
  --out "$data" --workers 2 --seed 0
jepa-pilot train --data "$data" --config "$recipe" --out "$run" --resume
rm -rf "$bundle"
jepa-pilot export "$run" --out "$bundle"
[ "$landmarks" = 0 ] || jepa-pilot landmarks "$bundle" --data "$data" --landmarks "$landmarks"
jepa-pilot eval-model "$bundle" --data "$data" --record
cp "$run/loss.png" "$bundle/training_loss.png"
du -sh "$bundle"
