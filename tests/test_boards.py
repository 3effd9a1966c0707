"""Board files (`boards/*.yaml`), the `Board` spec object, `specmx boards list|show`, and the
resource estimate against specmx's own ECP5 synthesis."""

import json
from dataclasses import replace

import pytest
from cli_run import run_cli

from specmx.boards.board import BOARD_DIR, BoardError, board_names, load_board
from specmx.boards.costs import check_fit, estimate, largest_fit

SHIPPED = ("icebreaker", "orangecrab-85f", "u280", "ulx3s-85f", "vck190", "vhk158")


def _cli(*args):
    return run_cli(*args)


def test_every_shipped_board_loads_with_sourced_values():
    assert tuple(board_names()) == SHIPPED
    for name in SHIPPED:
        b = load_board(name)
        text = (BOARD_DIR / f"{name}.yaml").read_text()
        assert b.name == name and b.memories and b.static_w[0] <= b.static_w[1]
        for key in ("lut:", "dsp:", "bram:", "clock_mhz:", "static_w:"):     # each value with a source comment
            line = next(ln for ln in text.splitlines() if ln.startswith(key))
            assert "#" in line, (name, line)
    v = load_board("vck190")
    assert (v.dsp, v.dsp_kind, v.weight_memory(1e9).kind) == (1968, "DSP58", "LPDDR4")
    assert load_board("u280").weight_memory(1e9).gbps == 460
    assert load_board("ulx3s-85f").lut == 83640


def test_unknown_values_are_assumptions_the_board_states():
    b = load_board("vhk158")
    assert set(b.assumed) == {"lut", "ff", "dsp", "bram", "uram"}
    assert all("unknown" in why for why in b.assumed.values())
    assert load_board("vck190").assumed == {}


def _write(tmp_path, text):
    path = tmp_path / "board.yaml"
    path.write_text(text)
    return path


GOOD = (BOARD_DIR / "ulx3s-85f.yaml").read_text()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("family: ecp5", "family: stratix"), "board.family: unknown 'stratix'; allowed: ecp5"),
    (lambda t: t.replace("dsp: 156", "dsp: -1"), "board.dsp: must be a whole number >= 0"),
    (lambda t: t.replace("clock_mhz: 50", "clok_mhz: 50"), "board.clok_mhz: unknown key; did you mean 'clock_mhz'?"),
    (lambda t: t.replace("part: LFE5U-85F-6BG381C", ""), "board.part: missing"),
    (lambda t: t.replace("kind: SDR-SDRAM", "kind: DDR9"), "board.memories[0].kind: unknown 'DDR9'"),
    (lambda t: t.replace("static_w: [0.3, 0.8]", "static_w: [0.8, 0.3]"), "board.static_w: must be [low, high]"),
    (lambda t: t + "\n  - [", "not valid YAML"),
    (lambda t: t.replace("lut: 83640", "lut: 83640\nassume: {lut: {value: 1, why: x}}"),
     "board.assume.lut: the file gives lut already"),
])
def test_bad_board_files_get_one_line_naming_the_field(tmp_path, edit, message):
    path = _write(tmp_path, edit(GOOD))
    with pytest.raises(BoardError, match=message.replace("[", r"\[").replace("?", r"\?")):
        load_board(path)
    proc = _cli("boards", "show", str(path))
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "specmx: error: board" in proc.stderr


def test_an_unknown_value_without_assumption_is_asked_for(tmp_path):
    path = _write(tmp_path, GOOD.replace("dsp: 156", "dsp: null"))
    b = load_board(path)
    with pytest.raises(BoardError, match=r"board.dsp: unknown for ulx3s-85f .*assume"):
        b.need("dsp")
    assert load_board(_write(tmp_path, GOOD)).need("dsp") == 156        # control: the real file answers


def test_boards_cli_list_and_show():
    proc = _cli("boards", "list")
    assert proc.returncode == 0
    for name in SHIPPED:
        assert name in proc.stdout
    assert "899,840*" in proc.stdout                            # the VHK158's assumed LUTs are marked
    proc = _cli("boards", "show", "u280", "--json")
    data = json.loads(proc.stdout)
    assert data["dsp"] == 9024 and data["dsp_kind"] == "DSP48E2" and "HBM2 460" in data["memories"]
    proc = _cli("boards", "show", "vck19")
    assert proc.returncode == 2 and "did you mean 'vck190'" in proc.stderr


def _micro():
    from specmx.cli.engine import model_config
    from specmx.models.perf.engine import model_dims
    from specmx.sim.engine_check import MICRO_ENGINE
    return MICRO_ENGINE, model_dims(model_config("micro"))


def test_ecp5_estimate_against_specmx_synthesis():
    """The ECP5 cost rows come from the four engines specmx synthesized (4x4, 5x5 and 6x6 with one
    lane, 4x4 with two) and the result adders synthesized alone: the lane and the base are exact
    differences, the PE the mean of the two per-PE differences. LUT sites = LUT4 + 2 x CCU2C.
    Errors: LUT sites within 0.25%, DSPs within 2%, FFs within 1% on all four."""
    engine, dims = _micro()
    board = load_board("ulx3s-85f")
    synth = json.loads((BOARD_DIR / "ecp5_engine_synth.json").read_text())["results"]
    assert len(synth) == 4

    def errors(r, cost_scale=1.0):
        est = estimate(board, replace(engine, rows=r["rows"], cols=r["cols"], lanes=r["lanes"]), dims)["resources"]
        return (abs(est["lut"][0] * cost_scale / (r["ecp5_lut"] + 2 * r["ecp5_carry"]) - 1),
                abs(est["dsp"][0] / r["ecp5_dsp"] - 1), abs(est["ff"][0] / r["ecp5_ff"] - 1))

    for r in synth:
        lut, dsp, ff = errors(r)
        assert lut < 0.0025 and dsp < 0.02 and ff < 0.01, (r["rows"], r["lanes"], lut, dsp, ff)
    assert errors(synth[-1], cost_scale=1.05)[0] > 0.04             # negative control: a 5% wrong table fails


def test_fit_check_names_the_resource_and_largest_fit_fits():
    engine, dims = _micro()
    board = load_board("ulx3s-85f")
    check_fit(board, engine, dims)                                 # the co-simulated 4x4 fits (99% of LUTs)
    with pytest.raises(BoardError, match=r"engine: does not fit ulx3s-85f: lut needs .* of 83,640"):
        check_fit(board, replace(engine, rows=6, cols=6), dims)
    best = largest_fit(board, engine, dims)
    check_fit(board, best, dims)
    with pytest.raises(BoardError):
        check_fit(board, replace(best, arrays=best.arrays + 1), dims)
    assert (best.rows, best.cols) == (engine.rows, engine.cols)
    assert largest_fit(load_board("icebreaker"), engine, dims) is None     # 8 DSPs hold no SSM lane
