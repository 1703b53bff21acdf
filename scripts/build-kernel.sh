#!/usr/bin/env bash
# Build the enclave kernel from Debian's linux-source-6.12, reproducibly.
#
#   scripts/build-kernel.sh [WORK_DIR]        (what `make kernel` runs)
#
# WORK_DIR defaults to target/kernel. Writes:
#   WORK_DIR/bzImage           the kernel the EIF boots
#   WORK_DIR/config            the resolved .config it was built with
#   WORK_DIR/build-info.json   exact inputs and output digests
# and keeps WORK_DIR/src (the unpacked source) and WORK_DIR/build (the out-of-tree build
# directory, `make O=`) so the next run is incremental. A run whose inputs (the source
# pin, the config fragment, this script, the toolchain) are unchanged and whose bzImage
# is still the one recorded does nothing.
#
# Inputs, all in the repository:
#   kernel/linux-source.lock   package, version, SHA-256 of the .deb and of the tarball
#   kernel/enclave.config      the config fragment (applied on `make allnoconfig`)
#
# Reproducibility: the source is pinned by digest; the build timestamp, user, host and
# version that the kernel embeds are fixed (KBUILD_BUILD_*); the source and build paths
# are remapped (-ffile-prefix-map) so the bytes do not depend on where the checkout is.
# What is not pinned is the toolchain (gcc, binutils from Debian bookworm): its versions
# go into build-info.json; another toolchain version may give other bytes.
# `make kernel-repro` (scripts/kernel-repro.sh) checks the claim with two clean builds.
#
# Environment (all optional):
#   LINUX_SOURCE_DEB   use this linux-source .deb instead of the cache/apt download
#                      (checked against the same pinned SHA-256)
#   KERNEL_CACHE       where the .deb is cached (default target/kernel/cache)
#   KERNEL_JOBS        parallel make jobs (default 2)
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

die() { echo "build-kernel: $*" >&2; exit 1; }
say() { echo "build-kernel: $*" >&2; }

