"""Receptive-field arithmetic every layer rule uses: `RF` (size, jump, start per axis, exact
as fractions), windows, and the output-size formulas of convolution, transposed convolution,
'same' padding and adaptive pooling."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import gcd, prod  # noqa: F401  (prod re-exported for layer rules)

from cnncalc.errors import LayerError

MAX_FIELD_BITS = 996
"""Fields are exact numbers: a size, jump or start (or a fraction's numerator or denominator)
above 2^996 (about 10^300) is refused. Only a tower of strides on a one-pixel axis gets there
(each adds up to 2^40); below it every field prints, fits a float and is read back by diff."""


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """K_eff = D·(K − 1) + 1: the span a dilated kernel covers."""
    return dilation * (kernel - 1) + 1


@dataclass(frozen=True, init=False)
class Window:
    """One spatial axis of a sliding window (convolution, pooling): input size H, kernel K,
    stride S, padding before/after, dilation D, rounding (floor, or ceil for ceil_mode)."""

    size: int
    kernel: int
    stride: int = 1
    pad_lo: int = 0
    pad_hi: int = 0
    dilation: int = 1
    ceil_mode: bool = False

    span: int = field(init=False, repr=False, compare=False)
    """K_eff = D·(K − 1) + 1."""
    padded: int = field(init=False, repr=False, compare=False)
    """H + P_lo + P_hi."""
    out: int = field(init=False, repr=False, compare=False)
    """H' = ⌊(H + P_lo + P_hi − K_eff) / S⌋ + 1; with ceil_mode ⌈…⌉ + 1, minus one when the
    last window would start in the right padding ((H'−1)·S ≥ H + P_lo, torch's rule)."""
    unreached: int = field(init=False, repr=False, compare=False)
    """Input rows at the end that no window reaches: H + P_lo − ((H'−1)·S + K_eff)."""

    def __init__(self, size: int, kernel: int, stride: int = 1, pad_lo: int = 0, pad_hi: int = 0,
                 dilation: int = 1, ceil_mode: bool = False) -> None:
        # the dataclass's own (frozen) __init__ sets each field through object.__setattr__: 5×
        # slower, and made for every axis of every window layer (#30); the derived sizes are
        # plain attributes, computed here once (the rules read them several times per layer)
        span = dilation * (kernel - 1) + 1
        padded = size + pad_lo + pad_hi
        num = padded - span
        if not ceil_mode:
            out = num // stride + 1
        else:
            out = -(-num // stride) + 1
            if (out - 1) * stride >= size + pad_lo:
                out -= 1
        self.__dict__.update(size=size, kernel=kernel, stride=stride, pad_lo=pad_lo, pad_hi=pad_hi,
                             dilation=dilation, ceil_mode=ceil_mode, span=span, padded=padded, out=out,
                             unreached=max(0, size + pad_lo - ((out - 1) * stride + span)))

    def formula(self) -> str:
        """The output-size arithmetic with this axis' numbers substituted."""
        lo, hi = ("⌈", "⌉") if self.ceil_mode else ("⌊", "⌋")
        pad = f"2·{self.pad_lo}" if self.pad_lo == self.pad_hi else f"{self.pad_lo} + {self.pad_hi}"
        return f"{lo}({self.size} + {pad} − {self.dilation}·({self.kernel}−1) − 1) / {self.stride}{hi} + 1"


def conv_transpose_out(size: int, kernel: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1, output_padding: int = 0) -> int:
    """H' = (H − 1)·S − 2P + D·(K − 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """torch's padding='same' (stride 1): total D·(K−1), left ⌊total/2⌋, the rest on the right."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def adaptive_windows(size: int, out: int) -> tuple[int, Fraction]:
    """Adaptive pooling window i spans [⌊i·H/H'⌋, ⌈(i+1)·H/H'⌉): returns (widest window, H/H').

    With i·H = a·H' + b (0 ≤ b < H'), window i is ⌈(b + H)/H'⌉ wide; b runs over every multiple
    of g = gcd(H, H') below H' (i·H mod H' for i < H'), so the widest is ⌈(H' − g + H)/H'⌉,
    in closed form (enumerating the period H'/g took seconds for co-prime sizes)."""
    return -(-(out - gcd(size, out) + size) // out), Fraction(size, out)


Num = int | Fraction
"""A field quantity as RF keeps it: an int while it is whole (nearly always), else an exact
Fraction. `RF.size` and the other public attributes give it as a Fraction either way."""


def _q(x: Num) -> Num:
    """x as an int when it is whole (Fraction arithmetic is the analysis' largest cost)."""
    if type(x) is int:
        return x
    return x.numerator if x.denominator == 1 else x


def _half(x: Num) -> Num:
    """x / 2, exactly."""
    if type(x) is int and not x & 1:
        return x >> 1
    return _q(Fraction(x) / 2)


def _div(a: Num, b: Num) -> Num:
    """a / b, exactly."""
    if type(a) is int and type(b) is int and a % b == 0:
        return a // b
    return _q(Fraction(a) / b)


def _bounded(size: Num, jump: Num, start: Num) -> None:
    """Refuse (LayerError) a field quantity past MAX_FIELD_BITS, numerator or denominator."""
    if type(size) is int and type(jump) is int and type(start) is int and \
            size.bit_length() <= MAX_FIELD_BITS and jump.bit_length() <= MAX_FIELD_BITS and \
            start.bit_length() <= MAX_FIELD_BITS:
        return  # whole and in bounds (nearly always)
    for name, x in (("size", size), ("jump", jump), ("start", start)):
        if type(x) is int:
            bits = x.bit_length()
        else:
            bits = max(x.numerator.bit_length(), x.denominator.bit_length())
        if bits > MAX_FIELD_BITS:
            what = f"about 2^{bits - 1}" if type(x) is int or x.denominator == 1 else (
                f"a fraction with about {bits * 3 // 10:,} digits")
            raise LayerError(f"the receptive field's {name} is {what}, above the limit 2^{MAX_FIELD_BITS} "
                             "(about 10^300): fields are exact numbers and this one is too large to keep; refused")


def _frac(x: Num) -> Fraction:
    return x if type(x) is Fraction else Fraction(x)


@dataclass(frozen=True, init=False)
class RF:
    """Receptive field on one axis, in network-input pixels.

    size: extent of the field of one unit; jump: input pixels between neighbouring units
    (an average after upsampling); start: centre of the first unit's field (may be negative:
    it sits in the padding); grain: the lattice the fields' positions actually move on (the
    jump, until upsampling makes neighbours share sources and move unevenly).

    The four are kept as `_size`, `_jump`, `_start`, `_grain`: ints while whole, exact
    Fractions otherwise; the properties `size`, `jump`, `start`, `grain` read them as Fractions.
    """

    _size: Num
    _jump: Num
    _start: Num
    _grain: Num = 1
    uniform: bool = True
    """Every unit's field has the same size (false after a transposed conv whose taps do not
    divide evenly, or linear interpolation): `size` is then the largest."""
    irregular: bool = False
    """Units sit unevenly on the grain (e.g. stride 3 after upsampling by 2): neither evenly
    spaced nor plain copies, so no window over them has a closed form."""
    exact: bool = True
    """False once the continuous formula stops being the discrete truth: a window spreading
    over a non-multiple of the grain after upsampling, or a transposed conv leaving holes
    (output units that read no input). The size is then an estimate, not checked by verify."""
    even: bool = True
    """Unit u's window is centred exactly at start + u·jump. False from the first upsampling
    on (a shrinking jump: resize up, strided transposed conv): neighbours' windows then sit unevenly
    (e.g. −0.5, 0.5, 0.5, 1.5 for ×2) and `start` is the intercept of their average line, an
    estimate of the first unit's centre that verify does not compare."""
    whole: bool = False
    """Every unit reads the whole input on this axis (after global pooling, or a merge with a
    broadcast global branch such as a squeeze-and-excitation gate): `size` is the padded input
    extent the window covers and stays so; `start` is its centre for every unit; `jump` is
    still the spacing of the units."""

    def __init__(self, _size: Num, _jump: Num, _start: Num, _grain: Num = 1, uniform: bool = True,
                 irregular: bool = False, exact: bool = True, even: bool = True, whole: bool = False) -> None:
        # as the dataclass's own __init__ (the same fields and defaults, kept by `replace`), without
        # its object.__setattr__ per field: a field is made for every axis of most layers (#30)
        self.__dict__.update(_size=_size, _jump=_jump, _start=_start, _grain=_grain, uniform=uniform,
                             irregular=irregular, exact=exact, even=even, whole=whole)

    @property
    def size(self) -> Fraction:
        return _frac(self._size)

    @property
    def jump(self) -> Fraction:
        return _frac(self._jump)

    @property
    def start(self) -> Fraction:
        return _frac(self._start)

    @property
    def grain(self) -> Fraction:
        return _frac(self._grain)

    @classmethod
    def identity(cls) -> RF:
        return cls(1, 1, 0)

    def _next(self, spread: Num, jump: Num, start: Num, holes: bool = False, uniform: bool = True) -> RF:
        if type(spread) is not int:  # (_q inlined for ints: #30, a field per axis of most layers)
            spread = _q(spread)
        if type(jump) is not int:
            jump = _q(jump)
        if type(start) is not int:
            start = _q(start)
        g0 = self._grain
        size = self._size + spread
        if type(size) is not int:
            size = _q(size)
        if not (type(size) is int and type(jump) is int and type(start) is int and size.bit_length() <= MAX_FIELD_BITS
                and jump.bit_length() <= MAX_FIELD_BITS and start.bit_length() <= MAX_FIELD_BITS):
            _bounded(size, jump, start)  # (whole and in bounds, nearly always, checked inline)
        grain = jump if jump % g0 == 0 else g0
        irregular = self.irregular or not (jump % grain == 0 or grain % jump == 0)
        subsampled = jump > self._jump and not self.uniform  # may keep only the smaller fields
        spread_ok = spread == 0 or (not self.irregular and spread % g0 == 0)
        # irregular: units sit unevenly (stride 3 after a ×2 upsampling: jumps 2, 1, 2, 1 …), so
        # the jump is only their average and no window has one closed form from here on (#27)
        exact = self.exact and not holes and not subsampled and spread_ok and type(size) is int and not irregular
        even = self.even and jump >= self._jump  # upsampling pairs units up unevenly, for good
        if self.whole:  # a window over everything grows no further and moves no more
            return replace(self, _jump=jump, _grain=grain, irregular=irregular, even=even)
        return RF(size, jump, start, grain, self.uniform and uniform, irregular, exact, even)

    @property
    def centred(self) -> bool:
        """start + u·jump is unit u's centre (for a whole field, start is every unit's centre)."""
        return self.even or self.whole

    def _lo(self) -> Num:
        return _q(self._start - _half(self._size - 1))

    def _hi(self) -> Num:
        return _q(self._start + _half(self._size - 1))

    @property
    def lo(self) -> Fraction:
        """First input pixel of the first unit's window."""
        return _frac(self._lo())

    @property
    def hi(self) -> Fraction:
        """Last input pixel of the first unit's window."""
        return _frac(self._hi())

    def spread(self, units: int) -> RF:
        """Every unit reads all `units` positions of this axis: the union of their windows,
        r' = r + (n − 1)·j centred on the middle unit, whole. A field already whole is every
        unit's same window: the union of copies of it is itself (two attention layers in a row)."""
        if self.whole:
            return self
        _bounded(self._size + (units - 1) * self._jump, 1, 1)
        return replace(self, _size=_q(self._size + (units - 1) * self._jump),
                       _start=_q(self._start + _half((units - 1) * self._jump)), whole=True)

    def emptied(self) -> RF:
        """After a layer whose first or last units read only padding (an explicit pad, a conv
        padded by its kernel's span or more): those units read nothing, so a whole field is
        no longer every unit's; it is kept as an estimate (the others' window), not whole."""
        return replace(self, whole=False, exact=False) if self.whole else self

    def made_whole(self) -> RF:
        """This window, read by every unit alike (a global pooling)."""
        return replace(self, whole=True)

    def window(self, kernel: int, stride: int = 1, pad_left: int = 0, dilation: int = 1) -> RF:
        """Sliding window (conv, pool): r' = r + (K_eff − 1)·j;  j' = j·S;
        start' = start + ((K_eff − 1)/2 − P_left)·j."""
        j = self._jump
        reach = dilation * (kernel - 1) * j  # (K_eff − 1)·j
        half = reach >> 1 if type(reach) is int and not reach & 1 else _half(reach)
        return self._next(reach, j * stride, self._start + half - pad_left * j)

    def transposed(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> RF:
        """Transposed conv: output o reads inputs i with o + P − k·D = i·S (k < K).
        r' = r + span·j, span = ⌊(K−1)/m⌋·m·D/S input units (m = S/gcd(D, S): taps k and k+m
        reach the same output residue); j' = j/S; start' = start + (P − (K_eff − 1)/2)/S · j."""
        m = stride // gcd(dilation, stride)
        j = self._jump
        k_eff = effective_kernel(kernel, dilation)
        # holes: some output residues receive no tap; with dilation too the taps reach the
        # outputs out of order, so neighbouring units' fields no longer advance monotonically
        holes = m != stride or kernel < m or (dilation > 1 and stride > 1)
        return self._next(_div((kernel - 1) // m * m * dilation * j, stride), _div(j, stride),
                          self._start + _div((2 * padding - (k_eff - 1)) * j, 2 * stride), holes,
                          uniform=kernel % m == 0)

    def resample(self, scale: Fraction, taps: int, offset: Fraction = Fraction(0), uniform: bool = True) -> RF:
        """Resampling by H'/H = 1/scale reading up to `taps` neighbouring inputs:
        r' = r + (taps − 1)·j;  j' = j·scale;  start' = start + offset·j."""
        j = self._jump
        return self._next((taps - 1) * j, j * scale, self._start + offset * j, uniform=uniform)


def union(full: list[RF], broadcast: list[RF], units: int = 0, extent: int = 0) -> RF:
    """One axis of a merge (add, mul, concat along channels): a unit reads the union of its
    inputs' windows. `full`: inputs at the output's resolution; `broadcast`: inputs of size 1
    along this axis (an SE gate), whose one window every unit reads.

    Equal jumps: [min lo, max hi] of the first unit, the common jump, exact when every input is
    exact and uniform, the jump whole and the units even (after upsampling, offset windows cover
    a number of pixels that depends on the unit). A broadcast whole-input window
    makes the union whole when it holds every unit's window of the other inputs (`units`: the
    output's units along the axis; 0: unknown, taken as held; of their windows only the network
    input's pixels count, `extent` of them, 0: unknown, all count): a gate pooled from a cropped map
    reads less than the units do, and then each unit reads the gate's window and its own, a
    different set per unit: not whole, the hull of both marked inexact (#27). Whole windows that
    do not overlap are not one window: their hull is marked inexact. Anything else (a broadcast
    window that is not whole, unequal jumps) is the union of the first units' windows, marked
    inexact."""
    if len(full) == 1 and not broadcast:  # one input (every point-wise layer): its own window
        r = full[0]
        exact = r.exact and (r.whole or (r.uniform and not r.irregular and type(r._size) is int))
        return r if exact == r.exact else replace(r, exact=exact)
    if not broadcast:  # the usual merge (a residual add): whole numbers, odd sizes, one jump, even units
        got = _union_whole(full)
        if got is not None:
            return got
    everything = full + broadcast
    whole = [r for r in everything if r.whole]
    base = max(full, key=lambda r: r._size)
    if whole:
        return _union_with_whole(full, everything, whole, base, units, extent)
    ends = [(r._lo(), r._hi()) for r in everything]
    lo, hi = min([e[0] for e in ends]), max([e[1] for e in ends])
    # after upsampling (uneven units, or a sub-pixel jump) offset windows cover a number of
    # pixels that depends on the unit: exact only when they coincide
    j = base._jump
    same = not broadcast and all([r._jump == j for r in full]) and (
        (type(j) is int and all([r.even for r in full]))
        or all([e == ends[full.index(base)] for e in ends]))
    span = _q(hi - lo)
    exact = same and all(r.exact and r.uniform and not r.irregular for r in full) and type(span) is int
    return RF(span + 1, base._jump, _half(lo + hi), base._grain, all(r.uniform for r in full),
              any(r.irregular for r in full), exact, all(r.even for r in everything))


def _union_with_whole(full: list[RF], everything: list[RF], whole: list[RF], base: RF, units: int,
                      extent: int) -> RF:
    """`union` where some input is whole: the hull of the whole windows, whole and exact when the
    whole windows overlap (their union is one interval) and hold every unit's window of the
    other inputs; else the hull of everything, not whole, marked inexact."""
    spans = sorted((r._lo(), r._hi()) for r in whole)
    lo, hi = spans[0][0], max(e[1] for e in spans)
    joined, reach = True, spans[0][1]
    for a, b in spans[1:]:
        joined = joined and a <= reach + 1
        reach = max(reach, b)
    held = True
    for r in everything:
        if r.whole:
            continue
        wide = r.spread(units) if units > 1 else r  # every unit's window of this input
        a, b = wide._lo(), wide._hi()
        if extent:  # padding positions are no pixels: only the input's own count
            a, b = max(a, 0), min(b, extent - 1)
        held = held and (a > b or (lo <= a and b <= hi))
    exact = joined and held and all(r.exact for r in everything)
    if held:
        return RF(_q(hi - lo + 1), base._jump, _half(lo + hi), base._grain, all(r.uniform for r in full),
                  base.irregular, exact, all(r.even for r in everything), whole=True)
    for r in everything:  # the first unit's window too (an upper bound of any unit's)
        lo, hi = min(lo, r._lo()), max(hi, r._hi())
    return RF(_q(hi - lo + 1), base._jump, _half(lo + hi), base._grain, all(r.uniform for r in full),
              any(r.irregular for r in full), False, all(r.even for r in everything))


def _union_whole(full: list[RF]) -> RF | None:
    """`union(full, [])` in one pass with plain integers when every input is even, not whole,
    has an int jump (the same for all) and an int start and odd size (so its window's ends are
    ints: start ∓ (size − 1)/2); None otherwise (the general path decides). The same result:
    the ends' hull, the first largest input's jump and grain, exact when all are exact and
    uniform and regular (#30: a merge of several inputs was the costliest field rule)."""
    base = full[0]
    j = base._jump
    if type(j) is not int:
        return None
    lo = hi = None
    for r in full:
        size, start = r._size, r._start
        if r.whole or not r.even or type(r._jump) is not int or r._jump != j or type(size) is not int \
                or type(start) is not int or not size & 1:
            return None
        h = (size - 1) >> 1
        if lo is None or start - h < lo:
            lo = start - h
        if hi is None or start + h > hi:
            hi = start + h
        if size > base._size:
            base = r
    assert lo is not None and hi is not None
    return RF(hi - lo + 1, base._jump, _half(lo + hi), base._grain, all([r.uniform for r in full]),
              any([r.irregular for r in full]), all([r.exact and r.uniform and not r.irregular for r in full]), True)
