"""Simulated accelerator hosts under a directory: real character device nodes made with mknod,
driver files in the vendors' formats, and small cnmon / npu-smi stand-ins printing the vendors'
output. envctl reads them through ENVCTL_HOST_ROOT exactly as it reads a real host's."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

# Device numbers of /dev/null: a harmless real character device that Docker can pass through.
_MAJOR, _MINOR = 1, 3


def char_device(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise RuntimeError("simulating device nodes needs mknod, which needs root (CI runs as root)")
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(_MAJOR, _MINOR))


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


CNMON_OUTPUTS = Path(__file__).parent / "fixtures" / "vendor" / "cnmon"  # recorded outputs, see SOURCES.md


def cnmon_output(name: str, replace: dict[str, str] | None = None) -> str:
    """A recorded cnmon output (tests/fixtures/vendor/cnmon/<name>), with `replace`d strings."""
    text = (CNMON_OUTPUTS / name).read_text()
    for old, new in (replace or {}).items():
        assert old in text, f"{old!r} not in {name}"
        text = text.replace(old, new)
    return text


def cnmon_table(driver: str, cards: int, used: dict[int, int], processes: list[tuple[int, int, str, int]]) -> str:
    """`cnmon` as a 5.x driver prints it (the layout of cnmon-v5.10.13-mlu370-x8.txt): every
    card with its memory in use (`used`: card → MiB) and utilisation, then the process table
    (`processes`: card, host PID, command line, MiB). See tests/fixtures/vendor/cnmon/SOURCES.md
    for what is recorded and what the process rows assume."""
    rule = "+-------------------------------+----------------------+-----------------------+\n"
    out = ["Tue Nov 23 10:00:00 2026\n",
           "+------------------------------------------------------------------------------+\n",
           f"| CNMON v{driver:<46}Driver v{driver} |\n".replace(f"Driver v{driver} |", f"{'Driver v' + driver:>23} |"),
           rule,
           "| Card  VF  Name       Firmware |               Bus-Id | Util        Ecc-Error |\n",
           "| Fan   Temp      Pwr:Usage/Cap |         Memory-Usage | SR-IOV   Compute-Mode |\n",
           "|===============================+======================+=======================|\n"]
    for i in range(cards):
        mib = used.get(i, 0)
        util = f"{min(99, mib // 200)}%" if mib else "0%"
        out.append(f"| {i:<6}/   {'MLU370-X8':<13}v1.1.6 |         0000:{0x39 + 4 * i:02X}:00.0 | {util:<18}N/A |\n")
        out.append(f"|  0%   {35 + i}C        106 W/ 250 W | {mib:>5} MiB/ 23374 MiB | N/A           Default |\n")
        out.append(rule)
    out += ["\n", "+------------------------------------------------------------------------------+\n",
            "| Processes:                                                                   |\n",
            "|  Card  MI  PID     Command Line                             MLU Memory Usage |\n",
            "|==============================================================================|\n"]
    if not processes:
        out.append("|  No running processes found                                                  |\n")
    for card, pid, command, mib in processes:
        out.append(f"|  {card:<5} /   {pid:<7} {command:<46} {mib:>6} MiB |\n")
    out.append("+------------------------------------------------------------------------------+\n")
    return "".join(out)


def mlu_host(root: Path, cards: int = 2, driver: str = "5.10.22", ipcm: bool = True, commu: bool = False,
             cnmon: bool = True, info_file: bool = True, cnmon_stdout: str | None = None,
             cnmon_exit: int = 0, used: dict[int, int] | None = None,
             processes: list[tuple[int, int, str, int]] | None = None) -> Path:
    """A Cambricon MLU370 host with `cards` cards. `cnmon_stdout`: what its cnmon prints instead
    of the 5.x table for `driver` (e.g. a recorded 4.x output, `cnmon_output(...)`). `used` and
    `processes`: what cnmon's tables show in use (cnmon_table)."""
    char_device(root / "dev/cambricon_ctl")
    for i in range(cards):
        char_device(root / f"dev/cambricon_dev{i}")
        if ipcm:
            char_device(root / f"dev/cambricon_ipcm{i}")
        if commu:
            char_device(root / f"dev/commu{i}")
        if info_file:
            bdf = f"0000:{0x39 + i:02x}:00.0"
            info = root / f"proc/driver/cambricon/mlus/{bdf}/information"
            info.parent.mkdir(parents=True, exist_ok=True)
            info.write_text(
                textwrap.dedent(
                    f"""\
                    Device name: MLU370-X8
                    Device inode path: /dev/cambricon_dev{i}
                    Device Major: 238
                    Device Minor: {i}
                    Driver Version: v{driver}
                    MCU Version: v1.1.4
                    Board Serial Number: SN/{i:04d}
                    """
                )
            )
    if cnmon and cnmon_stdout is not None:
        (root / "usr/share/cnmon-standin").mkdir(parents=True, exist_ok=True)
        (root / "usr/share/cnmon-standin/stdout").write_text(cnmon_stdout)
        executable(root / "usr/bin/cnmon",
                   f"#!/bin/sh\ncat '{root}/usr/share/cnmon-standin/stdout'\nexit {cnmon_exit}\n")
    elif cnmon:
        executable(root / "usr/bin/cnmon",
                   "#!/bin/sh\ncat <<'OUT'\n" + cnmon_table(driver, cards, used or {}, processes or []) + "OUT\n")
    return root


