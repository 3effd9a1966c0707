"""Lattice ECP5 parts that nextpnr-ecp5 places on, smallest first: (LUT4s, MULT18X18D DSPs).
Sources: nextpnr utilisation reports and Lattice Diamond map reports (shared/BOARDS.md)."""

__all__ = ["ECP5_DEVICES"]

ECP5_DEVICES = {"25k": (24288, 28), "45k": (43848, 72), "85k": (83640, 156)}
