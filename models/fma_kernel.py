"""The FMA golden's datapath compiled (numba), for workloads too big for the vectorised model.

`fma.fma` is the definition: numpy, step by step as the RTL does it. This module runs the same
steps per element in a loop that numba compiles to machine code (unpack, exact product,
aligned sum with sticky, exact or approximate normalization, rounding, packing, special
values). `fma_fast` reads the configuration at run time (one compiled kernel for all, about 4x
the vectorised golden); `gemm_fast` compiles one kernel per configuration with its parameters
as constants (13-15x; bench/minilm_study.py prints the rates side by side). Tests hold both
equal to `fma.fma` bit for bit on every normalization policy, rounding, subnormal mode and
format pair, random and corner operands. It covers `fma` (both multiplicands in the input
format), not `fma_wide`.
"""

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from numba import njit

from specmx.models.config import FMAConfig
from specmx.models.fma import flat_operands

__all__ = ["fma_fast"]

_FINITE, _INF, _NAN = 0, 1, 2


@njit(cache=True, inline="always")
def _bit_length(x):
    n = 0
    if x >= 1 << 32:
        x >>= 32
        n += 32
    if x >= 1 << 16:
        x >>= 16
        n += 16
    if x >= 1 << 8:
        x >>= 8
        n += 8
    if x >= 1 << 4:
        x >>= 4
        n += 4
    if x >= 1 << 2:
        x >>= 2
        n += 2
    if x >= 1 << 1:
        x >>= 1
        n += 1
    return n + x


@njit(cache=True, inline="always")
def _align(x, width, top, anchor, W):
    shift = min(max(anchor - top, 0), 62)
    placed = x << (W - width)
    kept = placed >> shift
    return kept | (1 if (kept << shift) != placed else 0)


@njit(cache=True, inline="always")
def _unpack_ieee(x, w, man_bits, exp_bits, bias, has_inf, daz):
    """Sign, significand, LSB exponent and class of an IEEE-style word (`fma._unpack_ieee`)."""
    emask = (1 << exp_bits) - 1
    ex = (x >> man_bits) & emask
    man = x & ((1 << man_bits) - 1)
    if daz:
        sig = (man | (1 << man_bits)) if ex != 0 else 0
    else:
        sig = man | ((1 << man_bits) if ex != 0 else 0)
    if has_inf:
        cls = _FINITE if ex != emask else (_INF if man == 0 else _NAN)
    else:
        low = (1 << (w - 1)) - 1
        cls = _NAN if (x & low) == low else _FINITE
    if cls != _FINITE:
        sig = 0
    return x >> (w - 1), sig, max(ex, 1) - (bias + man_bits), cls


