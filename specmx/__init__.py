"""specmx: FPGA matrix engines with approximate-normalization FMAs, and Mamba speculative decoding."""

__version__ = "0.1.0"
