"""Wire codecs: round trips, exact payload sizes, bit layout against hand values, errors."""

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sim.wire.codecs import (
    DenseCodec,
    LevelCodec,
    SignCodec,
    SumCodec,
    TernaryCodec,
    ceil_log2,
)

FAST = settings(max_examples=40, deadline=None)

# (n, d) with d not a multiple of 8 most of the time, d = 1 and n = 1 included.
shapes = st.tuples(st.integers(1, 5), st.integers(1, 70))


def one_or_many(draw, shape, elements, dtype):
    """A drawn array shaped (n, d), or its first row as a 1-D message."""
    a = draw(hnp.arrays(dtype, shape, elements=elements))
    return a[0] if draw(st.booleans()) else a


@st.composite
def signs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int8, np.int64]))
    return one_or_many(draw, draw(shapes), st.sampled_from([-1, 1]), dtype)


@st.composite
def level_arrays(draw):
    levels = draw(st.one_of(st.integers(2, 9), st.integers(2, 1 << 16)))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint32]))
    return levels, one_or_many(draw, draw(shapes), st.integers(0, levels - 1), dtype)


@st.composite
def sums(draw):
    n_workers = draw(st.integers(1, 40))
    k = one_or_many(draw, draw(shapes), st.integers(0, n_workers), np.int64)
    s = 2 * k - n_workers
    return n_workers, s.astype(draw(st.sampled_from([np.int64, np.int16, np.float32])))


@st.composite
def ternaries(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int8]))
    return one_or_many(draw, draw(shapes), st.sampled_from([-1, 0, 1]), dtype)


