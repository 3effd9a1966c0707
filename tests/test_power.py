"""The switching-activity power proxy: the gate-level netlist evaluator against the golden FMA
(with a corrupted gate as the negative control), toggle counting on a hand-made netlist, and a
reduced `specmx study power` (short streams, an fp8 FMA)."""

import json

import numpy as np
import pytest
from bitcheck import assert_bits_equal
from cli_run import run_cli

from specmx.models.config import FMAConfig
from specmx.models.fma import fma
from specmx.power import GATE_WEIGHTS, GateNetlist, fma_netlist, toggles_per_mac
from specmx.sim.vectors import fma_vectors

CFG = FMAConfig("e4m3", "bf16")


@pytest.fixture(scope="module")
def netlist_path(tmp_path_factory):
    return fma_netlist(CFG, tmp_path_factory.mktemp("power"))


def test_gate_netlist_equals_golden_and_corruption_is_caught(netlist_path, tmp_path):
    a, b, c = fma_vectors(CFG, 20_000, seed=11)
    netlist = GateNetlist(netlist_path)
    out, toggles = netlist.run({"a": a, "b": b, "c": c})
    assert_bits_equal(out["r"], fma(a, b, c, CFG), "gate-level FMA")
    assert set(toggles) <= set(GATE_WEIGHTS) and sum(toggles.values()) > 0
    # negative control: one XOR turned into XNOR changes results
    data = json.loads(netlist_path.read_text())
    cells = data["modules"]["fma"]["cells"]
    name = next(n for n, cell in cells.items() if cell["type"] == "$_XOR_")
    cells[name]["type"] = "$_XNOR_"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    weighted, plain, mismatches = toggles_per_mac(GateNetlist(bad), (a, b, c, fma(a, b, c, CFG)))
    assert mismatches > 0


def test_toggle_counting_on_a_hand_made_netlist(tmp_path):
    """y = NOT a, z = a XOR b: toggles are the cycles where an output changes."""
    net = {"modules": {"t": {"ports": {"a": {"direction": "input", "bits": [2]},
                                       "b": {"direction": "input", "bits": [3]},
                                       "y": {"direction": "output", "bits": [4]},
                                       "z": {"direction": "output", "bits": [5]}},
                             "cells": {"n": {"type": "$_NOT_", "connections": {"A": [2], "Y": [4]}},
                                       "x": {"type": "$_XOR_", "connections": {"A": [2], "B": [3], "Y": [5]}}}}}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(net))
    out, toggles = GateNetlist(path, "t").run({"a": np.array([0, 1, 1, 0, 0]), "b": np.array([0, 0, 1, 1, 1])})
    assert list(out["y"]) == [1, 0, 0, 1, 1] and list(out["z"]) == [0, 1, 0, 1, 1]
    assert toggles == {"$_NOT_": 2, "$_XOR_": 3}


def test_study_power_cli(tmp_path):
    proc = run_cli("study", "power", "--in", "e4m3", "--acc", "bf16", "--norm", "window=4,step=4,policy=internal",
                   "--streams", "2", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["toggles_per_mac"] > 0 and r["exact_toggles_per_mac"] > 0
    assert r["ratio_vs_exact"] == pytest.approx(r["toggles_per_mac"] / r["exact_toggles_per_mac"])
    assert r["gates_vs_exact"] == pytest.approx(r["gates"] / r["exact_gates"]) and r["macs"] == r["exact_macs"]
    assert list(tmp_path.glob("study_power_*.json"))


def test_study_power_bad_input(tmp_path):
    proc = run_cli("study", "power", "--streams", "0", "--out", str(tmp_path))
    assert proc.returncode == 2 and "streams: must be 1..256" in proc.stderr
    assert not list(tmp_path.iterdir())
