#!/usr/bin/env bash
# Build the cleanroom enclave image (EIF) reproducibly.
#
#   scripts/build-eif.sh PATH/TO/enclave-app [OUT_DIR]
#
# PATH/TO/enclave-app is the static (musl) supervisor; it becomes /init in the initramfs.
# OUT_DIR defaults to target/eif. Writes:
#   OUT_DIR/cleanroom.eif     the image
#   OUT_DIR/pcrs.json         {"Measurements": {...}} as `nitro-cli build-enclave` prints
#   OUT_DIR/build-info.json   exact inputs (kernel source/version/digests, cmdline)
#   OUT_DIR/initramfs.cpio    the ramdisk, OUT_DIR/vmlinuz the kernel
#
# The kernel (EIF_KERNEL):
#   built          (default) the project's own kernel, target/kernel/bzImage, built from
#                  Debian's linux-source-6.12 by scripts/build-kernel.sh (run here; it does
#                  nothing when the kernel is up to date). Every driver is built in: the
#                  initramfs holds /init and nothing else.
#   debian-cloud   Debian's bookworm-backports linux-image-*-cloud-amd64 (6.12+), fetched
#                  with `apt-get download` (the backports source is added under
#                  /etc/apt/sources.list.d/ if missing). Its vsock and NSM modules (and
#                  their dependencies) are decompressed into /lib/modules/NAME.ko for the
#                  supervisor to load. The .deb is cached in OUT_DIR/cache. This kernel
#                  lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so it cannot find its devices
#                  the way Nitro declares them; kept for comparison only.
#
# Environment (all optional):
#   EIF_KERNEL       built (default) or debian-cloud, see above
#   KERNEL_PACKAGE   debian-cloud: exact package, e.g. linux-image-6.12.95+deb12-cloud-amd64
#                    (default: what linux-image-cloud-amd64 in bookworm-backports depends on)
#   KERNEL_VERSION   debian-cloud: exact Debian version of KERNEL_PACKAGE (default: the candidate)
#   EIF_MODULES      debian-cloud: space-separated module names (default below; deps are added)
#   EIF_CMDLINE      kernel command line (default below)
#   SOURCE_DATE_EPOCH  timestamp for cpio mtimes and the EIF BuildTime (default 0)
#   EIF_SIGNING_CERT, EIF_SIGNING_KEY   P-384 PEM cert+key to sign PCR0 (adds PCR8)
#   EIF_BUILD        eif-build binary (default: cargo build --release -p eif-build)
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

die() { echo "build-eif: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 PATH/TO/enclave-app [OUT_DIR]"
APP=$1
[ -f "$APP" ] || die "$APP: no such file"
APP=$(realpath "$APP")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$ROOT/target/eif}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
CACHE=$OUT/cache
mkdir -p "$CACHE"

: "${SOURCE_DATE_EPOCH:=0}"
export SOURCE_DATE_EPOCH
: "${EIF_CMDLINE:=console=ttyS0 reboot=k panic=30 random.trust_cpu=on virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6}"
: "${EIF_MODULES:=vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport virtio_mmio nsm}"
: "${EIF_KERNEL:=built}"
case $EIF_KERNEL in
    built | debian-cloud) ;;
    *) die "EIF_KERNEL=$EIF_KERNEL: use built or debian-cloud" ;;
esac

