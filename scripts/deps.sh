#!/bin/sh
# Installs the Debian packages cdiffusers needs to build and test.
# As root it runs apt-get itself; otherwise it prints the exact command and stops.
set -e
PKGS="build-essential cmake pkg-config libcjson-dev libutf8proc-dev libpng-dev libdnnl-dev libcmocka-dev"
if [ "${1:-}" = "--dev" ]; then
    # Extras for fuzzing (clang's libFuzzer) and leak checks; not needed to build or test.
    PKGS="$PKGS clang libclang-rt-14-dev valgrind"
fi
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ]; then
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "cdiffusers needs these Debian packages; run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
