"""Golden model of the built-in self-test (`hdl.selftest.SelfTest`): the operands its LFSR
makes, the results the golden FMA gives for them, and the CRC-32 signature of those results,
which the bitstream carries as the value the silicon must reach.

Operand generator: a 32-bit Galois LFSR (right shift, taps 0x80200003: x^32 + x^22 + x^2 + x + 1),
seeded with SEED, stepping once per operation. Operation k takes word w_k: a = the low
in-format bits of w_k, b = the in-format bits from bit 16 up, c = the accumulator bits of the
previous word w_{k-1} (0 for the first operation).

Signature: CRC-32 (IEEE 802.3, reflected, as `zlib.crc32`) over the results in order, each
result word as acc-width/8 little-endian bytes.

The SSM self-test streams stored beats instead: a selective scan's inputs are structured (B and
C shared by a token's channels, A and D fixed per channel, dt, u and z fixed across a channel's
beats), so the bitstream holds `ssm_stimulus`'s token stream (Mamba-shaped random values with
the corner tokens the cocotb regressions use: zeros, large and negative dt, near-overflow
state, subnormals, NaN and inf, a clear mid-stream) in a ROM, and the signature is the CRC-32 of
the scan unit's golden outputs (`scan_stream`, fp32 words).
"""

import zlib

import numpy as np

from specmx.models.config import FMAConfig
from specmx.models.fma import fma

__all__ = ["SEED", "TAPS", "GEMM_SEEDS", "SSM_SEED", "lfsr_words", "operands", "signature", "gemm_operands",
           "gemm_signature", "ssm_stimulus", "ssm_signature"]

SEED = 0xACE1ACE1
TAPS = 0x80200003
GEMM_SEEDS = (0x1234ABCD, 0x5EED5EED, 0x0BADCAFE)     # A, B and C0 of the GEMM self-test
SSM_SEED = 0x55AA                                    # the SSM self-test's stimulus


def lfsr_words(n, seed=SEED):
    """The first n words of the LFSR (w_0 = seed)."""
    out = np.empty(n, dtype=np.int64)
    s = seed
    for k in range(n):
        out[k] = s
        s = (s >> 1) ^ (TAPS if s & 1 else 0)
    return out


def operands(cfg: FMAConfig, n, seed=SEED):
    """(a, b, c) raw bit patterns of the n operations."""
    w = lfsr_words(n, seed)
    in_mask = (1 << cfg.in_f.width) - 1
    acc_mask = (1 << cfg.acc_width) - 1
    a = w & in_mask
    b = (w >> 16) & in_mask
    c = np.concatenate([[0], w[:-1]]) & acc_mask
    return a, b, c


def signature(cfg: FMAConfig, n, seed=SEED):
    """(CRC-32 of the n golden results, the results)."""
    if cfg.internal:
        raise ValueError("fma.policy: the self-test feeds IEEE accumulator words; allowed: round, flush, exact")
    a, b, c = operands(cfg, n, seed)
    r = fma(a, b, c, cfg)
    nbytes = cfg.acc_width // 8
    data = b"".join(int(v).to_bytes(nbytes, "little") for v in r)
    return zlib.crc32(data) & 0xFFFFFFFF, r


def _crc(words, width):
    nbytes = width // 8
    return zlib.crc32(b"".join(int(v).to_bytes(nbytes, "little") for v in np.ravel(words))) & 0xFFFFFFFF


def gemm_operands(engine, shape):
    """(A, B, C0) of the GEMM self-test: each matrix row-major from its own LFSR
    (GEMM_SEEDS), one word per element, masked to the operand width."""
    M, N, K = shape
    cfg = engine.fma
    in_mask, acc_mask = (1 << cfg.in_f.width) - 1, (1 << cfg.acc_f.width) - 1
    A = (lfsr_words(M * K, GEMM_SEEDS[0]) & in_mask).reshape(M, K)
    B = (lfsr_words(K * N, GEMM_SEEDS[1]) & in_mask).reshape(K, N)
    C0 = (lfsr_words(M * N, GEMM_SEEDS[2]) & acc_mask).reshape(M, N)
    return A, B, C0


def gemm_signature(engine, shape):
    """(CRC-32 of the golden GEMM's results, row-major, the results)."""
    from specmx.models.gemm import gemm
    if engine.fma.internal:
        raise ValueError("fma.policy: the self-test takes IEEE accumulator words; allowed: round, flush, exact")
    C = gemm(engine, *gemm_operands(engine, shape))
    return _crc(C, engine.fma.acc_f.width), C


def ssm_stimulus(ssm, tokens):
    """The SSM self-test's token stream (the arrays `scan_stream` takes), with corner tokens
    from 8 tokens up."""
    from specmx.models.ssm_stimulus import scan_vectors
    return scan_vectors(ssm, tokens, seed=SSM_SEED, corners=True)


def ssm_signature(ssm, tokens):
    """(CRC-32 of the scan unit's golden gated outputs, token by token and channel by channel,
    the outputs [tokens, d_inner] as fp32 words)."""
    from specmx.models.ssm_numerics import HardwareOps, scan_stream
    out = scan_stream(HardwareOps(ssm.fma, ssm.lanes), ssm.family, ssm_stimulus(ssm, tokens))
    return _crc(out, 32), out
