"""Device discovery, node/mount selection and driver probes on simulated host roots."""

from pathlib import Path

import hostsim
from envctl.devices import family
from envctl.card_choice import choose
from envctl.devices.base import snapshot
from envctl.hosts.local import LocalHost


def select(kind: str, root: Path, cards, runtime=None):
    host = LocalHost(str(root))
    fam = family(kind)
    view = snapshot(host, fam)
    where = f"under {host.root}" if host.root != "/" else "on this host"
    choice = choose(fam.label, tuple(fam.discover(view)), tuple(cards) if isinstance(cards, list) else cards, None,
                    where=where)
    return fam.select(view, list(choice.cards), runtime), list(choice.problems)


def test_mlu_two_cards_get_ctl_per_card_nodes_cnmon_and_visibility(tmp_path):
    hostsim.mlu_host(tmp_path, cards=4, commu=True)
    selection, problems = select("mlu", tmp_path, 2)
    assert problems == []
    assert [n.container_path for n in selection.nodes] == [
        "/dev/cambricon_ctl",
        "/dev/cambricon_dev0", "/dev/cambricon_ipcm0", "/dev/commu0",
        "/dev/cambricon_dev1", "/dev/cambricon_ipcm1", "/dev/commu1",
    ]
    assert all(n.host_path == f"{tmp_path}{n.container_path}" for n in selection.nodes)
    assert [(m.target, m.read_only) for m in selection.mounts] == [("/usr/bin/cnmon", True)]
    assert selection.env == {"MLU_VISIBLE_DEVICES": "0,1"}


def test_mlu_explicit_cards_are_renumbered_from_zero_inside(tmp_path):
    hostsim.mlu_host(tmp_path, cards=4, ipcm=False)
    selection, problems = select("mlu", tmp_path, [2, 3])
    assert problems == []
    assert [n.container_path for n in selection.nodes] == ["/dev/cambricon_ctl", "/dev/cambricon_dev2", "/dev/cambricon_dev3"]
    assert selection.cards == (2, 3)
    assert selection.env == {"MLU_VISIBLE_DEVICES": "0,1"}


def test_a_card_that_does_not_exist_is_named_with_those_that_do(tmp_path):
    hostsim.mlu_host(tmp_path, cards=2)
    _, problems = select("mlu", tmp_path, [1, 5])
    assert problems == [f"Cambricon MLU card 5 does not exist under {tmp_path}; cards present: 0, 1"]
    _, problems = select("mlu", tmp_path, 4)
    assert problems == ["4 Cambricon MLU cards wanted, 2 present (0, 1)"]


