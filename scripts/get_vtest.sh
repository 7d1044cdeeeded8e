#!/usr/bin/env bash
# Print the path of OpenCV's vtest.avi (768x576 surveillance video, BSD licence), fetching it from
# Debian's opencv-doc package into .cache/samples when it is not already on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for candidate in "$root/.cache/samples/vtest.avi" \
                 "$root/../shared/data/opencv_samples/vtest.avi" \
                 /usr/share/doc/opencv-doc/examples/data/vtest.avi; do
  if [ -f "$candidate" ]; then echo "$candidate"; exit 0; fi
done
if ! command -v apt-get >/dev/null; then
  echo "vtest.avi not found and apt-get is unavailable: install OpenCV's samples (opencv-doc) or pass a video" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Only the one file is extracted; the package itself is not installed.
(cd "$tmp" && { apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download opencv-doc >/dev/null; }; })
dpkg-deb -x "$tmp"/opencv-doc_*.deb "$tmp/x"
mkdir -p "$root/.cache/samples"
cp "$tmp/x/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$root/.cache/samples/vtest.avi"
echo "$root/.cache/samples/vtest.avi"
