"""The fast kernels against their definitions: the D-Lion worker side (numpy tiles and the
compiled numba kernel) against whole-array Lion arithmetic, bit-sliced counts against summed
bits, and the vote and Avg replies against the codecs' own encoding of the vote sum."""
import numpy as np
import pytest

import sim.kernels
from sim.methods import base, lion
from sim.wire import bitslice
from sim.wire.codecs import SignCodec, SumCodec, TernaryCodec, TernarySumCodec

NO_NUMBA = "numba is not installed (the optional `fast` extra) or DLION_SIM_NUMBA=0"


@pytest.fixture(params=["numpy", "numba"])
def kernels(request, monkeypatch):
    """Run the test once on the numpy reference and once with the compiled kernels."""
    if request.param == "numpy":
        monkeypatch.setattr(sim.kernels, "_kernels", None)
    elif sim.kernels.compiled() is None:
        pytest.skip(NO_NUMBA)
    return request.param


def _lion_reference(m, g, b1, b2):
    """Whole-array Lion worker arithmetic, as the design states it: (c, new m)."""
    c = m * m.dtype.type(b1) + g * m.dtype.type(1 - b1)
    return c, m * m.dtype.type(b2) + g * m.dtype.type(1 - b2)


def _inputs(n, d, dtype, seed):
    """Momenta and gradients with exact zeros of c: m = g = 0, and m, g that cancel."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, d)).astype(dtype)
    g = rng.standard_normal((n, d)).astype(dtype)
    zero = rng.random((n, d)) < 0.05
    m[zero], g[zero] = 0, 0
    # c = 0.5 * 0.5 + 0.5 * (-0.5) exactly, for b1 = 0.5
    cancel = rng.random((n, d)) < 0.05
    m[cancel], g[cancel] = 0.5, -0.5
    return m, g


@pytest.mark.parametrize("n,d", [(1, 1), (3, 13), (4, 64), (2, 1000), (5, 3 * 2**10 + 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_worker_kernel_is_lion_arithmetic(kernels, monkeypatch, n, d, dtype):
    # small tiles: several rows per tile, and rows cut in several tiles
    monkeypatch.setattr(lion, "_BLOCK", 2**10)
    for b1 in (0.5, 0.9):
        m, g = _inputs(n, d, dtype, seed=d)
        c, want_m = _lion_reference(m, g, b1, 0.99)
        plus, zero = lion._dlion_worker(m, g, b1, 0.99)
        assert np.array_equal(m, want_m)  # bit for bit: same operations, same order
        assert np.array_equal(plus, np.packbits(c > 0, axis=-1))
        if (c == 0).any():
            assert np.array_equal(zero, np.packbits(c == 0, axis=-1))
        else:
            assert zero is None


def test_compiled_worker_kernel_matches_numpy_bit_for_bit():
    k = sim.kernels.compiled()
    if k is None:
        pytest.skip(NO_NUMBA)
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        # wide-ranging magnitudes: a fused multiply-add or a reordering would show in the bits
        m0 = (rng.standard_normal((6, 4099)) * 10.0 ** rng.integers(-6, 6, (6, 4099)))
        g0 = (rng.standard_normal((6, 4099)) * 10.0 ** rng.integers(-6, 6, (6, 4099)))
        m0, g0 = m0.astype(dtype), g0.astype(dtype)
        m0[:, :50] = 0
        g0[:, :50] = 0
        for b1, b2 in ((0.9, 0.99), (0.95, 0.98), (0.5, 0.5)):
            m_np, m_nb = m0.copy(), m0.copy()
            ref = lion._dlion_worker_numpy(m_np, g0, b1, b2)
            t = m0.dtype.type
            plus, zero = np.empty_like(ref[0]), np.zeros_like(ref[0])
            found = k.dlion_worker(m_nb, g0, t(b1), t(1 - b1), t(b2), t(1 - b2), plus, zero)
            assert np.array_equal(m_nb, m_np)
            assert np.array_equal(plus, ref[0])
            assert found > 0 and np.array_equal(zero, ref[1])


@pytest.mark.parametrize("rule", ["random", "plus", "minus", "zero"])
def test_worker_messages_resolve_zeros_by_the_rule(kernels, rule):
    n, d = 3, 203
    m, g = _inputs(n, d, np.float32, seed=3)
    c, _ = _lion_reference(m, g, 0.5, 0.9)
    signs = np.where(c > 0, 1, np.where(c < 0, -1, 0)).astype(np.int8)
    zeros = signs == 0
    assert zeros.sum() > 10
    if rule == "random":  # one draw per zero, in row-major order, from the run's generator
        flips = np.random.default_rng(5).random(zeros.sum()) < 0.5
        signs[zeros] = np.where(flips, 1, -1)
        want = SignCodec().encode(signs)
    elif rule == "zero":
        want = TernaryCodec().encode(signs)
    else:
        signs[zeros] = 1 if rule == "plus" else -1
        want = SignCodec().encode(signs)
    got = lion.dlion_signs(m, g, 0.5, 0.9, rule, np.random.default_rng(5))
    assert np.array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 31, 32, 33, 255, 256, 300])
def test_bit_sliced_counts_are_the_summed_bits(kernels, monkeypatch, n):
    monkeypatch.setattr(bitslice, "_WORDS", 4)  # several column blocks of 4 words (256 bits)
    rng = np.random.default_rng(n)
    for d in (1, 8, 9, 63, 64, 65, 3000, 8 * 2**10 + 3):
        bits = rng.random((n, d)) < rng.random()
        rows = np.packbits(bits, axis=-1)
        rows[:, -1] |= ~np.packbits(np.ones(d, bool))[-1]  # a corrupt tail is not counted
        planes = bitslice.count_planes(rows, d)
        want = bits.sum(axis=0)
        assert planes.shape == (n.bit_length(), (d + 7) // 8)
        assert np.array_equal(bitslice.counts(planes, d), want)
        for k in (0, n // 2, n, n + 1):
            greater, equal = bitslice.compare(planes, k, d)
            assert np.array_equal(greater, np.packbits(want > k))
            assert np.array_equal(equal, np.packbits(want == k))


def test_marked_bits_are_filled_in_index_order(kernels, monkeypatch):
    monkeypatch.setattr(bitslice, "_WORDS", 1)  # 64 bits at a time: one row of d = 11 per chunk
    packed = np.array([[0b00000001, 0], [0, 0]], dtype=np.uint8)  # two rows of d = 11 bits
    marked = np.array([[0b10000000, 0b00100000], [0b11000000, 0]], dtype=np.uint8)
    assert bitslice.popcount(marked) == 4
    bitslice.fill(packed, marked, 11, np.array([True, False, True, True]))
    assert packed.tolist() == [[0b10000001, 0], [0b11000000, 0]]


@pytest.mark.parametrize("d", [5, 11, 64, 203])
def test_fill_sets_each_marked_bit_to_its_own_value(kernels, monkeypatch, d):
    # many marked bits per byte, each with its own value: the value taken for the j-th marked
    # bit, in index order (bit 0 of a row is the most significant bit of its first byte), is
    # values[j], whatever byte it sits in
    monkeypatch.setattr(bitslice, "_WORDS", 1)
    rng = np.random.default_rng(d)
    old = rng.random((3, d)) < 0.3
    marked = (rng.random((3, d)) < 0.6) & ~old
    values = rng.random(int(marked.sum())) < 0.5
    packed = np.packbits(old, axis=-1)
    bitslice.fill(packed, np.packbits(marked, axis=-1), d, values)
    want = old.copy()
    want[marked] = values  # boolean indexing runs in row-major (index) order
    assert np.array_equal(packed, np.packbits(want, axis=-1))


def _vote_sum(payloads, d, zero_sign):
    """The vote sum by decoding every message (the definition)."""
    codec = TernaryCodec() if zero_sign == "zero" else SignCodec()
    return codec.decode(payloads, d).sum(axis=0).astype(np.int64)


@pytest.mark.parametrize("zero_sign", ["random", "zero"])
@pytest.mark.parametrize("n", [1, 2, 5, 6, 32])
def test_vote_and_avg_replies_are_the_codecs_encoding_of_the_sum(kernels, zero_sign, n):
    rng = np.random.default_rng(n)
    d = 1001
    values = [-1, 0, 1] if zero_sign == "zero" else [-1, 1]
    codec = TernaryCodec() if zero_sign == "zero" else SignCodec()
    payloads = codec.encode(rng.choice(values, (n, d)).astype(np.int8))
    total = _vote_sum(payloads, d, zero_sign)
    sum_codec = TernarySumCodec(n) if zero_sign == "zero" else SumCodec(n)
    hp = {"zero_sign": zero_sign}
    assert np.array_equal(base.sum_reply(payloads, d, hp), sum_codec.encode(total))
    vote = np.sign(total).astype(np.int8)
    ties = vote == 0
    assert ties.any() == (n % 2 == 0 or zero_sign == "zero")
    for tie in ("zero", "plus", "minus", "random"):
        signs = vote.copy()
        if tie == "random":
            signs[ties] = np.where(np.random.default_rng(1).random(ties.sum()) < 0.5, 1, -1)
        elif tie != "zero":
            signs[ties] = 1 if tie == "plus" else -1
        want = (TernaryCodec() if tie == "zero" else SignCodec()).encode(signs)
        got = base.majority_reply(payloads, d, {**hp, "tie": tie}, np.random.default_rng(1))
        assert np.array_equal(got, want), tie


def test_a_corrupt_ternary_message_is_an_error():
    payload = TernaryCodec().encode(np.array([[1, 0, -1]]))
    payload[0, 0] |= payload[0, 1]  # bit 0 and bit 1 set: level 3
    with pytest.raises(ValueError, match="level 3"):
        base.majority_reply(payload, 3, {"zero_sign": "zero", "tie": "zero"}, None)