# --- eif-build -------------------------------------------------------------------------
if [ -z "${EIF_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --quiet --release -p eif-build)
    EIF_BUILD=${CARGO_TARGET_DIR:-$ROOT/target}/release/eif-build
fi
[ -x "$EIF_BUILD" ] || die "$EIF_BUILD: not executable"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ORDERED=()
sha() { sha256sum "$1" | cut -d' ' -f1; }
KDIR=$ROOT/target/kernel
# A string field of the kernel's build-info.json (one "key": "value" per line).
kinfo() { sed -n "s/^  \"$1\": \"\(.*\)\",\{0,1\}$/\1/p" "$KDIR/build-info.json"; }

# Each sets VMLINUZ (the kernel image), KVER (its release) and IMG_OS (EIF metadata);
# debian-cloud also fills ORDERED with the modules to put in the initramfs.
use_built_kernel() {
    # --- the project's kernel (scripts/build-kernel.sh) ------------------------------------
    "$ROOT/scripts/build-kernel.sh" "$KDIR" || die "the kernel build failed"
    [ -f "$KDIR/bzImage" ] && [ -f "$KDIR/build-info.json" ] || die "no kernel in $KDIR after scripts/build-kernel.sh"
    KVER=$(kinfo kernel_release)
    [ -n "$KVER" ] || die "$KDIR/build-info.json: no kernel_release"
    [ "$(kinfo bzimage_sha256)" = "$(sha "$KDIR/bzImage")" ] || die "$KDIR/bzImage is not the kernel its build-info.json describes"
    VMLINUZ=$KDIR/bzImage
    IMG_OS="cleanroom kernel from Debian $(kinfo linux_source_package) $(kinfo linux_source_version)"
}

use_debian_cloud_kernel() {
    # --- apt: bookworm-backports -------------------------------------------------------
    BACKPORTS_LIST=/etc/apt/sources.list.d/bookworm-backports.sources
    has_backports_source() {
        local sources
        sources=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' || true)
        [[ $sources == *bookworm-backports* ]]
    }
    if ! has_backports_source; then
        [ "$(id -u)" = 0 ] || die "bookworm-backports is not an apt source; run as root once to add $BACKPORTS_LIST"
        cat > "$BACKPORTS_LIST" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        echo "build-eif: added $BACKPORTS_LIST" >&2
    fi
    backports_known() {
        local policy
        policy=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null || true)
        [[ $policy == *bookworm-backports* ]]
    }
    if ! backports_known; then
        apt-get update -qq >&2 || die "apt-get update failed"
        backports_known || die "linux-image-cloud-amd64 from bookworm-backports is not available"
    fi

    if [ -z "${KERNEL_PACKAGE:-}" ]; then
        KERNEL_PACKAGE=$(apt-cache depends -t bookworm-backports linux-image-cloud-amd64 2>/dev/null \
            | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | awk 'NR==1')
        [ -n "$KERNEL_PACKAGE" ] || die "cannot resolve the bookworm-backports cloud kernel package"
    fi
    if [ -z "${KERNEL_VERSION:-}" ]; then
        KERNEL_VERSION=$(apt-cache policy "$KERNEL_PACKAGE" | sed -n 's/^ *Candidate: //p')
        [ -n "$KERNEL_VERSION" ] && [ "$KERNEL_VERSION" != "(none)" ] || die "$KERNEL_PACKAGE has no candidate version"
    fi
    # 6.12 or newer
    case $KERNEL_PACKAGE in
        linux-image-[0-9]*) ;;
        *) die "$KERNEL_PACKAGE: not a versioned linux-image package" ;;
    esac
    KREL=${KERNEL_PACKAGE#linux-image-}
    KMAJ=${KREL%%.*}; KREST=${KREL#*.}; KMIN=${KREST%%[!0-9]*}
    if [ "$KMAJ" -lt 6 ] || { [ "$KMAJ" -eq 6 ] && [ "$KMIN" -lt 12 ]; }; then
        die "$KERNEL_PACKAGE is older than 6.12"
    fi

    EXPECT_SHA=$(apt-cache show "$KERNEL_PACKAGE=$KERNEL_VERSION" | sed -n 's/^SHA256: //p' | awk 'NR==1')
    [ -n "$EXPECT_SHA" ] || die "no SHA256 for $KERNEL_PACKAGE=$KERNEL_VERSION in the apt lists"
    DEB=$CACHE/${KERNEL_PACKAGE}_${KERNEL_VERSION//:/%3a}_amd64.deb
    if [ ! -f "$DEB" ] || [ "$(sha256sum "$DEB" | cut -d' ' -f1)" != "$EXPECT_SHA" ]; then
        rm -f "$DEB"
        (cd "$CACHE" && apt-get download -q "$KERNEL_PACKAGE=$KERNEL_VERSION" 2>&1 \
            | grep -v 'Download is performed unsandboxed' >&2 || true)
        [ -f "$DEB" ] || DEB=$(ls "$CACHE"/"${KERNEL_PACKAGE}"_*_amd64.deb 2>/dev/null | awk 'NR==1')
        [ -f "$DEB" ] || die "apt-get download $KERNEL_PACKAGE=$KERNEL_VERSION failed"
    fi
    GOT_SHA=$(sha256sum "$DEB" | cut -d' ' -f1)
    [ "$GOT_SHA" = "$EXPECT_SHA" ] || die "$DEB: sha256 $GOT_SHA, apt says $EXPECT_SHA"

    # --- extract kernel and modules --------------------------------------------------------
    dpkg-deb -x "$DEB" "$WORK/deb"
    VMLINUZ=$(ls "$WORK"/deb/boot/vmlinuz-* | awk 'NR==1')
    [ -f "$VMLINUZ" ] || die "no vmlinuz in $DEB"
    KVER=${VMLINUZ##*/vmlinuz-}
    MODDIR=$WORK/deb/lib/modules/$KVER
    [ -d "$MODDIR" ] || MODDIR=$WORK/deb/usr/lib/modules/$KVER
    [ -d "$MODDIR" ] || die "no modules directory for $KVER"

    # name -> decompressed file in $WORK/mods
    mkdir -p "$WORK/mods"
    find_module() {
        local name=$1 alt
        alt=${name//_/-}
        find "$MODDIR" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" -o -name "$name.ko.gz" \
            -o -name "$alt.ko" -o -name "$alt.ko.xz" -o -name "$alt.ko.zst" -o -name "$alt.ko.gz" \) | sort | awk 'NR==1'
    }
    decompress() {
        case $1 in
            *.ko.xz) xz -dc "$1" ;;
            *.ko.zst) zstd -qdc "$1" ;;
            *.ko.gz) gzip -dc "$1" ;;
            *.ko) cat "$1" ;;
        esac
    }
    declare -A HAVE=()
    add_module() {
        local name=${1//-/_} src dep
        [ -n "${HAVE[$name]:-}" ] && return 0
        src=$(find_module "$name")
        [ -n "$src" ] || die "module $name not found in $KERNEL_PACKAGE (built in? check config-$KVER)"
        decompress "$src" > "$WORK/mods/$name.ko"
        HAVE[$name]=1
        # dependencies first (from the .modinfo section)
        for dep in $(tr '\0' '\n' < "$WORK/mods/$name.ko" | sed -n 's/^depends=//p' | awk 'NR==1' | tr ',' ' '); do
            add_module "$dep"
        done
        ORDERED+=("$name")
    }
    for m in $EIF_MODULES; do add_module "$m"; done

    IMG_OS="Debian bookworm-backports"
}

if [ "$EIF_KERNEL" = built ]; then use_built_kernel; else use_debian_cloud_kernel; fi

# --- initramfs -------------------------------------------------------------------------
CPIO_ARGS=(--file "init=$APP")
for m in ${ORDERED[@]+"${ORDERED[@]}"}; do
    CPIO_ARGS+=(--file "lib/modules/$m.ko=$WORK/mods/$m.ko")
done
"$EIF_BUILD" initramfs --out "$OUT/initramfs.cpio" "${CPIO_ARGS[@]}" >&2
cp "$VMLINUZ" "$OUT/vmlinuz"

# --- EIF -------------------------------------------------------------------------------
SIGN_ARGS=()
if [ -n "${EIF_SIGNING_CERT:-}" ] || [ -n "${EIF_SIGNING_KEY:-}" ]; then
    [ -n "${EIF_SIGNING_CERT:-}" ] && [ -n "${EIF_SIGNING_KEY:-}" ] || die "set both EIF_SIGNING_CERT and EIF_SIGNING_KEY"
    SIGN_ARGS=(--signing-certificate "$EIF_SIGNING_CERT" --private-key "$EIF_SIGNING_KEY")
fi
"$EIF_BUILD" build \
    --kernel "$OUT/vmlinuz" \
    --cmdline "$EIF_CMDLINE" \
    --ramdisk "$OUT/initramfs.cpio" \
    --name cleanroom \
    --img-os "$IMG_OS" \
    --img-kernel "$KVER" \
    ${SIGN_ARGS[@]+"${SIGN_ARGS[@]}"} \
    --output "$OUT/cleanroom.eif" > "$OUT/pcrs.json.tmp"
mv "$OUT/pcrs.json.tmp" "$OUT/pcrs.json"

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
{
    printf '{\n'
    printf '  "kernel_source": "%s",\n' "$EIF_KERNEL"
    if [ "$EIF_KERNEL" = built ]; then
        printf '  "linux_source_package": %s,\n' "$(json_str "$(kinfo linux_source_package)")"
        printf '  "linux_source_version": %s,\n' "$(json_str "$(kinfo linux_source_version)")"
        printf '  "linux_source_deb_sha256": "%s",\n' "$(kinfo linux_source_deb_sha256)"
        printf '  "kernel_config_sha256": "%s",\n' "$(kinfo config_sha256)"
    else
        printf '  "kernel_package": %s,\n' "$(json_str "$KERNEL_PACKAGE")"
        printf '  "kernel_package_version": %s,\n' "$(json_str "$KERNEL_VERSION")"
        printf '  "kernel_package_sha256": "%s",\n' "$GOT_SHA"
    fi
    printf '  "kernel_release": %s,\n' "$(json_str "$KVER")"
    printf '  "vmlinuz_sha256": "%s",\n' "$(sha "$OUT/vmlinuz")"
    printf '  "cmdline": %s,\n' "$(json_str "$EIF_CMDLINE")"
    printf '  "modules": [%s],\n' "$( (for m in ${ORDERED[@]+"${ORDERED[@]}"}; do printf '"%s",' "$m"; done) | sed 's/,$//')"
    printf '  "enclave_app_sha256": "%s",\n' "$(sha "$APP")"
    printf '  "initramfs_sha256": "%s",\n' "$(sha "$OUT/initramfs.cpio")"
    printf '  "source_date_epoch": %s,\n' "$SOURCE_DATE_EPOCH"
    printf '  "eif_sha256": "%s"\n' "$(sha "$OUT/cleanroom.eif")"
    printf '}\n'
} > "$OUT/build-info.json"

if [ "$EIF_KERNEL" = built ]; then
    echo "build-eif: $OUT/cleanroom.eif (built kernel $KVER, no modules)" >&2
else
    echo "build-eif: $OUT/cleanroom.eif ($KERNEL_PACKAGE $KERNEL_VERSION; modules: ${ORDERED[*]})" >&2
fi
cat "$OUT/pcrs.json"
