"""Driver versions read from simulated hosts as each driver generation prints them, and what a
plan says with them (cases: a 4.20 driver's cnmon has the version only in a table column; an
Ascend version.info with a patch of an rc release).

Recorded vendor outputs: tests/fixtures/vendor/cnmon/SOURCES.md; the Ascend files are quoted
from public deployment notes, named at each test.
"""

from pathlib import Path

import pytest

import hostsim
from envctl.devices import family
from envctl.devices.mlu import driver_from_cnmon
from envctl.hosts.local import LocalHost
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from envctl.observe import observe
from envctl.plan import Options, build_plan

CNMON_4_20 = hostsim.cnmon_output("cnmon-v4.20.11-mlu370-x4.txt")
CNMON_5_10 = hostsim.cnmon_output("cnmon-v5.10.13-mlu370-x8.txt")
# 6.x headers as public MLU590 reports give them: the cnmon version differs from the driver's.
CNMON_6_2 = hostsim.cnmon_output("cnmon-v5.10.13-mlu370-x8.txt",
                                 {"CNMON v5.10.13": "CNMON v6.5.48", "Driver v5.10.13": "Driver v6.2.29"})


def probe(kind: str, root: Path):
    return family(kind).probe_driver(LocalHost(str(root)))


@pytest.mark.parametrize("stdout,version,where", [
    (CNMON_4_20, "4.20.11", "Driver column"),
    (CNMON_5_10, "5.10.13", "header"),
    (CNMON_6_2, "6.2.29", "header"),
])
def test_cnmon_of_each_driver_generation_gives_the_driver_version(stdout, version, where):
    assert driver_from_cnmon(stdout) == (version, where)


def test_cards_that_disagree_are_not_read_as_one_version():
    mixed = CNMON_4_20.replace("| 2     /   MLU370-X4    v1.1.6 | On          v4.20.11 |",
                               "| 2     /   MLU370-X4    v1.1.6 | On          v4.20.12 |")
    assert driver_from_cnmon(mixed) == (None, "cnmon shows different driver versions per card: 4.20.11, 4.20.12")


def test_an_unknown_layout_says_so_and_shows_cnmon_first_lines():
    version, why = driver_from_cnmon("CNMON v9.0.0\n\n| Card | State |\n| 0    | ok    |\n")
    assert version is None
    assert why == ("cnmon printed no driver version in a known layout (a 'Driver vX' header or a Driver column); "
                   "its first lines: CNMON v9.0.0 / | Card | State | / | 0    | ok    |")


def test_a_4_20_host_without_proc_information_is_read_from_the_cnmon_column(tmp_path):
    hostsim.mlu_host(tmp_path, cards=3, info_file=False, cnmon_stdout=CNMON_4_20)
    info = probe("mlu", tmp_path)
    assert (info.version, info.source, info.problem) == ("4.20.11", f"{tmp_path}/usr/bin/cnmon (Driver column)", None)


def test_a_failing_cnmon_says_how_it_failed(tmp_path):
    hostsim.mlu_host(tmp_path, cards=1, info_file=False, cnmon_stdout="", cnmon_exit=3)
    info = probe("mlu", tmp_path)
    assert (info.version, info.problem) == (None, "cnmon exited 3: no output")


MANIFEST = """\
name: demo
description: driver check
device: {kind: KIND, cards: 1, driver: "REQUIRED"}
image: {ref: example/sdk:v1}
"""