def bits_of(payload, d, b):
    """Independent unpacking: bit j of plane k is bit 7 - j%8 of byte k*ceil(d/8) + j//8."""
    nb = -(-d // 8)
    j = np.arange(d)
    p = np.atleast_2d(payload).astype(np.int64)
    planes = [(p[:, k * nb + j // 8] >> (7 - j % 8)) & 1 for k in range(b)]
    return np.stack(planes, axis=1)  # (n, b, d)


def check_shape(payload, x, nbytes):
    assert payload.dtype == np.uint8
    assert payload.shape == (x.shape[:-1] + (nbytes,))


# ---------------------------------------------------------------- round trips, sizes, layout


@FAST
@given(signs())
def test_sign_round_trip_size_and_layout(x):
    c = SignCodec()
    d = x.shape[-1]
    p = c.encode(x)
    check_shape(p, x, -(-d // 8))
    assert c.size_bits(d) == 8 * p.shape[-1] == 8 * math.ceil(d / 8)
    assert c.ideal_bits(d) == d
    # bit set <=> +1; tail bits of the last byte are zero
    np.testing.assert_array_equal(bits_of(p, d, 1)[:, 0], np.atleast_2d(x) > 0)
    assert np.unpackbits(p, axis=-1)[..., d:].sum() == 0
    y = c.decode(p, d)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    assert c.decode(p, d, dtype=np.float64).dtype == np.float64


@FAST
@given(level_arrays())
def test_level_round_trip_size_and_layout(case):
    levels, x = case
    c = LevelCodec(levels)
    d = x.shape[-1]
    b = math.ceil(math.log2(levels))
    assert c.bits == b and c.bits_per_value == float(b)
    p = c.encode(x)
    check_shape(p, x, b * -(-d // 8))
    assert c.size_bits(d) == 8 * p.shape[-1] == 8 * b * math.ceil(d / 8)
    # plane k holds bit k of every value
    want = (np.atleast_2d(x).astype(np.int64)[:, None, :] >> np.arange(b)[:, None]) & 1
    np.testing.assert_array_equal(bits_of(p, d, b), want)
    y = c.decode(p, d)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, x)


@FAST
@given(sums())
def test_sum_round_trip_and_size(case):
    n_workers, s = case
    c = SumCodec(n_workers)
    d = s.shape[-1]
    p = c.encode(s)
    b = math.ceil(math.log2(n_workers + 1))
    check_shape(p, s, b * -(-d // 8))
    assert c.size_bits(d) == 8 * p.shape[-1]
    # plane k holds bit k of the level (S + N) / 2
    level = (np.atleast_2d(s).astype(np.int64) + n_workers) // 2
    np.testing.assert_array_equal(bits_of(p, d, b), (level[:, None, :] >> np.arange(b)[:, None]) & 1)
    y = c.decode(p, d)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, s)


@FAST
@given(ternaries())
def test_ternary_round_trip_and_size(x):
    c = TernaryCodec()
    d = x.shape[-1]
    p = c.encode(x)
    check_shape(p, x, 2 * -(-d // 8))
    assert c.size_bits(d) == 8 * p.shape[-1] == 16 * math.ceil(d / 8)
    np.testing.assert_array_equal(bits_of(p, d, 2)[:, 0] + 2 * bits_of(p, d, 2)[:, 1], np.atleast_2d(x) + 1)
    y = c.decode(p, d)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    assert c.decode(p, d, dtype="float64").dtype == np.float64


@FAST
@given(shapes, st.booleans(), st.data())
def test_dense_float32_round_trip_matches_struct(shape, one, data):
    x = data.draw(hnp.arrays(np.uint32, shape)).view(np.float32)
    x = np.where(np.isnan(x), np.float32(1.5), x)  # NaN is left to the hand test
    x = x[0] if one else x
    c = DenseCodec("float32")
    p = c.encode(x)
    d = x.shape[-1]
    check_shape(p, x, 4 * d)
    assert c.size_bits(d) == 8 * p.shape[-1] == 32 * d == c.ideal_bits(d)
    assert np.atleast_2d(p)[-1].tobytes() == struct.pack(f"<{d}f", *np.atleast_2d(x)[-1].tolist())
    y = c.decode(p, d)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


@FAST
@given(shapes, st.sampled_from([np.float16, np.float32, np.float64]), st.data())
def test_dense_float16_exact_on_representable_values(shape, src, data):
    # Arbitrary bit patterns cover subnormals, infinities and -0.0. NaN is left to the hand test:
    # struct drops the NaN payload bits that numpy keeps.
    h = data.draw(hnp.arrays(np.uint16, shape)).view(np.float16)
    h = np.where(np.isnan(h), np.float16(0.25), h)
    x = h.astype(src)  # widening is exact, so every value is float16-representable
    c = DenseCodec("float16")
    p = c.encode(x)
    d = shape[1]
    assert c.size_bits(d) == 8 * p.shape[-1] == 16 * d
    assert p[-1].tobytes() == struct.pack(f"<{d}e", *h[-1].tolist())
    y = c.decode(p, d)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, h)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(h))  # -0.0 stays -0.0


def test_dense_special_values_survive():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 65504.0, 2.0**-24], dtype=np.float64)
    for dtype in ("float32", "float16"):
        c = DenseCodec(dtype)
        y = c.decode(c.encode(x), x.size)
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(x))


@FAST
@given(shapes, st.data())
def test_rows_encode_independently(shape, data):
    """Vectorised encoding of n messages equals encoding each message alone."""
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 0.0, 1.0])))
    sx = np.where(x == 0, 1.0, x)
    for c, v in ((TernaryCodec(), x), (SignCodec(), sx), (DenseCodec("float16"), x)):
        p = c.encode(v)
        np.testing.assert_array_equal(p, np.stack([c.encode(row) for row in v]))


def test_hand_packed_bytes():
    # + - - - - - - + | +  ->  10000001 10000000
    x = np.array([1, -1, -1, -1, -1, -1, -1, 1, 1], dtype=np.float32)
    np.testing.assert_array_equal(SignCodec().encode(x), [0b10000001, 0b10000000])
    # levels 0..4 at 3 bits: plane0 01010, plane1 00110, plane2 00001
    np.testing.assert_array_equal(LevelCodec(5).encode(np.arange(5)), [0b01010000, 0b00110000, 0b00001000])
    # S = -4, -2, 0, 2, 4 with N = 4 are the levels 0..4
    np.testing.assert_array_equal(SumCodec(4).encode(np.array([-4, -2, 0, 2, 4])), [80, 48, 8])
    # S = 3, -3, 1, -1 with N = 3 are the levels 3, 0, 2, 1 at 2 bits: plane0 1001, plane1 1010
    np.testing.assert_array_equal(SumCodec(3).encode(np.array([3, -3, 1, -1])), [0b10010000, 0b10100000])
    # -1, 0, +1 -> levels 0, 1, 2: plane0 010, plane1 001
    np.testing.assert_array_equal(TernaryCodec().encode(np.array([-1.0, 0.0, 1.0])), [0b01000000, 0b00100000])
    # 1.0 as little-endian float32 is 00 00 80 3f; as float16 00 3c
    np.testing.assert_array_equal(DenseCodec("float32").encode(np.ones(1)), [0, 0, 0x80, 0x3F])
    np.testing.assert_array_equal(DenseCodec("float16").encode(np.ones(1)), [0, 0x3C])


def test_large_round_trip():
    rng = np.random.default_rng(0)
    d = (1 << 16) + 3
    x = np.where(rng.random((2, d)) < 0.5, -1.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(SignCodec().decode(SignCodec().encode(x), d), x)
    lv = rng.integers(0, 1 << 16, size=(2, d))
    c = LevelCodec(1 << 16)
    np.testing.assert_array_equal(c.decode(c.encode(lv), d), lv)


# ---------------------------------------------------------------- bits per value, entropy


@pytest.mark.parametrize("n_workers, bits", [(1, 1), (4, 3), (8, 4), (16, 5), (32, 6)])
def test_sum_bits_per_value_hand_values(n_workers, bits):
    c = SumCodec(n_workers)
    assert c.bits_per_value == bits
    assert c.size_bits(8) == 8 * bits


def test_ceil_log2_definition():
    assert [ceil_log2(n) for n in (1, 2, 3, 4, 5, 8, 9, 1024, 1025)] == [0, 1, 2, 2, 3, 3, 4, 10, 11]
    for n in range(2, 5000):
        b = ceil_log2(n)
        assert 2 ** (b - 1) < n <= 2**b
    assert ceil_log2(2**100 + 1) == 101  # beyond float precision


@pytest.mark.parametrize("d", [1, 2, 5, 7, 8, 41, 53, 306, 665, 1054, 3001])
def test_ternary_ideal_bits_exact(d):
    # smallest k with 2**k >= 3**d, in exact integers (d includes convergent denominators of log2 3)
    assert TernaryCodec().ideal_bits(d) == (3**d - 1).bit_length()
    assert TernaryCodec().ideal_bits(d) < TernaryCodec().size_bits(d)


def test_ideal_bits_other_codecs():
    for d in (1, 9, 64):
        assert LevelCodec(8).ideal_bits(d) == 3 * d
        assert SignCodec().ideal_bits(d) == d
        assert SumCodec(5).ideal_bits(d) == (6**d - 1).bit_length()


def test_names_and_display_bits():
    assert SignCodec().bits_per_value == 1.0
    assert TernaryCodec().bits_per_value == 2.0
    assert DenseCodec("float32").bits_per_value == 32.0 and DenseCodec("float16").bits_per_value == 16.0
    names = {c.name for c in (SignCodec(), TernaryCodec(), LevelCodec(5), SumCodec(4), DenseCodec("float16"))}
    assert len(names) == 5


def test_dense_payload_does_not_alias_input():
    x = np.ones(4, dtype="<f4")
    p = DenseCodec("float32").encode(x)
    p[:] = 0
    assert (x == 1).all()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: SignCodec().encode(np.array([1.0, 0.0, -1.0])), r"value 0\.0 at index \(1,\).*-1 and \+1"),
        (lambda: SignCodec().encode(np.array([[1, -1], [1, 2]])), r"value 2 at index \(1, 1\)"),
        (lambda: SignCodec().encode(np.array([1.0, np.nan])), r"value nan"),
        (lambda: SignCodec().encode(np.array([True, False])), r"dtype bool"),
        (lambda: SignCodec().encode(np.ones((2, 2, 2))), r"shape \(2, 2, 2\)"),
        (lambda: SignCodec().encode(np.ones(0)), r"shape \(0,\)"),
        (lambda: SignCodec().decode(np.zeros(2, np.uint8), 8), r"payload .*shape \(2,\).*\(1,\)"),
        (lambda: SignCodec().decode(np.zeros(1, np.int8), 8), r"payload has dtype int8"),
        (lambda: SignCodec().decode(np.zeros(1, np.uint8), 0), r"d=0"),
        (lambda: SignCodec().decode(np.zeros(1, np.uint8), 8, dtype="int32"), r"dtype='int32'"),
        (lambda: LevelCodec(1), r"levels=1"),
        (lambda: LevelCodec(1 << 17), r"levels=131072"),
        (lambda: LevelCodec(2.5), r"levels=2\.5"),
        (lambda: LevelCodec(5).encode(np.array([0, 5])), r"value 5 .*\[0, 5\)"),
        (lambda: LevelCodec(5).encode(np.array([-1, 0])), r"value -1 "),
        (lambda: LevelCodec(5).encode(np.array([0.0, 1.0])), r"dtype float64.*integer"),
        (lambda: SumCodec(0), r"n_workers=0"),
        (lambda: SumCodec(4).encode(np.array([1, 2])), r"value 1 .*parity of 4"),
        (lambda: SumCodec(4).encode(np.array([6, 2])), r"value 6 .*\[-4, 4\]"),
        (lambda: SumCodec(3).encode(np.array([1.5, 1.0])), r"value 1\.5"),
        (lambda: TernaryCodec().encode(np.array([0, 2])), r"value 2 .*-1, 0 and \+1"),
        (lambda: TernaryCodec().encode(np.array([0.0, 0.5])), r"value 0\.5"),
        (lambda: TernaryCodec().decode(np.array([0x80, 0x80], np.uint8), 1), r"level 3"),
        (lambda: DenseCodec("float64"), r"dtype='float64'.*float32.*float16"),
        (lambda: DenseCodec("float32").decode(np.zeros(3, np.uint8), 1), r"shape \(3,\).*\(4,\)"),
        (lambda: ceil_log2(0), r"n=0"),
    ],
)
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_corrupt_level_payload_message():
    # one value, level bits 0b101 = 5 are outside [0, 5)
    with pytest.raises(ValueError, match=r"level 5.*\[0, 5\)"):
        LevelCodec(5).decode(np.array([0x80, 0x00, 0x80], np.uint8), 1)
