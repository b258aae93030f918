#!/usr/bin/env bash
# Builds a kind node image for Kubernetes $KUBERNETES_VERSION with no registry, following the
# steps of kind's `build node-image` (pkg/build/nodeimage) by hand:
#   1. a Debian 12 rootfs by debootstrap (systemd 252: later versions refuse cgroup v1),
#   2. kind's own base files (from its Go module), containerd v2, kubelet, kubeadm, kubectl, CNI,
#   3. the control-plane images (built FROM scratch around our binaries) imported into the
#      node's containerd, then committed.
# Prints the image name on stdout. Run under hack/docker.sh exec, after hack/kind/binaries.sh.
set -euo pipefail
LOG_TAG=kind
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
here=$root/hack/kind
k8s=v$KUBERNETES_VERSION
node_bins=$cache/kubernetes-node-$KUBERNETES_VERSION
image=retrospective-kind/node:$k8s
rootfs_image=retrospective-kind/debian:$DEBIAN_SUITE
etcd_tag=$ETCD_VERSION-0

# shellcheck source=common.sh
source "$here/common.sh"
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. The Debian rootfs: everything kind's base image installs, plus runc and the CNI plugins.
packages=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,runc,containernetworking-plugins,e2fsprogs
rootfs_inputs=$(echo "$DEBIAN_SUITE $packages" | sha256sum | cut -c1-12)
if [ "$(label "$rootfs_image")" != "$rootfs_inputs" ]; then
  started=$SECONDS
  command -v debootstrap >/dev/null || { log "installing debootstrap (apt-get)"; sudo_ apt-get update -qq; DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq debootstrap >/dev/null; }
  log "node rootfs: debootstrap $DEBIAN_SUITE with $packages (about a minute)"
  dir=$(mktemp -d)
  sudo_ debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$dir" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  sudo_ rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  # docker import cannot set a label: add it in a one-line build on top.
  sudo_ tar -C "$dir" -c . | docker import - "$rootfs_image-untagged" >/dev/null
  sudo_ rm -rf "$dir"
  printf 'FROM %s\nLABEL retrospective.dev/inputs=%s\n' "$rootfs_image-untagged" "$rootfs_inputs" | build -t "$rootfs_image" -
  docker rmi "$rootfs_image-untagged" >/dev/null
  log "node rootfs: built in $((SECONDS - started)) s"
else
  log "node rootfs: cached"
fi

