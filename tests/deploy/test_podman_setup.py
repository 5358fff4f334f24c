"""podman_setup writes the containers.conf drop-in only for what this host needs, and says why."""

from __future__ import annotations

import tomllib

from imgclf.deploy import podman_setup
from imgclf.deploy.podman_setup import HostFacts, needed_settings, read_host_facts, render

ALL_CAPS = (1 << 41) - 1
NO_SYS_RESOURCE = ALL_CAPS & ~(1 << podman_setup.CAP_SYS_RESOURCE)
HYBRID = dict(cgroup_root_fs="tmpfs", has_unified_v2=True)
UNIFIED = dict(cgroup_root_fs="cgroup2", has_unified_v2=False)


def test_a_normal_host_needs_no_drop_in():
    facts = HostFacts(cap_effective=ALL_CAPS, hard_nofile=1048576, hard_nproc=4194304, **UNIFIED)
    assert needed_settings(facts) == ({}, [])


def test_capped_rlimits_without_cap_sys_resource_get_the_hosts_hard_nofile_and_nproc_at_most_32768():
    facts = HostFacts(cap_effective=NO_SYS_RESOURCE, hard_nofile=20000, hard_nproc=96362, **UNIFIED)
    sections, reasons = needed_settings(facts)
    assert list(sections) == ["containers"] and len(reasons) == 1 and "CAP_SYS_RESOURCE" in reasons[0]
    config = tomllib.loads(render(sections, reasons))
    assert config == {"containers": {"default_ulimits": ["nofile=20000:20000", "nproc=32768:32768"]}}


def test_low_limits_are_fine_when_the_host_may_raise_them():
    facts = HostFacts(cap_effective=ALL_CAPS, hard_nofile=20000, hard_nproc=32768, **UNIFIED)
    assert needed_settings(facts) == ({}, [])


def test_hybrid_cgroups_select_runc():
    facts = HostFacts(cap_effective=ALL_CAPS, hard_nofile=1048576, hard_nproc=1048576, **HYBRID)
    sections, reasons = needed_settings(facts)
    assert tomllib.loads(render(sections, reasons)) == {"engine": {"runtime": "runc"}}
    assert "hybrid" in reasons[0] and "crun" in reasons[0]


def test_host_facts_read_from_proc(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t000001fffeffffff\n")
    mounts = tmp_path / "mounts"
    mounts.write_text("tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    facts = read_host_facts(status, mounts)
    assert facts.cap_effective == 0x1fffeffffff and not facts.cap_effective >> 24 & 1
    assert facts.cgroup_root_fs == "tmpfs" and facts.has_unified_v2


def test_dry_run_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(podman_setup, "install_packages", lambda dry_run: None)
    monkeypatch.setattr(podman_setup, "read_host_facts", lambda: HostFacts(NO_SYS_RESOURCE, 20000, 32768, **HYBRID))
    target = tmp_path / "conf.d" / "50-imgclf.conf"
    assert podman_setup.main(["--dry-run", "--drop-in", str(target)]) == 0
    assert not target.exists()
    assert podman_setup.main(["--drop-in", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# Written by `make podman-setup`") and 'runtime = "runc"' in text
    assert podman_setup.main(["--drop-in", str(target)]) == 0
    assert "already up to date" in capsys.readouterr().out
