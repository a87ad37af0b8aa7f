"""The vendor tools' tables, read from recorded outputs of several driver versions
(tests/fixtures/vendor/*/SOURCES.md) and from the stand-ins that print them on simulated hosts."""

from pathlib import Path

import hostsim
from envctl.devices import cnmon_table, npu_smi_table, usage
from envctl.hosts.local import LocalHost

VENDOR = Path(__file__).parent.parent / "fixtures" / "vendor"


def cnmon(name: str):
    return cnmon_table.parse((VENDOR / "cnmon" / name).read_text())


def npu_smi(name: str):
    return npu_smi_table.parse((VENDOR / "npu-smi" / name).read_text())


def test_cnmon_5_10_cards_with_bus_id_memory_util_and_temperature():
    cards, processes = cnmon("cnmon-v5.10.13-mlu370-x8.txt")
    assert [(c.index, c.model, c.bus_id, c.memory_used, c.memory_total, c.utilization_percent, c.temperature_c)
            for c in cards] == [(0, "MLU370-X8", "0000:39:00.0", 0, 23374, 0, 32),
                                (1, "MLU370-X8", "0000:3D:00.0", 0, 23374, 0, 39)]
    assert processes == []


def test_cnmon_4_20_has_no_bus_id_column():
    cards, _ = cnmon("cnmon-v4.20.11-mlu370-x4.txt")
    assert [(c.index, c.bus_id, c.memory_total, c.temperature_c) for c in cards] == [
        (0, None, 23308, 32), (1, None, 23308, 33), (2, None, 23308, 30)]


def test_cnmon_masked_memory_total_is_unknown_not_a_number():
    cards, _ = cnmon("cnmon-v5.10.31-8-cards-masked.txt")
    assert len(cards) == 8
    assert {c.memory_total for c in cards} == {None} and {c.memory_used for c in cards} == {0}
    assert cards[7].bus_id == "0000:D3:00.0" and cards[7].model == "MLUXXX-XX"


def test_cnmon_process_rows_keep_a_command_line_with_spaces():
    text = hostsim.cnmon_table("5.10.22", 4, {2: 9000}, [(2, 31337, "python train.py --lr 1e-4 --bs 8", 9000),
                                                         (3, 42, "a", 1)])
    cards, processes = cnmon_table.parse(text)
    assert cards[2].memory_used == 9000 and cards[2].utilization_percent == 45
    assert [(p.card, p.pid, p.name, p.memory) for p in processes] == [
        (2, 31337, "python train.py --lr 1e-4 --bs 8", 9000), (3, 42, "a", 1)]


def test_npu_smi_a2_one_chip_per_npu_reads_hbm():
    cards, processes = npu_smi("npu-smi-24.1.0.3-910b2.txt")
    assert [(c.index, c.model, c.bus_id, c.memory_used, c.memory_total, c.temperature_c, c.board) for c in cards] == [
        (0, "910B2", "0000:C1:00.0", 3397, 65536, 37, 0), (1, "910B2", "0000:C2:00.0", 3395, 65536, 37, 1)]
    assert processes == []


def test_npu_smi_910prob_takes_hbm_over_the_ddr_memory_column():
    cards, _ = npu_smi("npu-smi-24.1.0-910prob.txt")
    assert [(c.memory_used, c.memory_total) for c in cards] == [(18, 32768), (8, 32768)]


def test_npu_smi_a3_two_chips_per_npu_are_one_board_indexed_by_phy_id():
    cards, _ = npu_smi("npu-smi-a3-phy-id.txt")
    assert [(c.index, c.board) for c in cards] == [(0, 0), (1, 0), (2, 1)]
    reading = usage.VendorReading("npu-smi info", "MB", tuple(cards))
    assert reading.boards() == ((0, 1),)


def test_npu_smi_310p3_device_column_without_hbm_and_power_na():
    cards, _ = npu_smi("npu-smi-25.2.0-310p3.txt")
    assert [(c.index, c.memory_used, c.memory_total, c.temperature_c, c.board) for c in cards] == [
        (0, 1417, 44216, 70, 2), (1, 1516, 43757, 69, 2)]


def test_npu_smi_25_process_table_with_container_column():
    cards, processes = npu_smi("npu-smi-25-processes.txt")
    assert [(c.index, c.board, c.memory_used) for c in cards] == [(15, 7, 31877)]
    assert [(p.card, p.pid, p.name, p.memory, p.pid_in_container) for p in processes] == [(0, 632268, "python3.1", 197, None)]


def test_npu_smi_stand_in_process_rows_map_to_their_card():
    cards, processes = npu_smi_table.parse(hostsim.npu_smi_table("23.0.rc2", 8, {5: 30000}, [(5, 777, "python3", 30000)]))
    assert len(cards) == 8 and cards[5].memory_used == 30000
    assert [(p.card, p.pid, p.name, p.memory) for p in processes] == [(5, 777, "python3", 30000)]


def test_reading_a_simulated_host_runs_the_tool_there(tmp_path):
    hostsim.npu_host(tmp_path, cards=2, used={1: 100}, processes=[(1, 55, "python3", 100)])
    reading = usage.read("npu", LocalHost(str(tmp_path)))
    assert reading.problem is None and reading.unit == "MB"
    assert reading.card(1).memory_used == 100 and reading.processes_on(1)[0].pid == 55


def test_a_missing_or_failing_tool_is_a_problem_not_an_exception(tmp_path):
    hostsim.mlu_host(tmp_path / "none", cnmon=False)
    assert "cnmon not found" in usage.read("mlu", LocalHost(str(tmp_path / "none"))).problem
    hostsim.mlu_host(tmp_path / "fails", cnmon_stdout="Error: driver not loaded\n", cnmon_exit=1)
    reading = usage.read("mlu", LocalHost(str(tmp_path / "fails")))
    assert reading.cards == () and "exited 1: Error: driver not loaded" in reading.problem
    hostsim.mlu_host(tmp_path / "odd", cnmon_stdout="something else\n")
    assert "no card rows" in usage.read("mlu", LocalHost(str(tmp_path / "odd"))).problem
    assert usage.read("cpu", LocalHost(str(tmp_path))) is None


def test_numbers_python_would_misread_are_unknown_not_an_exception():
    # float() reads "inf" and "nan" but round() refuses them; str.isdigit() admits "²", which int()
    # refuses. A cell with either is an unknown value, and the rest of the table is still read.
    text = (VENDOR / "npu-smi" / "npu-smi-24.1.0.3-910b2.txt").read_text()
    first_row = next(line for line in text.splitlines() if "0000:" in line)
    words = first_row.split("|")
    odd = text.replace(first_row, "|".join(words[:3] + [words[3].replace(" 0 ", " inf ", 1)] + words[4:]), 1)
    cards, _ = npu_smi_table.parse(odd)
    assert cards[0].utilization_percent is None and cards[0].memory_total == 65536 and len(cards) == len(npu_smi("npu-smi-24.1.0.3-910b2.txt")[0])
    process = "| 0       0                 | 2²            | python3                  | 100                     |\n"
    assert npu_smi_table.parse(process) == ([], [])
    masked = (VENDOR / "cnmon" / "cnmon-v5.10.13-mlu370-x8.txt").read_text().replace("0 MiB/", "²0 MiB/", 1)
    assert cnmon_table.parse(masked)[0][0].memory_used is None
