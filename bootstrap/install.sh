#!/bin/sh
# Install a prebuilt ghboot from a release, verified against the release's SHA256SUMS. POSIX sh (also bash 3.2
# as on macOS); linted with `shellcheck -s sh`.
#
#   sh install.sh            (or: curl -fsSL <release>/install.sh | sh)
#
# Environment:
#   GHBOOT_VERSION        version to install (default: the release this script belongs to)
#   GHBOOT_DOWNLOAD_BASE  where releases are: BASE/v<version>/<asset> and BASE/v<version>/SHA256SUMS
#                         (default: the GitHub releases of the project, .../releases/download)
#   GHBOOT_INSTALL_DIR    directory to put the ghboot executable in (default: ~/.local/bin)
#   GHBOOT_TARGET         Rust target triple of the asset, when the detected one is wrong
#
# The asset is ghboot-<version>-<target>.tar.gz. It is refused, and nothing is installed, when its SHA-256
# differs from the SHA256SUMS entry or SHA256SUMS has no entry for it. Only when the release has no asset for
# this platform does the script build ghboot with `cargo install --locked` instead, and it says so.
# Prints the installed executable's path on stdout; messages go to stderr.
# Exit codes: 0 installed; 65 refused (checksum mismatch, unlisted or broken asset); 69 a download or a tool
# failed; 64 bad environment value.
set -eu

GHBOOT_DEFAULT_VERSION=0.1.0
GHBOOT_REPOSITORY=ghboot/ghboot

say() { printf 'ghboot-install: %s\n' "$1" >&2; }
# die CODE MESSAGE [HELP]
die() {
  say "error: $2"
  [ $# -lt 3 ] || printf 'help: %s\n' "$3" >&2
  exit "$1"
}

version=${GHBOOT_VERSION:-$GHBOOT_DEFAULT_VERSION}
version=${version#v}
case $version in
  *[!A-Za-z0-9.+-]* | '') die 64 "GHBOOT_VERSION '$version' is not a version" "set it to a release such as $GHBOOT_DEFAULT_VERSION" ;;
esac
base=${GHBOOT_DOWNLOAD_BASE:-https://github.com/$GHBOOT_REPOSITORY/releases/download}
base=${base%/}
install_dir=${GHBOOT_INSTALL_DIR:-${HOME:?HOME is not set; set GHBOOT_INSTALL_DIR}/.local/bin}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ghboot-install.XXXXXX") || die 69 "cannot make a temporary directory" "set TMPDIR to a writable directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

detect_target() {
  [ -z "${GHBOOT_TARGET:-}" ] || { echo "$GHBOOT_TARGET"; return; }
  case $(uname -m 2>/dev/null) in
    x86_64 | amd64) cpu=x86_64 ;;
    aarch64 | arm64) cpu=aarch64 ;;
    *) return ;;
  esac
  case $(uname -s 2>/dev/null) in
    Linux)
      # a glibc build does not run on musl systems (Alpine)
      if ldd --version 2>&1 | grep -qi musl; then echo "$cpu-unknown-linux-musl"; else echo "$cpu-unknown-linux-gnu"; fi ;;
    Darwin) echo "$cpu-apple-darwin" ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT) echo "$cpu-pc-windows-msvc" ;;
  esac
}

# fetch URL FILE: 0 downloaded, 2 not found (404), 1 any other failure
fetch() {
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -sSL --retry 3 --connect-timeout 10 --max-time 600 -o "$2" -w '%{http_code}' "$1" 2>"$tmp/fetch.err") || {
      say "download of $1 failed: $(tail -n 1 "$tmp/fetch.err")"
      return 1
    }
    case $code in
      2??) return 0 ;;
      404) return 2 ;;
      *) say "download of $1 answered HTTP $code"; return 1 ;;
    esac
  elif command -v wget >/dev/null 2>&1; then
    if wget -S -q -T 30 -t 3 -O "$2" "$1" 2>"$tmp/fetch.err"; then return 0; fi
    if grep -q 'HTTP/[0-9.]* 404' "$tmp/fetch.err"; then return 2; fi
    say "download of $1 failed: $(tail -n 1 "$tmp/fetch.err")"
    return 1
  else
    die 69 "neither curl nor wget is installed" "install curl"
  fi
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
  else
    die 69 "no sha256sum, shasum or openssl to verify the download with" "install coreutils"
  fi
}

# put_in_place FILE: FILE becomes $install_dir/$exe in one rename
put_in_place() {
  mkdir -p "$install_dir" || die 69 "cannot create $install_dir" "set GHBOOT_INSTALL_DIR to a writable directory"
  part="$install_dir/.$exe.part.$$"
  if ! { cp "$1" "$part" && chmod 755 "$part" && mv -f "$part" "$install_dir/$exe"; }; then
    rm -f "$part"
    die 69 "cannot write $install_dir/$exe" "set GHBOOT_INSTALL_DIR to a writable directory"
  fi
  say "installed ghboot $version ($1 -> $install_dir/$exe)"
  case ":${PATH:-}:" in
    *":$install_dir:"*) ;;
    *) say "note: $install_dir is not on PATH; add it, or run $install_dir/$exe" ;;
  esac
  echo "$install_dir/$exe"
}