def plan_for(tmp_path: Path, kind: str, required: str):
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MANIFEST.replace("KIND", kind).replace("REQUIRED", required))
    environ = {"ENVCTL_CACHE": "/cache", "ENVCTL_WORKSPACE": "/ws"}
    loaded = load(path, environ=environ, roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    return build_plan(loaded, observe(LocalHost(str(tmp_path / "root")), loaded), Options(), environ)


def test_plan_on_a_4_20_host_accepts_an_old_enough_requirement_and_names_both_versions_otherwise(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=1, info_file=False, cnmon_stdout=CNMON_4_20)
    ok = plan_for(tmp_path, "mlu", ">=4.20.9")
    assert (ok.driver.status, ok.driver.found, ok.blockers) == ("ok", "4.20.11", ())
    too_old = plan_for(tmp_path, "mlu", ">=5.10.22")
    assert too_old.driver.status == "mismatch"
    assert too_old.blockers == (
        f"host driver v4.20.11 does not satisfy >=5.10.22 required by demo (read from "
        f"{tmp_path}/root/usr/bin/cnmon (Driver column)); install a matching driver, or pass --skip-driver-check to try anyway",)


def test_plan_with_a_cnmon_layout_it_cannot_read_shows_cnmon_lines(tmp_path):
    hostsim.mlu_host(tmp_path / "root", cards=1, info_file=False, cnmon_stdout="Segmentation fault? no: 'cnmon' v9\n")
    plan = plan_for(tmp_path, "mlu", ">=5.10.22")
    assert plan.driver.status == "unknown"
    assert plan.blockers == (
        "cannot tell the host driver version (cnmon printed no driver version in a known layout (a 'Driver vX' header "
        "or a Driver column); its first lines: Segmentation fault? no: 'cnmon' v9); pass --skip-driver-check to go on "
        "without it",)


# /usr/local/Ascend/driver/version.info as public deployment notes quote it (`cat` of the file):
# 24.1.rc2.2 (Version and package_version, a MindIE host), 24.1.rc1 (no package_version, an
# Atlas install guide), 25.0.rc1.1 (openEuler 22.03 aarch64 notes).
VERSION_INFO = {
    "24.1.rc2.2": "Version=24.1.rc2.2\nascendhal_version=7.35.23\naicpu_version=1.0\ntdt_version=1.0\nlog_version=1.0\n"
                  "prof_version=2.0\ndvppkernels_version=1.1\ntsfw_version=1.0\nInnerversion=V100R001C18SPC001B233\n"
                  "compatible_version=[V100R001C30],[V100R001C13],[V100R001C15],[V100R001C17],[V100R001C18]\n"
                  "compatible_version_fw=[7.0.0,7.2.99]\npackage_version=24.1.rc2.2\n",
    "24.1.rc1": "Version=24.1.rc1\nascendhal_version=7.35.19\naicpu_version=1.0\ntdt_version=1.0\nlog_version=1.0\n"
                "prof_version=2.0\ndvppkernels_version=1.1\ntsfw_version=1.0\nInnerversion=V100R001C15SPC006B220\n"
                "compatible_version=[V100R001C30],[V100R001C13],[V100R001C15],[V100R001C17]\n"
                "compatible_version_fw=[7.0.0,7.2.99]\n",
    "25.0.rc1.1": "Version=25.0.rc1.1\nascendhal_version=7.35.23\naicpu_version=1.0\ntdt_version=1.0\nlog_version=1.0\n"
                  "prof_version=2.0\ndvppkernels_version=1.1\ntsfw_version=1.0\nInnerversion=V100R001C21SPC002B220\n"
                  "compatible_version=[V100R001C17],[V100R001C18],[V100R001C19],[V100R001C20],[V100R001C21]\n"
                  "compatible_version_fw=[7.0.0,7.7.99]\npackage_version=25.0.rc1.1\n",
}


@pytest.mark.parametrize("version", sorted(VERSION_INFO))
def test_version_info_layouts_give_the_driver_version(tmp_path, version):
    hostsim.npu_host(tmp_path, cards=1, npu_smi=False)
    (tmp_path / "usr/local/Ascend/driver/version.info").write_text(VERSION_INFO[version])
    info = probe("npu", tmp_path)
    assert (info.version, info.source) == (version, f"{tmp_path}/usr/local/Ascend/driver/version.info")


# `npu-smi info` first lines as public notes show them; the second version is the driver's. An
# older npu-smi writes "Version:22.0.2" with no space, and its own version differs; npu-smi 1.x
# printed its own version beside the driver's (1.9.3 / 21.0.rc1 in PaddlePaddle's Ascend install
# guide, 1.8.21 / 20.2.2.spc001 on an A800-9000 cluster's user guide); builds add ".b010"
# (25.0.rc1.b010, a 910B host's environment dump beside vllm-ascend).
NPU_SMI_HEADERS = {
    "21.0.rc1": "| npu-smi 1.9.3                    Version: 21.0.rc1                                 |",
    "20.2.2.spc001": "| npu-smi 1.8.21                   Version: 20.2.2.spc001                            |",
    "25.0.rc1.b010": "| npu-smi 25.0.rc1.b010            Version: 25.0.rc1.b010                                        |",
    "24.1.rc3.7": "| npu-smi 24.1.rc3.7               Version: 24.1.rc3.7                                           |",
    "23.0.3": "| npu-smi 23.0.3                   Version: 23.0.3                                               |",
    "22.0.2": "| npu-smi 22.0.0                       Version:22.0.2                                        |",
}


def with_npu_smi_header(root: Path, header: str) -> None:
    tool = root / "usr/local/bin/npu-smi"
    text = tool.read_text().splitlines()
    line = next(i for i, line in enumerate(text) if line.startswith("| npu-smi"))
    text[line] = header
    tool.write_text("\n".join(text) + "\n")


@pytest.mark.parametrize("version", sorted(NPU_SMI_HEADERS))
def test_npu_smi_headers_give_the_driver_version(tmp_path, version):
    hostsim.npu_host(tmp_path, cards=1, version_info=False)
    with_npu_smi_header(tmp_path, NPU_SMI_HEADERS[version])
    info = probe("npu", tmp_path)
    assert (info.version, info.source) == (version, f"{tmp_path}/usr/local/bin/npu-smi info (header)")


@pytest.mark.parametrize("required,status", [
    (">=24.1.rc2", "ok"), (">=24.1.RC2", "ok"), ("<24.1.0", "ok"), ("==24.1.rc2.*", "ok"),
    (">=24.1.rc3", "mismatch"), (">=24.1.0", "mismatch"),
])
def test_plan_compares_a_patched_rc_from_version_info(tmp_path, required, status):
    hostsim.npu_host(tmp_path / "root", cards=1)
    (tmp_path / "root/usr/local/Ascend/driver/version.info").write_text(VERSION_INFO["24.1.rc2.2"])
    plan = plan_for(tmp_path, "npu", required)
    assert (plan.driver.found, plan.driver.status) == ("24.1.rc2.2", status)


# What npu-smi prints when the driver cannot be used (public install notes and an Ascend FAQ: a
# driver upgraded without a reboot, or a user without access to the device nodes). Which stream
# and exit status it uses is not documented, so both streams and both outcomes are tried.
NPU_SMI_FAILURE = "DrvMngGetConsoleLogLevel failed. (ret=4)\ndcmi module initialize failed. ret is -8005\n"


@pytest.mark.parametrize("stream,code,problem", [
    ("1", 255, "npu-smi info exited 255: DrvMngGetConsoleLogLevel failed. (ret=4) / dcmi module initialize failed. "
               "ret is -8005"),
    ("2", 1, "npu-smi info exited 1: DrvMngGetConsoleLogLevel failed. (ret=4) / dcmi module initialize failed. "
             "ret is -8005"),
    ("1", 0, "npu-smi info printed no 'Version:' header; its first lines: DrvMngGetConsoleLogLevel failed. (ret=4) / "
             "dcmi module initialize failed. ret is -8005"),
])
def test_a_failing_npu_smi_says_what_it_printed(tmp_path, stream, code, problem):
    hostsim.npu_host(tmp_path, cards=1, version_info=False)
    (tmp_path / "npu-smi.out").write_text(NPU_SMI_FAILURE)
    hostsim.executable(tmp_path / "usr/local/bin/npu-smi", f"#!/bin/sh\ncat '{tmp_path}/npu-smi.out' >&{stream}\nexit {code}\n")
    info = probe("npu", tmp_path)
    assert (info.version, info.problem) == (None, problem)


@pytest.mark.parametrize("required,status", [(">=24.1.0", "ok"), ("<25.0.0", "ok"), (">=25.0.0", "mismatch"),
                                             (">=25.0.rc1", "unknown")])
def test_plan_answers_for_a_build_when_its_release_decides(tmp_path, required, status):
    hostsim.npu_host(tmp_path / "root", cards=1, version_info=False)
    with_npu_smi_header(tmp_path / "root", NPU_SMI_HEADERS["25.0.rc1.b010"])
    plan = plan_for(tmp_path, "npu", required)
    assert (plan.driver.found, plan.driver.status) == ("25.0.rc1.b010", status)
    if status == "unknown":
        assert plan.blockers == ("cannot tell the host driver version ('25.0.rc1.b010' cannot be compared); pass "
                                 "--skip-driver-check to go on without it",)


def test_plan_shows_each_driver_mount_the_host_has(tmp_path):
    from envctl.render import plan_text

    hostsim.npu_host(tmp_path / "root", cards=1, npu_smi_dir="usr/local/sbin", driver_extras=True)
    text = plan_text(plan_for(tmp_path, "npu", ">=23.0.rc1"))
    root = tmp_path / "root"
    for target in ("/usr/local/sbin/npu-smi", "/usr/local/Ascend/driver/tools", "/usr/local/Ascend/driver/topo",
                   "/etc/hccn.conf"):
        assert f"mount  {root}{target} → {target} (ro)" in text, target
    assert "/usr/local/bin/npu-smi" not in text