@njit(cache=True, inline="always")
def _fma1(ai, bi, ci, P):
    """One multiply-add on raw words (the steps of `fma._fma_block`)."""
    (prod_width, c_width, W, lzdw, G, exact_norm, internal, flush_policy, rne, daz,
     w, man_bits, exp_bits, bias, emin, max_finite, inf_bits, can_nan,
     iw, isig, ibias, iall, i_inf, i_nan, in_w, in_man, in_exp, in_bias, in_inf) = P
    emask = (1 << exp_bits) - 1
    sa, sig_a, ea, cls_a = _unpack_ieee(ai, in_w, in_man, in_exp, in_bias, in_inf, daz)
    sb, sig_b, eb, cls_b = _unpack_ieee(bi, in_w, in_man, in_exp, in_bias, in_inf, daz)
    if internal:
        sc = ci >> (iw - 1)
        ex = (ci >> isig) & iall
        sig_c = ci & ((1 << isig) - 1)
        cls_c = _FINITE if ex != iall else (_INF if sig_c == 0 else _NAN)
        if cls_c != _FINITE:
            sig_c = 0
        ec = ex - ibias - (isig - 1)
    else:
        sc, sig_c, ec, cls_c = _unpack_ieee(ci, w, man_bits, exp_bits, bias, True, daz)   # accumulators have inf
    sp = sa ^ sb

    prod = sig_a * sig_b
    top_p = ea + eb + prod_width
    top_c = ec + c_width
    if prod == 0:
        anchor = top_c
    elif sig_c == 0:
        anchor = top_p
    else:
        anchor = max(top_p, top_c)
    if not internal:
        anchor = max(anchor, emin)
    pa = _align(prod, prod_width, top_p, anchor, W)
    ca = _align(sig_c, c_width, top_c, anchor, W)
    total = pa * (1 - 2 * sp) + ca * (1 - 2 * sc)
    neg = total >> 63 & 1
    mag = abs(total)

    lz = W + 1 - _bit_length(mag)
    limit = lz if internal else min(lz, anchor - emin)
    if exact_norm:
        shift = limit
    else:
        shift = min(min(lz, lzdw) >> G, limit >> G) << G          # G = log2(step)
    norm = mag << shift
    top_exp = anchor - shift

    p = c_width
    sig = norm >> (W + 1 - p)
    if rne:
        round_bit = (norm >> (W - p)) & 1
        sticky = 1 if (norm & ((1 << (W - p)) - 1)) != 0 else 0
        sig = sig + (round_bit & (sticky | (sig & 1)))
    zero_sign = sp & sc

    if internal:
        carry = sig >> isig
        if carry == 1:
            sig >>= 1
        e_out = top_exp + carry + ibias
        r = (neg << (iw - 1)) | (e_out << isig) | sig
        if e_out >= iall:
            r = (neg << (iw - 1)) | i_inf
        if e_out <= 0 or sig == 0:
            r = neg << (iw - 1)
        if mag == 0:
            r = zero_sign << (iw - 1)
        word_w, word_inf, word_nan = iw, i_inf, i_nan
    else:
        if not exact_norm:
            if flush_policy:
                if limit > shift:
                    sig = 0
            else:
                up = min(p - _bit_length(sig), top_exp - emin)
                if up > 0:
                    sig <<= up
                    top_exp -= up
        r = 0 if sig == 0 else ((top_exp + bias - 1) << man_bits) + sig
        if r > max_finite:
            r = inf_bits if rne else max_finite
        r |= neg << (w - 1)
        if mag == 0:
            r = zero_sign << (w - 1)
        if daz and ((r >> man_bits) & emask) == 0:
            r &= 1 << (w - 1)
        word_w, word_inf, word_nan = w, inf_bits, can_nan

    if (cls_a | cls_b | cls_c) != 0:
        inf_a, inf_b, inf_c = cls_a == _INF, cls_b == _INF, cls_c == _INF
        zero_a = sig_a == 0 and cls_a == _FINITE
        zero_b = sig_b == 0 and cls_b == _FINITE
        prod_inf = inf_a or inf_b
        if prod_inf or inf_c:
            r = word_inf | ((sp if prod_inf else sc) << (word_w - 1))
        if (cls_a == _NAN or cls_b == _NAN or cls_c == _NAN or (inf_a and zero_b) or (zero_a and inf_b)
                or (prod_inf and inf_c and sp != sc)):
            r = word_nan
    return r


@njit(cache=True, nogil=True)
def _kernel(a, b, c, out, P):
    for i in range(a.size):
        out[i] = _fma1(a[i], b[i], c[i], P)


def _params(cfg: FMAConfig):
    acc, ifmt, in_f = cfg.acc_f, cfg.int_f, cfg.in_f
    return (cfg.prod_width, cfg.c_width, cfg.sum_width, cfg.lzd_window, cfg.step.bit_length() - 1,
            cfg.window is None and cfg.step == 1, cfg.internal, cfg.policy == "flush", cfg.rounding == "rne",
            cfg.subnormals == "flush", acc.width, acc.man_bits, acc.exp_bits, acc.bias, acc.emin,
            acc.max_finite_bits, acc.inf_bits, acc.canonical_nan,
            ifmt.width, ifmt.sig_bits, ifmt.bias, ifmt.exp_all_ones, ifmt.inf_bits, ifmt.canonical_nan,
            in_f.width, in_f.man_bits, in_f.exp_bits, in_f.bias, in_f.has_inf)


