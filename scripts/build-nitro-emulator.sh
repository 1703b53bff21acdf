#!/usr/bin/env bash
# Build QEMU with its `nitro-enclave` machine (emulated Nitro Enclave: boots an EIF,
# emulates the NSM device, computes PCRs from the EIF) from Debian's own qemu source.
#
#   scripts/build-nitro-emulator.sh          (what `make nitro-emulator` runs)
#
# Writes target/nitro-emulator/bin/qemu-system-x86_64 (+ its share/ files) and
# target/nitro-emulator/build-info.json. A second run whose inputs are unchanged and
# whose binary still lists `nitro-enclave` in `-machine help` does nothing.
#
# Why: Debian's qemu-system-x86 (bookworm-backports, 10.0.2) is built without libcbor,
# and QEMU's Kconfig makes NITRO_ENCLAVE depend on LIBCBOR && GNUTLS. So the same source
# version is rebuilt here with libcbor and gnutls, x86_64-softmmu only, no docs, no GUI.
#
# Inputs: nitro-emulator/qemu-source.lock (version and SHA-256 of the .dsc, the upstream
# tarball, the Debian tarball, and of the meson/pycotap wheels). If the mirror serves the
# .dsc and the Debian tarball, Debian's patches are applied (dpkg-source -x); if it serves
# only the upstream tarball, the build says so loudly and records
# "debian_patches_applied": false — it never pretends otherwise.
#
# Environment: NITRO_EMULATOR_JOBS (default 2), NITRO_EMULATOR_DIR (default
# target/nitro-emulator).
set -euo pipefail
export LC_ALL=C
umask 022
die() { echo "build-nitro-emulator: $*" >&2; exit 1; }
say() { echo "build-nitro-emulator: $*" >&2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCK=$ROOT/nitro-emulator/qemu-source.lock
SELF=$ROOT/scripts/build-nitro-emulator.sh
OUT=${NITRO_EMULATOR_DIR:-$ROOT/target/nitro-emulator}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
JOBS=${NITRO_EMULATOR_JOBS:-2}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "NITRO_EMULATOR_JOBS=$JOBS: not a positive number"
BIN=$OUT/bin/qemu-system-x86_64
INFO=$OUT/build-info.json

[ -f "$LOCK" ] || die "$LOCK is missing"
lock() {
    local v
    v=$(sed -n "s/^$1=//p" "$LOCK")
    [ -n "$v" ] || die "$LOCK: no $1="
    [ "$(grep -c "^$1=" "$LOCK")" = 1 ] || die "$LOCK: $1= given more than once"
    printf '%s' "$v"
}
VER=$(lock QEMU_SOURCE_VERSION)
DSC=$(lock QEMU_DSC)
DSC_SHA=$(lock QEMU_DSC_SHA256)
ORIG=$(lock QEMU_ORIG_TARBALL)
ORIG_SHA=$(lock QEMU_ORIG_SHA256)
DEBTAR=$(lock QEMU_DEBIAN_TARBALL)
DEBTAR_SHA=$(lock QEMU_DEBIAN_SHA256)
MESON_VERSION=$(lock MESON_VERSION)
PYCOTAP_VERSION=$(lock PYCOTAP_VERSION)
MESON_SHA=$(lock MESON_WHEEL_SHA256)
PYCOTAP_SHA=$(lock PYCOTAP_WHEEL_SHA256)
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- cached: same inputs, binary intact and still offering the machine → nothing to do -----
KEY=$(cat "$LOCK" "$SELF" | sha256sum | cut -d' ' -f1)
has_machine() { "$1" -machine help 2>/dev/null | grep -q '^nitro-enclave '; }
if [ -x "$BIN" ] && [ -f "$INFO" ] && grep -q "\"input_key\": \"$KEY\"" "$INFO" \
    && grep -q "\"qemu_sha256\": \"$(sha "$BIN")\"" "$INFO" && has_machine "$BIN"; then
    say "up to date: $BIN (nitro-enclave machine present)"
    exit 0
fi

# --- build dependencies ---------------------------------------------------------------------
DEPS=(libcbor-dev libgnutls28-dev libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev
    ninja-build flex bison pkg-config python3-venv dpkg-dev gcc make xz-utils)
missing=()
for p in "${DEPS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing build dependencies (${missing[*]}); as root: apt-get install ${missing[*]}"
    say "installing build dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}" >&2; } \
        || die "apt-get install ${missing[*]} failed"
fi