[ $# -le 1 ] || die "usage: $0 [WORK_DIR]"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCK=$ROOT/kernel/linux-source.lock
FRAGMENT=$ROOT/kernel/enclave.config
SELF=$ROOT/scripts/build-kernel.sh
WORK=${1:-$ROOT/target/kernel}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
CACHE=${KERNEL_CACHE:-$ROOT/target/kernel/cache}
mkdir -p "$CACHE"
CACHE=$(realpath "$CACHE")
JOBS=${KERNEL_JOBS:-2}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "KERNEL_JOBS=$JOBS: not a positive number"

# --- the pin -------------------------------------------------------------------------------
[ -f "$LOCK" ] || die "$LOCK is missing"
[ -f "$FRAGMENT" ] || die "$FRAGMENT is missing"
lock() {
    local v
    v=$(sed -n "s/^$1=//p" "$LOCK")
    [ -n "$v" ] || die "$LOCK: no $1="
    [ "$(grep -c "^$1=" "$LOCK")" = 1 ] || die "$LOCK: $1= given more than once"
    printf '%s' "$v"
}
PKG=$(lock LINUX_SOURCE_PACKAGE)
VER=$(lock LINUX_SOURCE_VERSION)
DEB_SHA=$(lock LINUX_SOURCE_DEB_SHA256)
TARBALL=$(lock LINUX_SOURCE_TARBALL)
TAR_SHA=$(lock LINUX_SOURCE_TARBALL_SHA256)
TIMESTAMP=$(lock KBUILD_BUILD_TIMESTAMP)
for s in "$DEB_SHA" "$TAR_SHA"; do
    [[ $s =~ ^[0-9a-f]{64}$ ]] || die "$LOCK: $s is not a SHA-256 in hex"
done
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- tools ---------------------------------------------------------------------------------
# objtool needs libelf's headers (gelf.h); the rest is the kernel's usual build set.
missing=()
for t in gcc make flex bison bc perl xz; do command -v "$t" >/dev/null || missing+=("$t"); done
[ -e /usr/include/gelf.h ] || missing+=(libelf-dev)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing build tools (${missing[*]}); as root: apt-get install gcc make flex bison bc perl xz-utils libelf-dev"
    say "installing build tools (missing: ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        gcc make flex bison bc perl xz-utils libelf-dev >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends gcc make flex bison bc perl xz-utils libelf-dev >&2; } \
        || die "apt-get install of the kernel build tools failed"
fi
TOOLCHAIN="$(gcc --version | awk 'NR==1') / $(ld --version | awk 'NR==1')"

# --- the cache key: nothing changed → nothing to do -----------------------------------------
KEY=$(cat "$LOCK" "$FRAGMENT" "$SELF" <(printf '%s\n' "$TOOLCHAIN") | sha256sum | cut -d' ' -f1)
INFO=$WORK/build-info.json
if [ -f "$WORK/bzImage" ] && [ -f "$INFO" ] && [ -f "$WORK/config" ] \
    && grep -q "\"input_key\": \"$KEY\"" "$INFO" \
    && grep -q "\"bzimage_sha256\": \"$(sha "$WORK/bzImage")\"" "$INFO"; then
    say "up to date: $WORK/bzImage ($(sha "$WORK/bzImage"))"
    exit 0
fi

# --- the source: pinned .deb → pinned tarball → unpacked tree -------------------------------
SRC_PARENT=$WORK/src
SRC=$SRC_PARENT/linux
if [ "$(cat "$SRC_PARENT/.tarball-sha256" 2>/dev/null || true)" != "$TAR_SHA" ]; then
    if [ -n "${LINUX_SOURCE_DEB:-}" ]; then
        DEB=$LINUX_SOURCE_DEB
        [ -f "$DEB" ] || die "LINUX_SOURCE_DEB=$DEB: no such file"
    else
        DEB=$CACHE/${PKG}_${VER//:/%3a}_all.deb
        if [ ! -f "$DEB" ] || [ "$(sha "$DEB")" != "$DEB_SHA" ]; then
            rm -f "$DEB"
            if ! apt-cache show "$PKG=$VER" >/dev/null 2>&1; then
                [ "$(id -u)" = 0 ] || die "$PKG=$VER is unknown to apt; run apt-get update as root (or set LINUX_SOURCE_DEB)"
                apt-get update -qq >&2 || die "apt-get update failed"
                apt-cache show "$PKG=$VER" >/dev/null 2>&1 \
                    || die "$PKG=$VER is not in the apt sources (bookworm-security); fetch it from snapshot.debian.org into $CACHE or set LINUX_SOURCE_DEB"
            fi
            say "downloading $PKG=$VER"
            (cd "$CACHE" && apt-get download -q "$PKG=$VER" 2>&1 \
                | grep -v -e 'Download is performed unsandboxed' -e '^Get:' -e '^Fetched' >&2 || true)
            [ -f "$DEB" ] || die "apt-get download $PKG=$VER did not produce $DEB"
        fi
    fi
    GOT=$(sha "$DEB")
    [ "$GOT" = "$DEB_SHA" ] || die "$DEB: sha256 $GOT, $LOCK pins $DEB_SHA; refusing to build"
    [ "$(dpkg-deb -f "$DEB" Package)" = "$PKG" ] && [ "$(dpkg-deb -f "$DEB" Version)" = "$VER" ] \
        || die "$DEB is not $PKG $VER"
    say "unpacking $PKG $VER into $SRC_PARENT"
    rm -rf "$SRC_PARENT" "$WORK/build"
    mkdir -p "$SRC_PARENT"
    dpkg-deb --fsys-tarfile "$DEB" | tar -xO "./$TARBALL" > "$SRC_PARENT/source.tar.xz" \
        || die "$DEB has no ./$TARBALL"
    GOT=$(sha "$SRC_PARENT/source.tar.xz")
    [ "$GOT" = "$TAR_SHA" ] || die "$TARBALL in $DEB: sha256 $GOT, $LOCK pins $TAR_SHA; refusing to build"
    mkdir "$SRC"
    tar -xJf "$SRC_PARENT/source.tar.xz" -C "$SRC" --strip-components=1
    rm "$SRC_PARENT/source.tar.xz"
    [ -f "$SRC/Makefile" ] && [ -f "$SRC/drivers/misc/nsm.c" ] || die "$TARBALL does not hold a kernel tree with drivers/misc/nsm.c"
    echo "$TAR_SHA" > "$SRC_PARENT/.tarball-sha256"
fi

# --- configure: allnoconfig + the fragment, then check that every line of it held -----------
BUILD=$WORK/build
mkdir -p "$BUILD"
# The kernel embeds these; fixed so that the bytes do not depend on who built it, where,
# when, or how often in this directory. LOCALVERSION set (to nothing) keeps
# scripts/setlocalversion from looking at version control.
export KBUILD_BUILD_TIMESTAMP=$TIMESTAMP KBUILD_BUILD_USER=cleanroom KBUILD_BUILD_HOST=cleanroom \
    KBUILD_BUILD_VERSION=1 LOCALVERSION=
export KCFLAGS="-ffile-prefix-map=$SRC=/usr/src/linux -ffile-prefix-map=$BUILD=/usr/src/linux-build"
export KAFLAGS=$KCFLAGS
unset SOURCE_DATE_EPOCH ARCH CROSS_COMPILE KCONFIG_CONFIG
kmake() { make -C "$SRC" O="$BUILD" ARCH=x86_64 "$@"; }

kmake -s allnoconfig KCONFIG_ALLCONFIG="$FRAGMENT" >&2 || die "make allnoconfig failed"
# kconfig drops a requested option silently when its dependencies are not met; refuse
# to build a kernel that lacks what the fragment says it has.
bad=()
while IFS= read -r line; do
    case $line in
        CONFIG_*=*)
            grep -qxF -- "$line" "$BUILD/.config" || bad+=("wanted $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$BUILD/.config" || echo absent)")
            ;;
        "# CONFIG_"*" is not set")
            sym=${line#\# }; sym=${sym%% *}
            if grep -q "^$sym=" "$BUILD/.config"; then bad+=("wanted $sym off, got: $(grep "^$sym=" "$BUILD/.config")"); fi
            ;;
    esac
done < "$FRAGMENT"
if [ ${#bad[@]} -gt 0 ]; then
    printf 'build-kernel:   %s\n' "${bad[@]}" >&2
    die "the resolved .config does not honour kernel/enclave.config (${#bad[@]} line(s) above); refusing to build"
fi

# --- build ---------------------------------------------------------------------------------
say "building bzImage in $BUILD (make -j$JOBS)"
t0=$(date +%s)
kmake -j"$JOBS" bzImage >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "kernel build failed (log: $WORK/build.log)"; }
t1=$(date +%s)
IMAGE=$BUILD/arch/x86/boot/bzImage
[ -f "$IMAGE" ] || die "no $IMAGE after the build"
KREL=$(cat "$BUILD/include/config/kernel.release")

cp "$IMAGE" "$WORK/bzImage.tmp" && mv "$WORK/bzImage.tmp" "$WORK/bzImage"
cp "$BUILD/.config" "$WORK/config"
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
{
    printf '{\n'
    printf '  "linux_source_package": %s,\n' "$(json_str "$PKG")"
    printf '  "linux_source_version": %s,\n' "$(json_str "$VER")"
    printf '  "linux_source_deb_sha256": "%s",\n' "$DEB_SHA"
    printf '  "linux_source_tarball_sha256": "%s",\n' "$TAR_SHA"
    printf '  "kernel_release": %s,\n' "$(json_str "$KREL")"
    printf '  "config_fragment_sha256": "%s",\n' "$(sha "$FRAGMENT")"
    printf '  "config_sha256": "%s",\n' "$(sha "$WORK/config")"
    printf '  "toolchain": %s,\n' "$(json_str "$TOOLCHAIN")"
    printf '  "kbuild_build_timestamp": %s,\n' "$(json_str "$KBUILD_BUILD_TIMESTAMP")"
    printf '  "input_key": "%s",\n' "$KEY"
    printf '  "bzimage_bytes": %s,\n' "$(stat -c %s "$WORK/bzImage")"
    printf '  "bzimage_sha256": "%s"\n' "$(sha "$WORK/bzImage")"
    printf '}\n'
} > "$INFO.tmp"
mv "$INFO.tmp" "$INFO"
say "$WORK/bzImage: $KREL, $(stat -c %s "$WORK/bzImage") bytes, sha256 $(sha "$WORK/bzImage") (make took $((t1 - t0)) s)"
