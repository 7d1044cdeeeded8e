#!/usr/bin/env bash
# The SynthLR standard splits. Seeds differ per split, so no sample is shared between them.
#   SynthLR-train: 50,000 single-person crops (seed 1000)
#   SynthLR-test:   2,000 single-person crops (seed 2000) and 300 multi-person scenes (seed 3000)
#   SynthLR-val:      200 single-person crops (seed 4000), for validation during training
# Backgrounds: pass a folder of photos without people as $1 (e.g. ../shared/data/backgrounds);
# without it the generator paints procedural backgrounds. Output goes under ${2:-data/synthlr}.
# On 2 CPU cores the train split takes a few hours (see benchmarks/README.md for the rate).
set -euo pipefail
backgrounds=${1:-}
out=${2:-data/synthlr}
bg_args=()
[ -n "$backgrounds" ] && bg_args=(--backgrounds "$backgrounds")
lowres=${LOWRES_HPS:-.venv/bin/lowres-hps}
"$lowres" synth --out "$out/train" --count 50000 --seed 1000 --layout crops "${bg_args[@]}"
"$lowres" synth --out "$out/test_crops" --count 2000 --seed 2000 --layout crops "${bg_args[@]}"
"$lowres" synth --out "$out/test_scenes" --count 300 --seed 3000 --layout scenes "${bg_args[@]}"
"$lowres" synth --out "$out/val_crops" --count 200 --seed 4000 --layout crops "${bg_args[@]}"
