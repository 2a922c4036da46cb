#!/usr/bin/env bash
# Reproduce a shipped model bundle from scratch: collect -> train -> export -> evaluate.
#   scripts/train_default.sh ENV EPISODES     (run by `make train`; needs scripts/env.sh sourced)
# Re-running reuses the dataset and a finished run (training resumes from its checkpoint).
set -euo pipefail
env="${1:?env name}"; episodes="${2:?episodes}"
data="datasets/$env"; run="runs/$env"; bundle="models/$env"
[ -f "$data/dataset.yaml" ] || jepa-pilot collect --env "$env" --episodes "$episodes" --steps 100 \
  --out "$data" --workers 2 --seed 0
jepa-pilot train --data "$data" --config "config/train/$env.yaml" --out "$run" --resume
rm -rf "$bundle"
jepa-pilot export "$run" --out "$bundle"
jepa-pilot eval-model "$bundle" --data "$data" --record
cp "$run/loss.png" "$bundle/training_loss.png"
du -sh "$bundle"