# only when the release has nothing for this platform: build it
cargo_fallback() {
  say "no prebuilt ghboot $version for $1: building it with cargo install --locked instead (this takes minutes)"
  command -v cargo >/dev/null 2>&1 || die 69 "no prebuilt ghboot $version for $1, and cargo is not installed" \
    "install Rust (https://rustup.rs) and run this again, or set GHBOOT_TARGET to an asset that runs here"
  here=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || here=.
  src=$(dirname "$here")
  # a checkout of this very version (the action runs from one) builds from its own sources
  if [ -f "$src/Cargo.toml" ] && grep -q '^name = "ghboot"' "$src/Cargo.toml" &&
    grep -q "^version = \"$version\"" "$src/Cargo.toml"; then
    cargo install --locked --path "$src" --root "$tmp/cargo" || die 69 "cargo install --path $src failed"
  else
    cargo install --locked --git "https://github.com/$GHBOOT_REPOSITORY" --tag "v$version" --root "$tmp/cargo" ghboot ||
      die 69 "cargo install of ghboot v$version failed"
  fi
  put_in_place "$tmp/cargo/bin/$exe"
}

target=$(detect_target)
exe=ghboot
case $target in *windows*) exe=ghboot.exe ;; esac
if [ -z "$target" ]; then
  cargo_fallback "$(uname -s 2>/dev/null)/$(uname -m 2>/dev/null)"
  exit 0
fi
asset="ghboot-$version-$target.tar.gz"
dir="$base/v$version"

if fetch "$dir/SHA256SUMS" "$tmp/SHA256SUMS"; then :; else
  case $? in
    2) die 69 "release v$version has no SHA256SUMS at $dir/SHA256SUMS" "check GHBOOT_VERSION and GHBOOT_DOWNLOAD_BASE" ;;
    *) die 69 "cannot download $dir/SHA256SUMS" "check the network, GHBOOT_VERSION and GHBOOT_DOWNLOAD_BASE" ;;
  esac
fi
# "HASH  NAME" or "HASH *NAME"
want=$(awk -v f="$asset" 'NF >= 2 { n = $2; sub(/^\*/, "", n); sub(/^.*\//, "", n); if (n == f) { print tolower($1); exit } }' "$tmp/SHA256SUMS")

if fetch "$dir/$asset" "$tmp/$asset"; then got_asset=0; else got_asset=$?; fi
if [ -z "$want" ]; then
  [ "$got_asset" != 2 ] || { cargo_fallback "$target"; exit 0; }
  die 65 "SHA256SUMS of v$version has no entry for $asset: refusing to install an unverified download" \
    "the release is incomplete or was tampered with; report it, or pick another GHBOOT_VERSION"
fi
case $want in
  *[!0-9a-f]* | '') die 65 "SHA256SUMS of v$version has a malformed entry for $asset" "the release is broken; report it" ;;
esac
[ ${#want} = 64 ] || die 65 "SHA256SUMS of v$version has a malformed entry for $asset" "the release is broken; report it"
[ "$got_asset" = 0 ] || die 69 "cannot download $dir/$asset although SHA256SUMS lists it" "check the network and run this again"

got=$(sha256 "$tmp/$asset")
[ "$got" = "$want" ] || die 65 "checksum mismatch for $asset: SHA256SUMS says $want, the download is $got; nothing installed" \
  "the download was corrupted or tampered with; run this again, and report it if it persists"

mkdir "$tmp/x"
tar -xzf "$tmp/$asset" -C "$tmp/x" 2>"$tmp/tar.err" || die 65 "cannot unpack $asset: $(head -n 1 "$tmp/tar.err")" "report the broken release"
bin=''
for c in "$tmp/x/ghboot-$version-$target/$exe" "$tmp/x/$exe"; do
  if [ -f "$c" ]; then bin=$c; break; fi
done
[ -n "$bin" ] || die 65 "$asset holds no $exe" "report the broken release"
chmod 755 "$bin"
case $target in
  *windows*) ;;
  *) "$bin" --version >/dev/null 2>"$tmp/run.err" || die 65 "the ghboot in $asset does not run here: $(head -n 1 "$tmp/run.err")" \
    "set GHBOOT_TARGET to another asset (for example a -musl one), or build it: cargo install --locked --git https://github.com/$GHBOOT_REPOSITORY --tag v$version" ;;
esac
put_in_place "$bin"
