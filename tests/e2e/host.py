"""What a node could change on this host, captured so that a test can compare before and
after: iptables, the sysctls a kubelet, kube-proxy or CNI plugin touches, mounts, links,
addresses and routes, named network namespaces, top-level cgroups, the paths the kubelet
and containerd use whatever their configuration says, and the node's programs running."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

from tests.e2e.node import PROGRAMS, cgroup_mounts

SYSCTL_PATTERNS = (
    "kernel/panic*",
    "kernel/keys/root_max*",
    "vm/overcommit_*",
    "vm/panic_on_oom",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/*/*",  # forwarding, route_localnet, rp_filter... per interface
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/default/forwarding",
    "net/bridge/*",
    "net/netfilter/nf_conntrack_max",
)
HOST_PATHS = (
    "/etc/cni",
    "/etc/kubernetes",
    "/opt/cni",
    "/opt/containerd",
    "/run/containerd",
    "/run/netns",
    "/run/runc",
    "/var/lib/cni",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
)


def _lines(argv: list[str]) -> tuple[str, ...]:
    if not shutil.which(argv[0]):
        return (f"({argv[0]} not installed)",)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    return tuple(sorted(line.strip() for line in out.splitlines() if line.strip()))


def _iptables(cmd: str) -> tuple[str, ...]:
    # Comments carry the time; [packets:bytes] counters move with any traffic.
    return tuple(
        re.sub(r"\[\d+:\d+\]", "", line) for line in _lines([cmd]) if not line.startswith("#")
    )


def _sysctls() -> dict[str, str]:
    values = {}
    for pattern in SYSCTL_PATTERNS:
        for path in Path("/proc/sys").glob(pattern):
            try:
                values[str(path.relative_to("/proc/sys"))] = path.read_text().strip()
            except OSError:  # write-only entries
                pass
    return values


def _mounts() -> tuple[str, ...]:
    # mount point, root, type and source; mount IDs left out
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        found.append(f"{lf[4]} {lf[3]} {rf[0]} {rf[1]}")
    return tuple(sorted(found))


def _cgroups() -> tuple[str, ...]:
    return tuple(
        sorted(f"{m}/{d.name}" for m in cgroup_mounts() for d in m.iterdir() if d.is_dir())
    )


def _programs() -> tuple[str, ...]:
    running = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue
            if comm in PROGRAMS:
                running.append(f"{comm} (pid {proc.name})")
    return tuple(sorted(running))


@dataclass(frozen=True)
class HostState:
    iptables: tuple[str, ...]
    ip6tables: tuple[str, ...]
    sysctls: dict[str, str]
    mounts: tuple[str, ...]
    links: tuple[str, ...]
    addresses: tuple[str, ...]
    routes: tuple[str, ...]
    netns: tuple[str, ...]
    cgroups: tuple[str, ...]
    paths: tuple[str, ...]
    programs: tuple[str, ...]

    @classmethod
    def capture(cls) -> HostState:
        return cls(
            iptables=_iptables("iptables-save"),
            ip6tables=_iptables("ip6tables-save"),
            sysctls=_sysctls(),
            mounts=_mounts(),
            links=tuple(sorted(os.listdir("/sys/class/net"))),
            # lifetimes of addresses a router advertised count down
            addresses=tuple(
                re.sub(r" +(valid|preferred)_lft \S+", "", a)
                for a in _lines(["ip", "-o", "addr", "show"])
            ),
            routes=_lines(["ip", "-4", "route", "show", "table", "all"]),
            netns=_lines(["ip", "netns", "list"]),
            cgroups=_cgroups(),
            paths=tuple(p for p in HOST_PATHS if os.path.lexists(p)),
            programs=_programs(),
        )

    def differences(self, after: HostState) -> list[str]:
        """What `after` has that this state had not, and the other way round."""
        out = []
        for f in fields(self):
            old, new = getattr(self, f.name), getattr(after, f.name)
            if isinstance(old, dict):
                for key in sorted(set(old) | set(new)):
                    if old.get(key) != new.get(key):
                        out.append(f"sysctl {key}: {old.get(key)!r} -> {new.get(key)!r}")
                continue
            out += [f"{f.name} lost: {x}" for x in sorted(set(old) - set(new))]
            out += [f"{f.name} gained: {x}" for x in sorted(set(new) - set(old))]
        return out
