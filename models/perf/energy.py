"""Energy model constants: per multiply-accumulate, per bit moved on and off chip, each a
(low, high) range with its source (tags as in shared/BOARDS.md: C read in a source, I inferred,
U unconfirmed). Board static power comes from the board file (`static_w`).

    energy per verification = static power x time
                              + MACs x e_mac(dsp kind, weight format)
                              + off-chip bits x e_offchip(memory kind)
                              + on-chip bits x e_onchip

The figures are deliberately wide: FPGA dynamic energy depends on toggle rates, routing and
clocking that no table captures; the report gives the low and high ends.
"""

__all__ = ["MAC_PJ", "OFFCHIP_PJ_PER_BIT", "ONCHIP_PJ_PER_BIT", "SSM_PJ_PER_OP", "mac_pj"]

# pJ per multiply-accumulate, by DSP kind (the fabric the MAC is built in) and weight format
MAC_PJ = {
    "DSP58": {"bf16": (6.0, 24.0), "fp8": (6.0, 24.0), "int8": (1.0, 4.0), "int4": (0.5, 3.0)},
    "DSP48E2": {"bf16": (8.0, 30.0), "fp8": (8.0, 30.0), "int8": (1.5, 6.0), "int4": (0.7, 4.0)},
    "MULT18X18D": {"bf16": (20.0, 100.0), "fp8": (20.0, 100.0), "int8": (3.0, 15.0), "int4": (1.5, 8.0)},
    "SB_MAC16": {"bf16": (15.0, 80.0), "fp8": (15.0, 80.0), "int8": (2.0, 10.0), "int4": (1.0, 6.0)},
}
MAC_SOURCES = (
    "DSP58 bf16/fp32: I from C: the Vitis AIE-vs-DSP GEMM tutorial's 1,024-DSP58 design, 8.709 W "
    "dynamic at 1.433 TOPS (XPE estimate) = 6.1 pJ per op, 12 per MAC, taken x0.5-2; "
    "integer MACs: U, scaled from 45 nm figures (Horowitz, ISSCC 2014: 8-bit multiply 0.2 pJ, "
    "16-bit float multiply 1.1 pJ, 32-bit float add 0.9 pJ) by the 10-30x FPGA overhead usually quoted; "
    "ECP5/iCE40: U, a 1,440-LUT bf16 PE at 40 nm; none measured here")

# pJ per bit moved to or from an off-chip memory
OFFCHIP_PJ_PER_BIT = {
    "HBM2": (3.5, 7.0), "HBM2E": (3.5, 7.0), "LPDDR4": (4.0, 8.0), "DDR4": (15.0, 25.0),
    "DDR3L": (20.0, 35.0), "SDR-SDRAM": (30.0, 60.0), "QSPI-flash": (50.0, 200.0), "SPRAM": (0.5, 2.0),
}
OFFCHIP_SOURCES = (
    "HBM2 3.9 pJ/bit (O'Connor et al., MICRO 2017, U); LPDDR4 and DDR4 interface+core energies, U "
    "(commonly quoted 4-8 and 15-25 pJ/bit); DDR3L, SDR SDRAM and QSPI flash, U (older, wider-swing "
    "interfaces); all include the FPGA-side PHY only roughly")

ONCHIP_PJ_PER_BIT = (0.3, 1.5)
ONCHIP_SOURCES = ("U: block RAM / UltraRAM read or write per bit (45 nm 8 KB SRAM: about 0.16 pJ/bit, "
                  "Horowitz 2014, x2-10)")

# pJ per elementwise SSM operation (an fp32 multiply-add of the scan or conv, or a function-unit
# evaluation), by DSP kind
SSM_PJ_PER_OP = {"DSP58": (10.0, 40.0), "DSP48E2": (15.0, 50.0), "MULT18X18D": (40.0, 200.0),
                 "SB_MAC16": (30.0, 150.0)}


def mac_pj(dsp_kind, weights):
    """(low, high) pJ per MAC."""
    return MAC_PJ[dsp_kind][weights]