# The control-plane images are named and tagged as kubeadm $k8s expects (etcd and CoreDNS by the
# tags the cluster config asks for: the versions built here).
inputs=$(cat "$0" "$here/common.sh" "$here"/node/* "$root/hack/versions.env" | sha256sum | cut -c1-12)
if [ "$(label "$image")" = "$inputs" ]; then
  log "node image $image: cached"
  echo "$image"
  exit 0
fi
started=$SECONDS
log "node image $image: building"
for component in kube-apiserver kube-controller-manager kube-scheduler; do
  src=$node_bins/$component
  [ "$component" = kube-apiserver ] && src=$cache/kubernetes-$KUBERNETES_VERSION/kube-apiserver
  scratch_image "registry.k8s.io/$component:$k8s" "$src"
done
scratch_image "registry.k8s.io/etcd:$etcd_tag" "$cache/etcd-$ETCD_VERSION/etcd"
scratch_image "registry.k8s.io/coredns/coredns:v$COREDNS_VERSION" "$cache/coredns-$COREDNS_VERSION/coredns" entrypoint
scratch_image "registry.k8s.io/pause:3.10" "$cache/pause-$KUBERNETES_VERSION/pause" entrypoint
docker tag registry.k8s.io/pause:3.10 registry.k8s.io/pause:3.10.2
# kube-proxy programs iptables: it gets the Debian rootfs and a wrapper picking the node's backend.
ctx=$(mktemp -d)
cp "$node_bins/kube-proxy" "$here/node/iptables-wrapper" "$ctx/"
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $rootfs_image
COPY kube-proxy /usr/local/bin/kube-proxy
COPY iptables-wrapper /usr/sbin/iptables-wrapper
RUN for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do ln -sf iptables-wrapper /usr/sbin/\$c; done
DOCKERFILE
build -t "registry.k8s.io/kube-proxy:$k8s" "$ctx"
rm -rf "$ctx"
log "control-plane images built"

# 2. The node: kind's base files and our binaries on the rootfs, configured as kind's base image is.
kind_files=$(module_dir "sigs.k8s.io/kind@v$KIND_VERSION")/images/base/files
ctx=$(mktemp -d)
cp -r "$kind_files" "$ctx/files" && chmod -R u+w "$ctx/files"
mkdir -p "$ctx/bin" "$ctx/kube"
cp "$cache/containerd-$CONTAINERD_VERSION"/{containerd,ctr,containerd-shim-runc-v2} "$ctx/bin/"
cp "$node_bins"/{kubelet,kubeadm} "$cache/kubernetes-$KUBERNETES_VERSION/kubectl" "$ctx/kube/"
cp "$here/node/10-ptp.conflist" "$ctx/"
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $rootfs_image
COPY files/ /
COPY bin/ /usr/local/bin/
COPY kube/ /usr/bin/
COPY 10-ptp.conflist /etc/cni/net.d/10-ptp.conflist
RUN chmod 0755 /kind /kind/bin /kind/bin/* /usr/local/bin/* /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl \\
 && mkdir -p /opt/cni/bin && cp /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/ptp /usr/lib/cni/portmap /opt/cni/bin/ \\
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* /lib/systemd/system/local-fs.target.wants/* \\
          /lib/systemd/system/sockets.target.wants/*udev* /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests /kind/images \\
 && echo "$k8s" > /kind/version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
DOCKERFILE
build -t "$image-base" "$ctx"
rm -rf "$ctx"

# 3. Import the control-plane images into the node's containerd, as kind's build does, and commit.
tars=$(mktemp -d)
images=(kube-apiserver:$k8s kube-controller-manager:$k8s kube-scheduler:$k8s kube-proxy:$k8s etcd:$etcd_tag coredns/coredns:v$COREDNS_VERSION pause:3.10 pause:3.10.2)
for name in "${images[@]}"; do docker save "registry.k8s.io/$name" -o "$tars/$(echo "$name" | tr '/:' '__').tar"; done
# --init: something must reap containerd when it is stopped (sleep as PID 1 would not).
cid=$(docker run -d --init --privileged --network none --entrypoint sleep "$image-base" infinity)
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true; rm -rf "$tars"' EXIT
docker exec "$cid" bash -c 'containerd >/var/log/containerd-build.log 2>&1 &'
for _ in $(seq 1 60); do docker exec "$cid" ctr version >/dev/null 2>&1 && break; sleep 0.5; done
for tar in "$tars"/*.tar; do
  docker cp "$tar" "$cid:/kind/images/"
  # (ctr warns that cgroup v1 is deprecated on every call: true, and not news here.)
  docker exec "$cid" ctr --namespace=k8s.io images import --no-unpack --all-platforms --digests \
    --label=io.cri-containerd.pinned=pinned "/kind/images/$(basename "$tar")" 2> >(grep -v DEPRECATION >&2) >/dev/null
done
docker exec "$cid" bash -c 'pkill -x containerd; while pgrep -x containerd >/dev/null; do sleep 0.2; done; rm -rf /kind/images/* /var/log/containerd-build.log'
docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  --change "LABEL retrospective.dev/inputs=$inputs" "$cid" "$image" >/dev/null
docker rm -f "$cid" >/dev/null
docker rmi "$image-base" >/dev/null
log "node image $image: built in $((SECONDS - started)) s"
echo "$image"