def npu_smi_table(version: str, cards: int, used: dict[int, int], processes: list[tuple[int, int, str, int]],
                  model: str = "910B", health: dict[int, str] | None = None) -> str:
    """`npu-smi info` as 23.0/24.x drivers print it on an Atlas 800 (one chip per NPU, the layout
    of tests/fixtures/vendor/npu-smi/): every NPU with its HBM in use (`used`: card → MB), then
    the process table (`processes`: card, host PID, process name, MB) without the 25.x
    container column, "No running processes found in NPU N" for the others. `health`: card →
    the Health cell (OK where not given; Warning, Alarm, Critical as npu-smi prints them)."""
    wide = "+------------------------------------------------------------------------------------------------+\n"
    rule = "+===========================+===============+====================================================+\n"
    out = [wide, f"| npu-smi {version:<25}Version: {version:<53}|\n",
           "+---------------------------+---------------+----------------------------------------------------+\n",
           "| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|\n",
           "| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |\n",
           rule]
    for i in range(cards):
        mb = used.get(i, 0)
        aicore = str(min(99, mb // 300))
        state = (health or {}).get(i, "OK")
        out.append(f"| {i:<6}{model:<20}| {state:<14}| {'68.5':<12}{36 + i:<18}0    / 0             |\n")
        out.append(f"| 0                         | 0000:{0xC1 + i:02X}:00.0  | {aicore:<12}2246 / 15137      {mb:<5}/ 32768         |\n")
        out.append(rule)
    out += ["+---------------------------+---------------+----------------------------------------------------+\n",
            "| NPU     Chip              | Process id    | Process name             | Process memory(MB)      |\n",
            rule]
    for i in range(cards):
        mine = [p for p in processes if p[0] == i]
        if not mine:
            out.append(f"| {'No running processes found in NPU ' + str(i):<95}|\n")
        for card, pid, name, mb in mine:
            out.append(f"| {card:<8}0                 | {pid:<14}| {name:<25}| {mb:<24}|\n")
        out.append(rule)
    return "".join(out)


def npu_host(root: Path, cards: int = 8, version: str = "23.0.rc2", version_info: bool = True,
             npu_smi: bool = True, managers: bool = True, npu_smi_dir: str = "usr/local/bin",
             driver_extras: bool = False, used: dict[int, int] | None = None,
             processes: list[tuple[int, int, str, int]] | None = None, model: str = "910B",
             health: dict[int, str] | None = None) -> Path:
    """A Huawei Ascend 910 host with `cards` NPUs. `npu_smi_dir`: where npu-smi is installed
    (usr/local/sbin on standard driver installs). `driver_extras`: also driver/include,
    driver/tools/hccn_tool, driver/topo/<card>/*.json and /etc/hccn.conf, as newer driver
    installs have them. `used`, `processes`, `model`, `health`: what npu-smi's tables show (npu_smi_table)."""
    for i in range(cards):
        char_device(root / f"dev/davinci{i}")
    if managers:
        for name in ("davinci_manager", "devmm_svm", "hisi_hdc"):
            char_device(root / f"dev/{name}")
    driver = root / "usr/local/Ascend/driver"
    (driver / "lib64").mkdir(parents=True, exist_ok=True)
    (root / "usr/local/dcmi").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/ascend_install.info").write_text("Driver_Install_Path_Param=/usr/local/Ascend\n")
    if version_info:
        (driver / "version.info").write_text(
            f"Version={version}\nascendhal_version=7.35.19\naicpu_version=1.0\ntdt_version=1.0\n"
            f"log_version=1.0\nprof_version=2.0\ndvppkernels_version=1.1\ntsfw_version=1.0\n"
            f"Innerversion=V100R001C13SPC002B220\npackage_version={version}\n"
        )
    if driver_extras:
        (driver / "include").mkdir(parents=True, exist_ok=True)
        (driver / "include/dsmi_common_interface.h").write_text("/* driver header */\n")
        executable(driver / "tools/hccn_tool", "#!/bin/sh\necho hccn_tool \"$@\"\n")
        (driver / "topo/950").mkdir(parents=True, exist_ok=True)  # the path HIXL and vLLM-Omni docs name
        (driver / "topo/950/atlas_950_1.json").write_text("{}\n")
        (root / "etc/hccn.conf").write_text("address_0=192.168.100.100\nnetmask_0=255.255.255.0\n")
    if npu_smi:
        executable(root / npu_smi_dir / "npu-smi",
                   "#!/bin/sh\ncat <<'OUT'\n" + npu_smi_table(version, cards, used or {}, processes or [], model, health) + "OUT\n")
    return root
