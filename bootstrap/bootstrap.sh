#!/bin/sh
# Install ghboot and run it. POSIX sh; linted with shellcheck.
#
#   bootstrap/bootstrap.sh [--binary PATH] [--install-only] [--mode M] [--nats-type T] [--terraform-backend B] [ghboot args...]
#
# Installs with `cargo install --path <this repo>` unless --binary names a ghboot executable (for example a
# release download) or ghboot is already on PATH with GHBOOT_REUSE=1. The seeds' flags are accepted as they
# were; everything else is passed to ghboot unchanged.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
binary=""
install_only=0
bin_dir=${GHBOOT_BIN_DIR:-"${CARGO_HOME:-$HOME/.cargo}/bin"}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

# collect ghboot's arguments, keeping their quoting, in "$@" after the loop
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1
  shift
  n=$((n - 1))
  case $arg in
    --binary)
      [ "$n" -gt 0 ] || { echo "bootstrap: --binary needs a path" >&2; exit 64; }
      binary=$1; shift; n=$((n - 1)) ;;
    --binary=*) binary=${arg#--binary=} ;;
    --install-only) install_only=1 ;;
    -h|--help) usage; exit 0 ;;
    *) set -- "$@" "$arg" ;;
  esac
done

if [ -n "$binary" ]; then
  [ -f "$binary" ] || { echo "bootstrap: $binary does not exist" >&2; exit 66; }
  mkdir -p "$bin_dir"
  cp "$binary" "$bin_dir/ghboot.tmp.$$"
  chmod 755 "$bin_dir/ghboot.tmp.$$"
  mv "$bin_dir/ghboot.tmp.$$" "$bin_dir/ghboot"
  ghboot="$bin_dir/ghboot"
elif [ "${GHBOOT_REUSE:-0}" = 1 ] && command -v ghboot >/dev/null 2>&1; then
  ghboot=$(command -v ghboot)
else
  command -v cargo >/dev/null 2>&1 || {
    echo "bootstrap: cargo not found; install Rust from https://rustup.rs or pass --binary PATH" >&2
    exit 69
  }
  cargo install --quiet --locked --path "$repo" --root "$(dirname "$bin_dir")"
  ghboot="$bin_dir/ghboot"
fi

echo "bootstrap: using $ghboot" >&2
[ "$install_only" = 1 ] && exit 0
exec "$ghboot" "$@"