def test_regular_files_named_like_devices_are_not_cards(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/cambricon_dev0").write_text("")
    _, problems = select("mlu", tmp_path, 1)
    assert problems == [f"no Cambricon MLU cards found under {tmp_path}"]


def test_npu_nodes_manager_nodes_driver_mounts_and_visibility(tmp_path):
    hostsim.npu_host(tmp_path, cards=8)
    selection, problems = select("npu", tmp_path, [4, 5])
    assert problems == [] and selection.problems == ()
    assert [n.container_path for n in selection.nodes] == [
        "/dev/davinci4", "/dev/davinci5", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc",
    ]
    assert [m.target for m in selection.mounts] == [
        "/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
        "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info",
    ]
    assert all(m.read_only for m in selection.mounts)
    assert selection.env == {"ASCEND_RT_VISIBLE_DEVICES": "0,1"}


def test_npu_dvpp_cmdlist_is_passed_when_the_host_has_it(tmp_path):
    """MindCluster's device plugin passes /dev/dvpp_cmdlist with the manager nodes on 910 hosts
    (an A3 pod's AllocateResponse lists davinci_manager, hisi_hdc, devmm_svm, dvpp_cmdlist);
    DVPP preprocessing needs it (RAG SDK docs for the Atlas 800I A2)."""
    hostsim.npu_host(tmp_path, cards=2)
    absent, _ = select("npu", tmp_path, [1])
    assert "/dev/dvpp_cmdlist" not in [n.container_path for n in absent.nodes] and absent.problems == ()
    hostsim.char_device(tmp_path / "dev/dvpp_cmdlist")
    selection, _ = select("npu", tmp_path, [1])
    assert [(n.host_path, n.container_path) for n in selection.nodes] == [
        (f"{tmp_path}/dev/{name}", f"/dev/{name}")
        for name in ("davinci1", "davinci_manager", "devmm_svm", "hisi_hdc", "dvpp_cmdlist")
    ]


def test_npu_with_the_ascend_runtime_names_host_cards_and_passes_no_nodes(tmp_path):
    hostsim.npu_host(tmp_path, cards=8)
    selection, _ = select("npu", tmp_path, [4, 5], runtime="ascend")
    assert selection.nodes == () and selection.mounts == ()
    assert selection.env == {"ASCEND_RT_VISIBLE_DEVICES": "0,1", "ASCEND_VISIBLE_DEVICES": "4,5"}


def test_npu_without_manager_nodes_is_not_ready(tmp_path):
    hostsim.npu_host(tmp_path, cards=1, managers=False)
    selection, _ = select("npu", tmp_path, 1)
    assert selection.problems == tuple(
        f"{tmp_path}/dev/{name} is missing: is the Ascend driver installed?"
        for name in ("davinci_manager", "devmm_svm", "hisi_hdc")
    )


def test_mlu_driver_from_the_proc_information_file(tmp_path):
    hostsim.mlu_host(tmp_path, cards=1, driver="5.10.13")
    info = family("mlu").probe_driver(LocalHost(str(tmp_path)))
    assert info.version == "5.10.13"
    assert info.source == f"{tmp_path}/proc/driver/cambricon/mlus/0000:39:00.0/information"


def test_mlu_driver_from_the_cnmon_header_when_proc_has_nothing(tmp_path):
    hostsim.mlu_host(tmp_path, cards=1, driver="5.10.22", info_file=False)
    info = family("mlu").probe_driver(LocalHost(str(tmp_path)))
    assert (info.version, info.source) == ("5.10.22", f"{tmp_path}/usr/bin/cnmon (header)")


def test_mlu_driver_unknown_without_file_or_tool(tmp_path):
    hostsim.mlu_host(tmp_path, cards=1, info_file=False, cnmon=False)
    info = family("mlu").probe_driver(LocalHost(str(tmp_path)))
    assert info.version is None and info.problem == "no driver information file and no cnmon"


def test_npu_driver_prefers_package_version_then_version(tmp_path):
    hostsim.npu_host(tmp_path, cards=1, version="23.0.rc2")
    version_info = tmp_path / "usr/local/Ascend/driver/version.info"
    version_info.write_text("Version=23.0.rc1\npackage_version=23.0.rc2\n")
    assert family("npu").probe_driver(LocalHost(str(tmp_path))).version == "23.0.rc2"
    version_info.write_text("Version=23.0.rc1\n")
    assert family("npu").probe_driver(LocalHost(str(tmp_path))).version == "23.0.rc1"


def test_npu_driver_from_npu_smi_header(tmp_path):
    hostsim.npu_host(tmp_path, cards=1, version="24.1.rc1", version_info=False)
    info = family("npu").probe_driver(LocalHost(str(tmp_path)))
    assert (info.version, info.source) == ("24.1.rc1", f"{tmp_path}/usr/local/bin/npu-smi info (header)")


NPU_BASE_MOUNTS = ["/usr/local/dcmi", "/usr/local/Ascend/driver/lib64", "/usr/local/Ascend/driver/version.info",
                   "/etc/ascend_install.info"]


def test_npu_smi_in_usr_local_sbin_is_mounted_where_the_host_has_it(tmp_path):
    hostsim.npu_host(tmp_path, cards=2, npu_smi_dir="usr/local/sbin")
    selection, _ = select("npu", tmp_path, 1)
    targets = [m.target for m in selection.mounts]
    assert "/usr/local/sbin/npu-smi" in targets and "/usr/local/bin/npu-smi" not in targets
    assert sorted(targets) == sorted(NPU_BASE_MOUNTS + ["/usr/local/sbin/npu-smi"])


def test_driver_tools_topo_include_and_hccn_conf_are_mounted_when_present(tmp_path):
    hostsim.npu_host(tmp_path, cards=2, npu_smi_dir="usr/local/sbin", driver_extras=True)
    selection, _ = select("npu", tmp_path, 2)
    mounts = {m.target: (m.source, m.read_only) for m in selection.mounts}
    for target in ("/usr/local/Ascend/driver/tools", "/usr/local/Ascend/driver/topo", "/usr/local/Ascend/driver/include",
                   "/etc/hccn.conf", "/usr/local/sbin/npu-smi"):
        assert mounts[target] == (f"{tmp_path}{target}", True), target
    assert len(mounts) == len(NPU_BASE_MOUNTS) + 5


def test_nothing_absent_is_mounted(tmp_path):
    hostsim.npu_host(tmp_path, cards=1, npu_smi=False)
    selection, _ = select("npu", tmp_path, 1)
    assert sorted(m.target for m in selection.mounts) == sorted(NPU_BASE_MOUNTS)
