"""Make podman work on this host: install it (Debian), and add a containers.conf drop-in only if needed.

    python -m imgclf.deploy.podman_setup [--dry-run]      # `make podman-setup`

Installs podman, runc and debootstrap (the base image is built from the apt mirror)
with apt-get when podman is missing. Then checks two things that break `podman run`
on some hosts (containers in containers, CI sandboxes) and writes
/etc/containers/containers.conf.d/50-imgclf.conf only for those that apply:

- podman (as root) raises each container's nofile/nproc limits to 1048576; a host
  without CAP_SYS_RESOURCE whose hard limits are lower gets "error setting rlimit
  ... operation not permitted". Fix: default_ulimits at the host's hard nofile and
  nproc at most 32768 (podman's own process runs with no more than that).
- crun refuses a hybrid cgroup v1/v2 layout (/sys/fs/cgroup a tmpfs of v1
  controllers plus a cgroup2 /sys/fs/cgroup/unified). Fix: runtime = "runc".
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import UserError, run_cli

DROP_IN = Path("/etc/containers/containers.conf.d/50-imgclf.conf")
PACKAGES = ("podman", "runc", "debootstrap")
PODMAN_DEFAULT_RLIMIT = 1048576  # what rootful podman sets nofile and nproc to
CAP_SYS_RESOURCE = 24
# podman's own process runs with nproc <= 32768 (measured: podman 4.3 as root on a host whose hard
# nproc is 96362), so a container cannot be given more than that without CAP_SYS_RESOURCE.
PODMAN_PROCESS_NPROC = 32768


@dataclass(frozen=True)
class HostFacts:
    cap_effective: int
    hard_nofile: int
    hard_nproc: int
    cgroup_root_fs: str  # filesystem type of /sys/fs/cgroup: cgroup2 (unified), tmpfs (v1 or hybrid)
    has_unified_v2: bool  # /sys/fs/cgroup/unified is a cgroup2 mount (hybrid layout)


def _hard(limit: int) -> int:
    hard = resource.getrlimit(limit)[1]
    return PODMAN_DEFAULT_RLIMIT if hard == resource.RLIM_INFINITY else hard


def read_host_facts(proc_status: Path = Path("/proc/self/status"), mounts: Path = Path("/proc/self/mounts")) -> HostFacts:
    cap = 0
    for line in proc_status.read_text().splitlines():
        if line.startswith("CapEff:"):
            cap = int(line.split()[1], 16)
    types = {}
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3:
            types[fields[1]] = fields[2]
    return HostFacts(cap_effective=cap, hard_nofile=_hard(resource.RLIMIT_NOFILE),
                     hard_nproc=_hard(resource.RLIMIT_NPROC),
                     cgroup_root_fs=types.get("/sys/fs/cgroup", ""),
                     has_unified_v2=types.get("/sys/fs/cgroup/unified") == "cgroup2")


def needed_settings(facts: HostFacts) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The drop-in's sections (empty when the host needs none) and one reason per setting."""
    sections: dict[str, dict[str, str]] = {}
    reasons = []
    can_raise = bool(facts.cap_effective >> CAP_SYS_RESOURCE & 1)
    low = facts.hard_nofile < PODMAN_DEFAULT_RLIMIT or facts.hard_nproc < PODMAN_DEFAULT_RLIMIT
    if not can_raise and low:
        nofile, nproc = facts.hard_nofile, min(facts.hard_nproc, PODMAN_PROCESS_NPROC)
        sections["containers"] = {"default_ulimits": f'["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]'}
        reasons.append(f"no CAP_SYS_RESOURCE and hard limits nofile={facts.hard_nofile}, "
                       f"nproc={facts.hard_nproc} below podman's {PODMAN_DEFAULT_RLIMIT}: "
                       f"containers get nofile={nofile}, nproc={nproc}")
    if facts.cgroup_root_fs != "cgroup2" and facts.has_unified_v2:
        sections["engine"] = {"runtime": '"runc"'}
        reasons.append("hybrid cgroup v1/v2 layout (crun refuses it): runtime runc")
    return sections, reasons


def render(sections: dict[str, dict[str, str]], reasons: list[str]) -> str:
    lines = ["# Written by `make podman-setup` (imgclf.deploy.podman_setup) because:"]
    lines += [f"#  - {reason}" for reason in reasons]
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def install_packages(dry_run: bool) -> None:
    missing = [p for p in PACKAGES if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if not missing:
        print(f"{', '.join(PACKAGES)} already installed")
        return
    if shutil.which("apt-get") is None:
        raise UserError(f"missing {', '.join(missing)} and no apt-get: install them with your package manager")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    commands = [sudo + ["apt-get", *lock, "update", "-qq"],
                sudo + ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *missing]]
    for command in commands:
        print("+ " + " ".join(command), flush=True)
        if dry_run:
            continue
        result = subprocess.run(command, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                                stdout=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise UserError(f"`{' '.join(command)}` failed with exit status {result.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.deploy.podman_setup", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would be installed and written")
    parser.add_argument("--drop-in", type=Path, default=DROP_IN, help=f"where to write the drop-in (default {DROP_IN})")
    args = parser.parse_args(argv)
    install_packages(args.dry_run)
    sections, reasons = needed_settings(read_host_facts())
    if not sections:
        print("this host needs no containers.conf drop-in (rlimits can be raised, cgroups are not hybrid)")
        return 0
    text = render(sections, reasons)
    for reason in reasons:
        print(f"drop-in needed: {reason}")
    if args.dry_run:
        print(f"would write {args.drop_in}:\n{text}", end="")
        return 0
    if args.drop_in.exists() and args.drop_in.read_text() == text:
        print(f"{args.drop_in} already up to date")
        return 0
    args.drop_in.parent.mkdir(parents=True, exist_ok=True)
    args.drop_in.write_text(text)
    print(f"wrote {args.drop_in}")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
