#!/usr/bin/env bash
# Builds the two OCI images node-agent's tests and demo need, with no registry: a pause image
# (static C binary) and a busybox image (Debian's busybox-static, plus udp-who), and imports them into
# containerd's k8s.io namespace.
#   hack/images.sh build OUTDIR            -> OUTDIR/pause.tar, OUTDIR/busybox.tar
#   hack/images.sh import OUTDIR SOCKET    -> ctr images import both
set -euo pipefail

PAUSE_IMAGE=${PAUSE_IMAGE:-registry.k8s.io/pause:3.9}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-docker.io/library/busybox:1.36}
here=$(cd "$(dirname "$0")" && pwd)

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# oci_image NAME ROOTFS_DIR CONFIG_JSON_FRAGMENT OUT_TAR
oci_image() {
  local name=$1 rootfs=$2 cfg=$3 out=$4 work
  work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  # Deterministic layer: sorted names, fixed owner and time.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
  local ld; ld=$(sha "$work/layer.tar"); mv "$work/layer.tar" "$work/blobs/sha256/$ld"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$cfg" "$ld" > "$work/config.json"
  local cd; cd=$(sha "$work/config.json"); local cs; cs=$(size "$work/config.json"); mv "$work/config.json" "$work/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cd" "$cs" "$ld" "$(size "$work/blobs/sha256/$ld")" > "$work/manifest.json"
  local md; md=$(sha "$work/manifest.json"); local ms; ms=$(size "$work/manifest.json"); mv "$work/manifest.json" "$work/blobs/sha256/$md"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$md" "$ms" "$name" "${name##*:}" > "$work/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci-layout"
  tar --owner=0 --group=0 -C "$work" -cf "$out" oci-layout index.json blobs
  rm -rf "$work"
}

build() {
  local out=$1; mkdir -p "$out"
  local tmp; tmp=$(mktemp -d)
  # pause
  mkdir -p "$tmp/pause"
  gcc -static -Os -o "$tmp/pause/pause" "$here/pause/pause.c"
  strip "$tmp/pause/pause"
  oci_image "$PAUSE_IMAGE" "$tmp/pause" '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$out/pause.tar"
  # busybox: one static binary plus applet links, passwd/group, and a web root.
  local r="$tmp/busybox"
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/var/www" "$r/root" "$r/home"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  # udp-who: a UDP server that answers with the pod's name (the service proxy's UDP tests).
  gcc -static -Os -o "$r/bin/udp-who" "$here/udp-who/udp-who.c"
  strip "$r/bin/udp-who"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$r/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  echo '<html><body>hello from node-agent</body></html>' > "$r/var/www/index.html"
  oci_image "$BUSYBOX_IMAGE" "$r" '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}' "$out/busybox.tar"
  rm -rf "$tmp"
}

import() {
  local dir=$1 sock=$2
  for t in pause busybox; do
    ctr -a "$sock" -n k8s.io images import --no-unpack=false "$dir/$t.tar" >/dev/null
  done
}

case "${1:-}" in
  build) build "$2" ;;
  import) import "$2" "$3" ;;
  *) echo "usage: $0 build OUTDIR | import OUTDIR SOCKET" >&2; exit 2 ;;
esac
