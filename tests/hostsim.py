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


def mlu_host(root: Path, cards: int = 2, driver: str = "5.10.22", ipcm: bool = True, commu: bool = False,
             cnmon: bool = True, info_file: bool = True, cnmon_stdout: str | None = None,
             cnmon_exit: int = 0) -> Path:
    """A Cambricon MLU370 host with `cards` cards. `cnmon_stdout`: what its cnmon prints instead
    of the 5.x table for `driver` (e.g. a recorded 4.x output, `cnmon_output(...)`)."""
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
        executable(
            root / "usr/bin/cnmon",
            "#!/bin/sh\n"
            "cat <<'OUT'\n"
            "Tue Nov 23 10:00:00 2026\n"
            "+------------------------------------------------------------------------------+\n"
            f"| CNMON v{driver}                                          Driver v{driver}   |\n"
            "+-------------------------------+----------------------+-----------------------+\n"
            "| Card  VF  Name       Firmware |               Bus-Id | Util        Ecc-Error |\n"
            "| Fan   Temp      Pwr:Usage/Cap |         Memory-Usage | SR-IOV   Compute-Mode |\n"
            "|===============================+======================+=======================|\n"
            "| 0     /   MLU370-X8    v1.1.4 |         0000:39:00.0 | 0%                  0 |\n"
            "| 0%    35C        60 W/ 250 W  |     0 MiB/ 23374 MiB | N/A           Default |\n"
            "+-------------------------------+----------------------+-----------------------+\n"
            "OUT\n",
        )
    return root


def npu_host(root: Path, cards: int = 8, version: str = "23.0.rc2", version_info: bool = True,
             npu_smi: bool = True, managers: bool = True, npu_smi_dir: str = "usr/local/bin",
             driver_extras: bool = False) -> Path:
    """A Huawei Ascend 910 host with `cards` NPUs. `npu_smi_dir`: where npu-smi is installed
    (usr/local/sbin on standard driver installs). `driver_extras`: also driver/include,
    driver/tools/hccn_tool, driver/topo/<card>/*.json and /etc/hccn.conf, as newer driver
    installs have them."""
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
        executable(
            root / npu_smi_dir / "npu-smi",
            "#!/bin/sh\n"
            "cat <<'OUT'\n"
            "+------------------------------------------------------------------------------------------------+\n"
            f"| npu-smi {version}                 Version: {version}                                               |\n"
            "+---------------------------+---------------+----------------------------------------------------+\n"
            "| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|\n"
            "| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |\n"
            "+===========================+===============+====================================================+\n"
            "| 0     910B                | OK            | 68.5        36                0    / 0             |\n"
            "| 0                         | 0000:C1:00.0  | 0           2246 / 15137      0    / 32768         |\n"
            "+===========================+===============+====================================================+\n"
            "OUT\n",
        )
    return root
