#!/usr/bin/env bash
# Builds the packages from the native-AOT binaries: a .deb (dpkg-deb) and an .rpm (rpmbuild) for
# each of node-agent and node-agent-control-plane.
#   packaging/build.sh [OUT_DIR]        default artifacts/packages
# VERSION (default: the projects' <Version>) and RELEASE (default 1) name the build. The binaries
# are taken from artifacts/publish/ (published first when missing). Needs dpkg-deb, rpmbuild
# (Debian package rpm), gzip; runs as any user.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$(mkdir -p "${1:-artifacts/packages}" && cd "${1:-artifacts/packages}" && pwd)
version=${VERSION:-$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/NodeAgent/NodeAgent.csproj | head -1)}
release=${RELEASE:-1}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
maintainer="NodeAgent maintainers <maintainers@users.noreply.h-seed-6361b499.example>"
agent_bin=artifacts/publish/node-agent/node-agent
cp_bin=artifacts/publish/control-plane/control-plane
for tool in dpkg-deb rpmbuild gzip; do
  command -v $tool >/dev/null || { echo "packaging/build.sh: $tool is missing (apt-get install dpkg rpm gzip)" >&2; exit 1; }
done
[ -x "$agent_bin" ] || dotnet publish src/NodeAgent -c Release -r linux-x64 -o artifacts/publish/node-agent >/dev/null
[ -x "$cp_bin" ] || dotnet publish src/ControlPlane -c Release -r linux-x64 -o artifacts/publish/control-plane >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# package NAME BINARY UNIT SUMMARY DESCRIPTION DEB_DEPENDS RPM_REQUIRES CONFFILE:SOURCE... -- EXTRA_SHARE_FILES...
package() {
  local name=$1 binary=$2 unit=$3 summary=$4 description=$5 deb_depends=$6 rpm_requires=$7
  shift 7
  local conf=() share=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do conf+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  share=("$@")
  local root=$work/$name
  install -d -m 0755 "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/node-agent" "$root/usr/share/man/man8" "$root/usr/share/doc/$name"
  install -m 0755 "$binary" "$root/usr/bin/$name"
  install -m 0644 "systemd/$unit" "$root/lib/systemd/system/$unit"
  local c
  for c in "${conf[@]}"; do install -m 0644 "packaging/${c#*:}" "$root/${c%%:*}"; done
  if [ ${#share[@]} -gt 0 ]; then
    install -d -m 0755 "$root/usr/share/node-agent"
    for c in "${share[@]}"; do install -m 0644 "packaging/$c" "$root/usr/share/node-agent/$(basename "$c")"; done
  fi
  local files=() f
  for c in "${conf[@]}"; do files+=("/${c%%:*}: default configuration (a conffile: your edits are kept)"); done
  packaging/manpage.sh "$root/usr/bin/$name" "$name" 8 "$version" "$summary" "$description" "${files[@]}" \
    | gzip -9n > "$root/usr/share/man/man8/$name.8.gz"
  cat > "$root/usr/share/doc/$name/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: NodeAgent
Source: https://example.invalid/node-agent

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) NodeAgent authors
License: NodeAgent
 The NodeAgent authors have not yet published licence terms for this software;
 all rights are reserved until they do.
COPYRIGHT
  printf '%s (%s-%s) unstable; urgency=medium\n\n  * Build of %s.\n\n -- %s  %s\n' \
    "$name" "$version" "$release" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$maintainer" \
    "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$root/usr/share/doc/$name/changelog.Debian.gz"
  install -d -m 0755 "$root/usr/share/lintian/overrides"
  sed "s/@NAME@/$name/g" packaging/lintian/overrides.in > "$root/usr/share/lintian/overrides/$name"
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

  # .deb
  local deb=$work/deb-$name
  cp -a "$root" "$deb"
  install -d -m 0755 "$deb/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version-$release"
    echo "Architecture: amd64"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$deb" | cut -f1)"
    echo "Depends: $deb_depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: https://example.invalid/node-agent"
    echo "Description: $summary"
    echo "$description" | fold -s -w 78 | sed -e 's/ *$//' -e 's/^/ /'
  } > "$deb/DEBIAN/control"
  for c in "${conf[@]}"; do echo "/${c%%:*}"; done > "$deb/DEBIAN/conffiles"
  for s in postinst prerm postrm; do
    sed "s/@UNIT@/$unit/g" "packaging/deb/$s" > "$deb/DEBIAN/$s"
    chmod 0755 "$deb/DEBIAN/$s"
  done
  dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/${name}_${version}-${release}_amd64.deb" >/dev/null

  # .rpm (units in rpm's unit directory; the same files otherwise)
  local stage=$work/rpm-stage-$name
  cp -a "$root" "$stage"
  install -d -m 0755 "$stage/usr/lib/systemd"
  mv "$stage/lib/systemd/system" "$stage/usr/lib/systemd/system"
  rm -rf "$stage/lib" "$stage/usr/share/doc/$name/changelog.Debian.gz" "$stage/usr/share/lintian"
  local rpmfiles="/usr/bin/$name
/usr/lib/systemd/system/$unit
%dir /etc/node-agent
/usr/share/man/man8/$name.8.gz
%doc /usr/share/doc/$name/copyright"
  for c in "${conf[@]}"; do rpmfiles+=$'\n'"%config(noreplace) /${c%%:*}"; done
  [ ${#share[@]} -gt 0 ] && rpmfiles+=$'\n'"/usr/share/node-agent"
  local spec=$work/$name.spec
  NAME=$name VERSION_=$version RELEASE_=$release SUMMARY=$summary DESCRIPTION=$description REQUIRES=$rpm_requires STAGE=$stage FILES=$rpmfiles UNIT=$unit \
    python3 - packaging/rpm/package.spec.in "$spec" <<'PY'
import os, sys
s = open(sys.argv[1]).read()
for k, v in [("NAME", "NAME"), ("VERSION", "VERSION_"), ("RELEASE", "RELEASE_"), ("SUMMARY", "SUMMARY"), ("DESCRIPTION", "DESCRIPTION"),
             ("REQUIRES", "REQUIRES"), ("STAGE", "STAGE"), ("FILES", "FILES"), ("UNIT", "UNIT")]:
    s = s.replace("@" + k + "@", os.environ[v])
open(sys.argv[2], "w").write(s)
PY
  rpmbuild -bb --quiet --define "_topdir $work/rpmbuild" --define "_rpmdir $work/rpms" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_binary_payload w6.xzdio" "$spec" >/dev/null
  mv "$work/rpms/$name-$version-$release.x86_64.rpm" "$out/"
}

package node-agent "$agent_bin" node-agent.service \
  "Kubernetes node agent: kubelet and kube-proxy in one native daemon" \
  "NodeAgent runs the pods of a Kubernetes node through a CRI runtime (containerd) with the kubelet's semantics, reports the node and its pods to the API server, serves the kubelet API and cAdvisor-style metrics, and programs Service routing with nftables, as kube-proxy does. The CNI configuration and containerd settings it needs are in /usr/share/node-agent." \
  "libc6 (>= 2.34), libssl3, containerd, runc, nftables, containernetworking-plugins, conntrack" \
  "containerd, runc, nftables, containernetworking-plugins, conntrack-tools" \
  etc/node-agent/config.yaml:etc/config.yaml etc/node-agent/node-agent.env:etc/node-agent.env -- \
  share/10-node-agent.conflist share/containerd-cri.toml

package node-agent-control-plane "$cp_bin" node-agent-control-plane.service \
  "Kubernetes API server, scheduler and controllers on etcd for NodeAgent clusters" \
  "The companion control plane of NodeAgent: the Kubernetes API (served to the stock kubectl) stored in etcd v3, the default scheduler and the core controllers (Deployment, ReplicaSet, DaemonSet, EndpointSlice, node lifecycle, namespace, garbage collection), so a cluster can run with nothing else installed." \
  "libc6 (>= 2.34), libssl3, etcd-server" \
  "etcd" \
  etc/node-agent/control-plane.env:etc/control-plane.env

ls -1 "$out"
