"""Several hosts: captures of each merged into one flow, clocks corrected."""

from __future__ import annotations

import mutate
from conftest import PCAPS, command

CREATE = PCAPS / "server-create.pcap"


def split(tmp_path, skew: float):
    """Host A sees the front door, swift and neutron; host B (its clock `skew` s ahead) sees
    glance-api and neutron: the connections to neutron are captured on both hosts."""
    packets, linktype = mutate.read(str(CREATE))
    on_a, on_b = [], []
    for packet in packets:
        ports = {mutate.tcp_of(packet)[2].sport, mutate.tcp_of(packet)[2].dport}
        if ports & {80, 8080, 9696}:
            on_a.append(packet)
        if ports & {60999, 9696}:
            on_b.append(mutate.Packet(packet.ts + skew, packet.data, packet.wirelen))
    assert len(on_a) + len(on_b) > len(packets)  # some packets are on both
    ctrl, compute = tmp_path / "ctrl.pcap", tmp_path / "compute1.pcap"
    mutate.write(str(ctrl), on_a, linktype)
    mutate.write(str(compute), on_b, linktype)
    return ctrl, compute


def test_two_hosts_with_a_skewed_clock_give_the_original_flow(sniff, tmp_path):
    ctrl, compute = split(tmp_path, skew=30.0)
    merged = sniff(ctrl, compute, options=("--clock-offset", f"{compute}=-30"))
    assert merged.exit_code == 0
    assert merged.outputs() == sniff(CREATE).outputs()
    assert "duplicate segments" in merged.stderr  # neutron's connections came twice


def test_without_the_correction_a_warning_names_the_cause(sniff, tmp_path):
    ctrl, compute = split(tmp_path, skew=30.0)
    run = sniff(ctrl, compute)
    calls = run.calls()
    original = {call["id"] for call in sniff(CREATE).calls()}
    assert {call["id"] for call in calls} == original  # nothing lost
    assert "duplicate exchanges: 7" in run.stderr  # neutron's exchanges, captured twice, once
    # glance's legs, 30 s late, cannot join the front door's calls: said, and exit code 3
    assert "are the captures' clocks aligned? (--clock-offset" in run.stderr
    assert run.exit_code == 3


def test_clock_offset_names_a_given_capture():
    result = command("-r", str(CREATE), "--clock-offset", "other.pcap=5")
    assert result.returncode == 2 and "one of the -r captures" in result.stderr
