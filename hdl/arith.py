"""Small combinational building blocks shared by the FMA datapath: leading-zero count, unpacking."""

from amaranth.hdl import Cat, Const, Mux, Shape, Value, signed, unsigned

__all__ = ["leading_zeros", "grouped_leading_zeros", "unpack_ieee", "max_signed"]


def leading_zeros(value: Value):
    """Leading-zero count of `value` (len(value) when it is zero), as a log-depth tree.

    Each level merges two halves: if the upper half is all zeros the count is its width plus
    the lower half's count, otherwise the upper half's count.
    """
    width = len(value)
    if width == 1:
        return ~value[0]
    half = 1 << ((width - 1).bit_length() - 1)   # largest power of two below width
    upper, lower = value[width - half:], value[:width - half]
    lz_upper = leading_zeros(upper)
    lz_lower = leading_zeros(lower) if len(lower) else Const(0, 1)
    count_width = width.bit_length()
    return Mux(upper.any(), lz_upper, half + lz_lower).as_unsigned()[:count_width]


def grouped_leading_zeros(value: Value, window: int, group: int):
    """Leading zeros of `value` seen only through its top `window` bits, counted in whole
    groups of `group` bits: returns (number of all-zero leading groups, at most window//group)."""
    top = value[len(value) - window:]
    groups = Cat(*(top[i * group:(i + 1) * group].any() for i in range(window // group)))
    return leading_zeros(groups)


def unpack_ieee(bits: Value, fmt, daz: bool, exp_shape: Shape):
    """Split an IEEE-style word into (sign, significand, LSB exponent, is_nan, is_inf).

    The significand includes the hidden bit (zero for subnormals, or for all of them when
    `daz`); NaN/inf words give a zero significand. Mirrors `models.fma._unpack_ieee`.
    """
    man = bits[:fmt.man_bits]
    exp = bits[fmt.man_bits:fmt.man_bits + fmt.exp_bits]
    sign = bits[-1]
    normal = exp.any()
    if fmt.has_inf:
        top = exp.all()
        is_nan = top & man.any()
        is_inf = top & ~man.any()
    else:
        is_nan = bits[:-1].all()
        is_inf = Const(0, 1)
    finite = ~is_nan & ~is_inf
    sig = Cat(man, normal) if not daz else Mux(normal, Cat(man, Const(1, 1)), 0)
    sig = Mux(finite, sig, 0)
    lsb_exp = Mux(normal, exp, 1) - Const(fmt.bias + fmt.man_bits, exp_shape)
    return sign, sig[:fmt.precision], lsb_exp, is_nan, is_inf


def max_signed(x: Value, y: Value):
    return Mux(x > y, x, y)