# --- the source: a deb-src entry for bookworm-backports, then the pinned files -----------------
SRC_LIST=/etc/apt/sources.list.d/bookworm-backports-src.sources
has_debsrc() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -v '^[[:space:]]*#' | tr '\n' ' ' | grep -Eq '^deb-src [^ ]+ bookworm-backports|Types: deb-src URIs: [^ ]+ Suites:[^:]*bookworm-backports'
}
# The SHA-256 apt's Sources index gives file $1 of qemu $VER (showsrc lists every version).
index_digest() {
    apt-cache showsrc qemu 2>/dev/null | awk -v f="$1" -v v="$VER" '
        /^Package:/ {ver=""} /^Version:/ {ver=$2}
        /^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0}
        s && ver==v && $3==f && !done {print $1; done=1}'
}
if [ -z "$(index_digest "$DSC")" ]; then
    if ! has_debsrc; then
        [ "$(id -u)" = 0 ] || die "no deb-src entry for bookworm-backports; as root add $SRC_LIST (Types: deb-src)"
        say "adding $SRC_LIST (Types: deb-src, bookworm-backports)"
        printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
            'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$SRC_LIST"
    fi
    apt-get update -qq >&2 || die "apt-get update failed"
fi
# apt's (signed) index must name exactly the pinned digests.
for pair in "$DSC:$DSC_SHA" "$ORIG:$ORIG_SHA" "$DEBTAR:$DEBTAR_SHA"; do
    f=${pair%%:*}; want=${pair#*:}
    got=$(index_digest "$f")
    [ -n "$got" ] || die "apt's Sources index has no $f for qemu=$VER (is bookworm-backports deb-src configured?)"
    [ "$got" = "$want" ] || die "apt's Sources index gives $f sha256 $got, $LOCK pins $want; refusing to build"
done

DL=$OUT/src
SRC=$DL/qemu-10.0.2
mkdir -p "$DL"
if [ "$(cat "$DL/.source-key" 2>/dev/null || true)" != "$KEY" ] || [ ! -f "$SRC/configure" ]; then
    rm -rf "$SRC" "$OUT/build"
    (cd "$DL" && apt-get source --download-only -q "qemu=$VER" 2>&1 \
        | grep -v -e 'unsandboxed' -e '^Get:' -e '^Fetched' -e '^Need to get' -e '^Reading' -e '^NOTICE' -e '^Please use' -e '^git clone' -e '^$' >&2 || true)
    # The upstream tarball alone, when the mirror lacks the Debian files.
    [ -f "$DL/$ORIG" ] || (cd "$DL" && apt-get source --download-only --tar-only -q "qemu=$VER" >/dev/null 2>&1 || true)
    [ -f "$DL/$ORIG" ] || die "could not download $ORIG (apt-get source --download-only qemu=$VER)"
    [ "$(sha "$DL/$ORIG")" = "$ORIG_SHA" ] || die "$DL/$ORIG: sha256 $(sha "$DL/$ORIG"), $LOCK pins $ORIG_SHA; refusing to build"
    if [ -f "$DL/$DSC" ] && [ -f "$DL/$DEBTAR" ]; then
        [ "$(sha "$DL/$DSC")" = "$DSC_SHA" ] || die "$DSC: sha256 $(sha "$DL/$DSC"), $LOCK pins $DSC_SHA"
        [ "$(sha "$DL/$DEBTAR")" = "$DEBTAR_SHA" ] || die "$DEBTAR: sha256 $(sha "$DL/$DEBTAR"), $LOCK pins $DEBTAR_SHA"
        (cd "$DL" && dpkg-source -x "$DSC" qemu-10.0.2 >&2) \
            || die "dpkg-source -x $DSC failed"
        echo true > "$DL/.debian-patches"
    else
        say "WARNING: the mirror serves $ORIG but not $DSC / $DEBTAR (404):"
        say "WARNING: building Debian's upstream tarball (digest checked) WITHOUT Debian's patches"
        mkdir -p "$SRC"
        tar -xJf "$DL/$ORIG" -C "$SRC" --strip-components=1 || die "tar -x $ORIG failed"
        echo false > "$DL/.debian-patches"
    fi
    [ -f "$SRC/hw/i386/nitro_enclave.c" ] && [ -f "$SRC/hw/virtio/virtio-nsm.c" ] \
        || die "$SRC has no hw/i386/nitro_enclave.c / hw/virtio/virtio-nsm.c"
    echo "$KEY" > "$DL/.source-key"
fi
PATCHED=$(cat "$DL/.debian-patches")
# Debian's +ds tarball drops the prebuilt firmware (pc-bios/edk2-*.fd.bz2 and the rest;
# Debian ships them from other source packages), but QEMU's meson unpacks the edk2 blobs
# whenever bzip2 exists and fails on the missing files. This one build-system line makes
# the unpacking also depend on the files being there; no C source is touched.
EDK2_LINE='    unpack_edk2_blobs = bzip2.found()'
if grep -qxF "$EDK2_LINE" "$SRC/meson.build"; then
    [ "$(grep -cxF "$EDK2_LINE" "$SRC/meson.build")" = 1 ] || die "$SRC/meson.build: the edk2 line is not unique"
    sed -i "s|^$EDK2_LINE\$|    unpack_edk2_blobs = bzip2.found() and fs.exists('pc-bios/edk2-x86_64-code.fd.bz2')|" "$SRC/meson.build"
fi
grep -qF "fs.exists('pc-bios/edk2-x86_64-code.fd.bz2')" "$SRC/meson.build" || die "$SRC/meson.build: could not adjust the edk2 unpacking line"

# --- meson: pinned wheels in a private venv (Debian's +ds tarball drops QEMU's own) -----------
VENV=$OUT/pyvenv-tools
if [ ! -x "$VENV/bin/meson" ] || [ "$("$VENV/bin/meson" --version)" != "$MESON_VERSION" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    printf 'meson==%s --hash=sha256:%s\npycotap==%s --hash=sha256:%s\n' \
        "$MESON_VERSION" "$MESON_SHA" "$PYCOTAP_VERSION" "$PYCOTAP_SHA" > "$VENV/requirements.txt"
    "$VENV/bin/pip" install -q --require-hashes --no-deps -r "$VENV/requirements.txt" >&2 \
        || die "pip install meson==$MESON_VERSION pycotap==$PYCOTAP_VERSION (hash-pinned) failed"
fi

# --- configure and build ----------------------------------------------------------------------
BUILD=$OUT/build
mkdir -p "$BUILD"
cd "$BUILD"
if [ ! -f build.ninja ] || [ "$(cat .configure-key 2>/dev/null || true)" != "$KEY" ]; then
    say "configuring (x86_64-softmmu, libcbor + gnutls, no docs/GUI)"
    # Firmware (qboot/SeaBIOS for the microvm under nitro-enclave) comes from Debian's
    # packages, where Debian's own QEMU looks for it; the +ds tarball ships none.
    "$SRC/configure" --prefix="$OUT" --python="$VENV/bin/python3" \
        --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu \
        --target-list=x86_64-softmmu --disable-download --disable-docs --disable-werror \
        --disable-install-blobs --enable-libcbor --enable-gnutls --enable-fdt=system --enable-vhost-user \
        --disable-gtk --disable-sdl --disable-vnc --disable-opengl --disable-spice \
        --disable-curses --disable-virglrenderer --disable-xen --disable-guest-agent \
        --disable-tools --disable-user --disable-slirp --disable-libusb --disable-usb-redir \
        --disable-alsa --disable-pa --disable-pipewire --disable-jack --disable-oss \
        --disable-rust >"$OUT/configure.log" 2>&1 \
        || { tail -30 "$OUT/configure.log" >&2; die "configure failed (log: $OUT/configure.log)"; }
    echo "$KEY" > .configure-key
fi
say "building qemu-system-x86_64 (ninja -j$JOBS; log: $OUT/build.log)"
t0=$(date +%s)
ninja -j"$JOBS" qemu-system-x86_64 >"$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log" >&2; die "QEMU build failed (log: $OUT/build.log)"; }
t1=$(date +%s)
mkdir -p "$OUT/bin"
cp qemu-system-x86_64 "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
has_machine "$BIN" || die "$BIN was built but does not list nitro-enclave in -machine help (see $OUT/configure.log: libcbor/gnutls/fdt found?)"

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
{
    printf '{\n'
    printf '  "qemu_source_version": %s,\n' "$(json_str "$VER")"
    printf '  "qemu_dsc_sha256": "%s",\n' "$DSC_SHA"
    printf '  "qemu_orig_sha256": "%s",\n' "$ORIG_SHA"
    printf '  "debian_patches_applied": %s,\n' "$PATCHED"
    printf '  "meson_version": %s,\n' "$(json_str "$MESON_VERSION")"
    printf '  "compiler": %s,\n' "$(json_str "$(gcc --version | awk 'NR==1')")"
    printf '  "libcbor": %s,\n' "$(json_str "$(dpkg-query -W -f '${Version}' libcbor-dev)")"
    printf '  "gnutls": %s,\n' "$(json_str "$(dpkg-query -W -f '${Version}' libgnutls28-dev)")"
    printf '  "build_seconds": %s,\n' "$((t1 - t0))"
    printf '  "input_key": "%s",\n' "$KEY"
    printf '  "qemu_sha256": "%s"\n' "$(sha "$BIN")"
    printf '}\n'
} > "$INFO.tmp"
mv "$INFO.tmp" "$INFO"
say "built $BIN ($("$BIN" --version | head -1); nitro-enclave present; $((t1 - t0)) s)"
