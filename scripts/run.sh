#!/bin/sh
# Sets up (Debian packages, build) and generates an image with cdiffusers.
# Arguments go to `cdiffusers generate`; paths are relative to where you run it.
# With no arguments, the bundled model draws a picture into ./output.png.
set -e
repo="$(cd "$(dirname "$0")/.." && pwd)"
sh "$repo/scripts/build.sh" >&2
if [ $# -eq 0 ]; then
    set -- -p "a large red circle in the center, blue background" --steps 20 -s dpm++2m --seed 0 -o output.png
fi
exec "$repo/build/cdiffusers" generate "$@"
