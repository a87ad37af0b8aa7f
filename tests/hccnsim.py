"""A stand-in `hccn_tool` for simulated Ascend hosts (tests/hostsim.py npu_host), printing the
recorded outputs of tests/fixtures/vendor/hccn_tool (see SOURCES.md there) with each device's
own IP and link state, and /etc/hccn.conf in its real `address_<id>=<ip>` form."""

from __future__ import annotations

import shutil
from pathlib import Path

from hostsim import executable

RECORDED = Path(__file__).parent / "fixtures" / "vendor" / "hccn_tool"
TOOL = "usr/local/Ascend/driver/tools/hccn_tool"
DATA = "usr/share/hccn-standin"
RECORDED_IP = "29.1.112.213"  # the address in ip-g.txt


def hccn_tool(root: Path, ips: dict[int, str], links: dict[int, str] | None = None) -> None:
    """Install the stand-in under `root`: `-i ID -ip -g` prints ip-g.txt with ips[ID], `-i ID
    -link -g` the recorded UP or DOWN line (links[ID], default UP). A device not in `ips` makes
    it fail (exit 1, a message of the stand-in's own: the real one was not found published)."""
    data = root / DATA
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    recorded_ip = (RECORDED / "ip-g.txt").read_text()
    assert RECORDED_IP in recorded_ip
    for device, ip in ips.items():
        (data / f"ip-{device}").write_text(recorded_ip.replace(RECORDED_IP, ip))
        state = (links or {}).get(device, "UP").lower()
        (data / f"link-{device}").write_text((RECORDED / f"link-g-{state}.txt").read_text())
    executable(root / TOOL, f"""#!/bin/sh
# hccn_tool stand-in (tests/hccnsim.py): -i ID -ip -g and -i ID -link -g only.
[ "$1" = -i ] && [ -n "$2" ] || {{ echo "stand-in hccn_tool: give -i ID" >&2; exit 1; }}
case "$3 $4" in
  "-ip -g") f='{data}'/ip-$2 ;;
  "-link -g") f='{data}'/link-$2 ;;
  *) echo "stand-in hccn_tool: $3 $4 is not simulated" >&2; exit 1 ;;
esac
[ -f "$f" ] || {{ echo "stand-in hccn_tool: no device $2" >&2; exit 1; }}
cat "$f"
""")


def no_hccn_tool(root: Path) -> None:
    (root / TOOL).unlink(missing_ok=True)


def hccn_conf(root: Path, ips: dict[int, str]) -> None:
    """/etc/hccn.conf as hccn_tool -ip -s writes it: address_<id> and netmask_<id> lines."""
    lines = [f"address_{device}={ip}\nnetmask_{device}=255.255.0.0\n" for device, ip in sorted(ips.items())]
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/hccn.conf").write_text("".join(lines))
