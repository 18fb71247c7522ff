"""Shared compression pieces: sparse and quantized codecs, Elias-gamma, selection, segments."""
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.wire.compressors import keep_count, sampled_mask, stochastic_round, topk_mask
from sim.wire.elias import gamma_end, gamma_length, gamma_read, gamma_write, next_one, walk
from sim.wire.memory import compensate, feedback
from sim.wire.quant import QuantCodec
from sim.wire.sparse import INDEX_BITS, SparseCodec
from sim.wire.tensors import Segments

FAST = settings(max_examples=25, deadline=None)


# --- sparse codec -------------------------------------------------------------------------------

def test_sparse_bytes_by_hand():
    x = np.array([[0, 0, 0, 1.5, 0, 0, 0, 0, 0, -2.0]], dtype=np.float32)
    mask = x != 0
    p32 = SparseCodec(10, "int32").encode(x, mask)
    assert p32.tobytes() == struct.pack("<ff", 1.5, -2.0) + struct.pack(">II", 3, 9)
    p64 = SparseCodec(10, "int64").encode(x, mask)
    assert p64.tobytes() == struct.pack("<ff", 1.5, -2.0) + struct.pack(">QQ", 3, 9)
    # ceil(log2 10) = 4 bits per index: 0011 1001 -> one byte 0x39
    ideal = SparseCodec(10, "log2d").encode(x, mask)
    assert ideal.tobytes() == struct.pack("<ff", 1.5, -2.0) + bytes([0x39])


@FAST
@given(st.integers(1, 4), st.integers(1, 300), st.sampled_from(INDEX_BITS), st.integers(0, 2**32))
def test_sparse_round_trip_and_size(n, d, index_bits, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    mask = rng.random((n, d)) < rng.random()
    codec = SparseCodec(d, index_bits)
    payloads = codec.encode(x, mask)
    width = {"int32": 32, "int64": 64, "log2d": max(1, math.ceil(math.log2(d)))}[index_bits]
    sizes = [len(p) for p in payloads]
    assert sizes == [4 * k + math.ceil(k * width / 8) for k in mask.sum(axis=1)]
    assert np.array_equal(codec.decode(payloads, n), np.where(mask, x, 0))


def test_sparse_errors_name_the_argument():
    with pytest.raises(ValueError, match="index_bits='int16'"):
        SparseCodec(10, "int16")
    with pytest.raises(ValueError, match="d=0"):
        SparseCodec(0)
    with pytest.raises(ValueError, match="5 bytes"):
        SparseCodec(10).unpack([np.zeros(5, np.uint8)])
    bad = np.frombuffer(struct.pack("<f", 1.0) + struct.pack(">I", 12), np.uint8)
    with pytest.raises(ValueError, match="index 12"):
        SparseCodec(10).unpack([bad])


# --- Elias gamma --------------------------------------------------------------------------------

def test_gamma_codes_by_hand():
    values = np.array([1, 2, 5, 8])
    assert gamma_length(values).tolist() == [1, 3, 5, 7]
    bits = np.zeros(16, np.uint8)
    gamma_write(bits, np.array([0, 1, 4, 9]), values)
    assert "".join(map(str, bits)) == "1" + "010" + "00101" + "0001000"
    with pytest.raises(ValueError, match="value 0"):
        gamma_length(np.array([3, 0]))


@FAST
@given(st.lists(st.integers(1, 2**40), min_size=1, max_size=60))
def test_gamma_stream_round_trip(values):
    values = np.array(values, dtype=np.uint64)
    lengths = gamma_length(values)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    bits = np.zeros(int(lengths.sum()) + 3, np.uint8)
    gamma_write(bits, starts, values)
    ones = next_one(bits)
    got, end = gamma_read(bits, ones, starts)
    assert got.tolist() == values.tolist()
    assert end.tolist() == (starts + lengths).tolist()
    assert gamma_end(ones, starts).tolist() == end.tolist()
    # walking the codes from the first one finds every start
    jump = gamma_end(ones, np.arange(bits.size + 1))
    assert walk(jump, np.array([0]), values.size)[0].tolist() == starts.tolist()


# --- quantized codec ----------------------------------------------------------------------------

@FAST
@given(st.integers(1, 3), st.integers(1, 200), st.integers(1, 40), st.integers(1, 64),
       st.sampled_from(["elias", "fixed"]), st.integers(0, 2**32))
def test_quant_round_trip(n, d, levels, bucket, coding, seed):
    rng = np.random.default_rng(seed)
    codec = QuantCodec(d, levels, bucket, coding)
    buckets = math.ceil(d / bucket)
    norms = rng.random((n, buckets)).astype(np.float32)
    q = rng.integers(-levels, levels + 1, (n, d)) * (rng.random((n, d)) < 0.5)
    payloads = codec.encode(norms, q)
    got_norms, got_q = codec.decode(payloads)
    assert np.array_equal(got_norms, norms)
    assert np.array_equal(got_q, q)
    if coding == "fixed":  # norms, a sign plane and ceil(log2(s+1)) level planes
        planes = 1 + math.ceil(math.log2(levels + 1))
        assert payloads.shape == (n, 4 * buckets + planes * math.ceil(d / 8))
    else:  # norms, a count, and per non-zero: gamma(gap) + gamma(level) + 1 sign bit
        for row, p in zip(q, payloads):
            cols = np.flatnonzero(row)
            gaps = np.diff(np.concatenate([[-1], cols]))
            bits = sum(2 * math.floor(math.log2(v)) + 1 for v in gaps)
            bits += sum(2 * math.floor(math.log2(abs(v))) + 2 for v in row[cols])
            assert len(p) == 4 * buckets + 4 + math.ceil(bits / 8)


def test_quant_codec_errors():
    with pytest.raises(ValueError, match="coding='huffman'"):
        QuantCodec(10, 4, 4, "huffman")
    with pytest.raises(ValueError, match="levels=0"):
        QuantCodec(10, 0, 4)


# --- selection, rounding, memory, segments ---------------------------------------------------------

def test_topk_mask_keeps_the_largest_magnitudes():
    x = np.array([[0.1, -5.0, 3.0, 0.2], [1.0, 2.0, -3.0, 4.0]])
    assert topk_mask(x, 2).tolist() == [[False, True, True, False], [False, False, True, True]]
    assert topk_mask(x, 4).all()


def test_keep_count_and_density_errors():
    assert keep_count(0.01, 4096) == 40
    assert keep_count(0.01, 4096, round_up=True) == 41  # DGC's reference rounds up
    assert keep_count(0.001, 33) == 1
    assert keep_count(0.001, 1001, round_up=True) == 2
    assert keep_count(1 - 0.99, 100, round_up=True) == 1  # not 2: 1 - 0.99 > 0.01 in floats
    with pytest.raises(ValueError, match="density=0"):
        keep_count(0, 10)


def test_sampled_threshold_keeps_about_k():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 400_000))
    k = 400
    counts = sampled_mask(x, 0.001, 0.01, rng).sum(axis=1)
    # a 4,000-entry sample's 4th largest: the count settles between 0.8k and k (DGC's bounds)
    assert np.all((counts >= 0.8 * k) & (counts <= k))
    # the sample would be the whole row: the selection is exact top-k
    small = rng.standard_normal((2, 500))
    assert np.array_equal(sampled_mask(small, 0.02, 1.0, rng), topk_mask(small, 10))
    assert np.array_equal(sampled_mask(small, 0.004, 0.01, rng), topk_mask(small, 2))  # 2/0.004


