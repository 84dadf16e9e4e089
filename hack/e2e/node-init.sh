#!/usr/bin/env bash
# The init of the e2e node's mount and PID namespaces. tests/e2e/node.py starts it as
#   unshare --mount --propagation private --pid --fork --kill-child --mount-proc -- node-init.sh PAUSE DIR
# and then starts containerd, the kubelet and the rest inside with nsenter. Before they run:
# - private tmpfs over /run, /var/lib and /var/log: their state (containerd's images and
#   containers, the kubelet's pods) and what they write there whatever their configuration
#   says (/run/netns, /var/lib/kubelet/device-plugins, /var/lib/cni, /var/log/containers)
#   exist only in here, like every mount they make (root filesystems, volumes, pods'
#   network namespaces), and go with the namespace;
# - the kernel tunables the kubelet sets when it starts (kernel.panic=10, panic_on_oops=1,
#   vm.overcommit_memory=1, ...: Kubernetes 1.37 can only set them or refuse to start) are
#   files holding the host's values, bind-mounted over /proc/sys: the kubelet writes those.
# Then it writes DIR/ready and becomes PAUSE, an init that reaps orphans until the harness
# kills it: that ends every process in the namespace, and with them their mounts.
set -euo pipefail
pause=${1:?usage: node-init.sh PAUSE DIR}
dir=${2:?usage: node-init.sh PAUSE DIR}

for path in /run /var/lib /var/log; do
  mount -t tmpfs -o mode=0755 lark-e2e "$path"
done
mkdir -p /run/lark-e2e/sysctl
for key in kernel/panic kernel/panic_on_oops vm/overcommit_memory vm/panic_on_oom \
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
  copy=/run/lark-e2e/sysctl/${key//\//.}
  cat "/proc/sys/$key" >"$copy"
  mount --bind "$copy" "/proc/sys/$key"
done
: >"$dir/ready"
exec "$pause"