def fma_fast(a, b, c, cfg: FMAConfig):
    """`fma.fma(a, b, c, cfg)`, compiled: the same bits, many times faster."""
    a, b, c, shape = flat_operands(a, b, c, cfg)
    out = np.empty(a.size, dtype=np.int64)
    _kernel(a, b, c, out, tuple(int(x) for x in _params(cfg)))
    return out.reshape(shape)


# One configuration's GEMM kernel, its parameters compiled in as constants (numba freezes a
# module's global tuple), so the compiler folds away every branch the configuration does not
# take: about twice the rate of the kernel that reads them at run time. Each accumulator row is
# carried along k with B read row by row, so the inner loop runs independent chains over
# contiguous memory. The per-accumulator order over k is the chain's, so the bits are.
_GEMM_TEMPLATE = """\
from numba import njit
from specmx.models.fma_kernel import _fma1

P = {params!r}


@njit(cache=True, nogil=True)
def gemm_kernel(A, B, C):
    for t in range(C.shape[0]):
        for m in range(C.shape[1]):
            row = C[t, m].copy()
            for k in range(A.shape[2]):
                a = A[t, m, k]
                for n in range(C.shape[2]):
                    row[n] = _fma1(a, B[t, k, n], row[n], P)
            C[t, m] = row
"""
_kernels = {}


def kernel_dir():
    """Where the generated per-configuration kernels and numba's cache of them live:
    $SPECMX_KERNEL_CACHE, else ~/.cache/specmx/fma_kernels, else (not writable) a folder in the
    system's temporary directory."""
    for path in (os.environ.get("SPECMX_KERNEL_CACHE"), Path.home() / ".cache" / "specmx" / "fma_kernels",
                 Path(tempfile.gettempdir()) / "specmx_fma_kernels"):
        if path:
            try:
                Path(path).mkdir(parents=True, exist_ok=True)
                if os.access(path, os.W_OK):
                    return Path(path)
            except OSError:
                pass
    raise OSError("no writable folder for the compiled FMA kernels: set SPECMX_KERNEL_CACHE")


def specialized_gemm(cfg: FMAConfig):
    """The compiled GEMM kernel of `cfg`: a generated module named by a hash of the parameters
    and of this file (so an edited datapath never reuses a stale kernel), written once and
    imported; numba caches its machine code beside it."""
    params = tuple(int(x) for x in _params(cfg))
    if params not in _kernels:
        source = _GEMM_TEMPLATE.format(params=params)
        key = hashlib.sha256((source + Path(__file__).read_text()).encode()).hexdigest()[:20]
        path = kernel_dir() / f"fma_gemm_{key}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)                      # atomic: parallel workers never read half a file
        name = f"specmx_fma_gemm_{key}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module                     # numba's cache finds the module by name
        spec.loader.exec_module(module)
        _kernels[params] = module.gemm_kernel
    return _kernels[params]


def gemm_fast(cfg: FMAConfig, A, B, C):
    """The `gemm.gemm_chain` accumulation on checked words, compiled for `cfg`: A (..., M, K),
    B (..., K, N), C (..., M, N) accumulator words of `cfg` (internal words when its policy is
    internal), all with the same leading dimensions. Returns the chained words."""
    lead = C.shape[:-2]
    M, N, K = C.shape[-2], C.shape[-1], A.shape[-1]
    A3 = np.array(np.broadcast_to(A, lead + (M, K)), dtype=np.int64).reshape(-1, M, K)    # fresh, writable,
    B3 = np.array(np.broadcast_to(B, lead + (K, N)), dtype=np.int64).reshape(-1, K, N)    # contiguous: one
    C3 = np.array(C, dtype=np.int64).reshape(-1, M, N)                                    # signature, one compile
    specialized_gemm(cfg)(A3, B3, C3)
    return C3.reshape(C.shape)