def test_sampled_selection_of_mostly_zeros_is_not_dense():
    # 20 non-zeros among 20,000: the sampled threshold is 0, which selects every entry; the
    # row falls back to exact top-k (the 20 non-zeros and 180 zeros) instead of sending 20,000
    x = np.zeros((2, 20_000))
    x[:, ::1000] = np.arange(1, 21)
    mask = sampled_mask(x, 0.01, 0.01, np.random.default_rng(1))
    assert mask.sum(axis=1).tolist() == [200, 200]
    assert np.all(mask[x != 0])


@FAST
@given(st.integers(1, 6), st.integers(2, 3000), st.floats(0.0, 1.0), st.floats(1e-4, 1.0),
       st.floats(1e-3, 1.0), st.integers(0, 2**32 - 1))
def test_sampled_selection_never_exceeds_its_target(n, d, zeros, density, sample_ratio, seed):
    # whatever the input (exact zeros, ties, a few large entries), a row keeps 1 to k entries,
    # within the bound of twice the target by a wide margin
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * (rng.random((n, d)) >= zeros)
    x[:, : d // 7] = np.round(x[:, : d // 7])  # ties
    k = keep_count(density, d, round_up=True)
    counts = sampled_mask(x, density, sample_ratio, rng).sum(axis=1)
    assert np.all((counts >= 1) & (counts <= k))


def test_stochastic_round_is_unbiased_and_neighbouring():
    rng = np.random.default_rng(1)
    u = np.array([0.0, 0.25, 2.5, 3.9, 7.0])
    draws = np.stack([stochastic_round(u, rng) for _ in range(4000)])
    assert np.all((draws == np.floor(u)) | (draws == np.floor(u) + 1))
    # binomial standard error of a fraction p over 4000 draws is at most 0.008
    assert np.abs(draws.mean(axis=0) - u).max() < 0.04


def test_error_feedback_memory_is_exact_for_what_is_dropped():
    memory = np.array([0.5, -1.0, 0.0], np.float32)
    x = np.array([1.0, 2.0, -3.0], np.float32)
    c = compensate(memory, x)
    assert c.tolist() == [1.5, 1.0, -3.0]
    sent = np.where([True, False, True], c, 0)
    assert (feedback(c, sent) + sent).tolist() == c.tolist()


def test_segments_by_hand():
    seg = Segments.of(7, [("w", (2, 2)), ("b", (3,))])
    x = np.array([[1.0, -2, 3, 4, 5, -6, 0]])
    assert seg.sum(x).tolist() == [[6.0, -1.0]]
    assert seg.max(x).tolist() == [[4.0, 5.0]]
    assert seg.expand(np.array([[1.0, 2.0]])).tolist() == [[1, 1, 1, 1, 2, 2, 2]]
    assert Segments.of(7).sizes.tolist() == [7]
    with pytest.raises(ValueError, match="cover the d=8"):
        Segments.of(8, [("w", (2, 2)), ("b", (3,))])
