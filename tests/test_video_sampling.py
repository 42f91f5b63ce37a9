"""Keyframe, chunk and pair sampling against spec §1.5.2, §1.5.4 and §1.7."""

import pytest

from josh_jax.errors import InputError
from josh_jax.video import sampling

K, M, WINDOW, STRIDE = 5, 21, 10, 100  # JOSH's opt_interval, max_frames, window-10, chunk stride


def test_101_frame_window_is_every_fifth_frame():
    assert sampling.keyframe_indices(101, 0, K, M) == list(range(0, 101, 5))


def test_150_remaining_frames_force_the_last_frame_in():
    idx = sampling.keyframe_indices(150, 0, K, M)
    assert idx == list(range(0, 146, 5)) + [149]
    assert len(idx) == 31


@pytest.mark.parametrize("n,start", [(1000, 0), (1000, 300), (250, 0), (200, 0), (7, 0), (1, 0)])
def test_window_starts_at_zero_and_ends_at_num_frames_minus_one(n, start):
    idx = sampling.keyframe_indices(n, start, K, M)
    num = sampling.window_frame_count(n - start, K, M)
    assert idx[0] == 0 and idx[-1] == num - 1
    assert all(0 < b - a <= K for a, b in zip(idx, idx[1:], strict=False))
    # below 201 remaining frames the whole remainder is taken (up to 41 images), else 101 frames
    assert num == (n - start if n - start < 201 else 101)
    assert len(idx) <= 41


def test_bad_start_is_an_input_error():
    with pytest.raises(InputError):
        sampling.keyframe_indices(10, 10, K, M)


@pytest.mark.parametrize("n,unordered", [(21, 155), (41, 355), (5, 10)])
def test_window_pair_counts(n, unordered):
    pairs = sampling.window_pairs(n, WINDOW, symmetrize=False)
    assert len(pairs) == unordered == len(set(pairs))
    assert all(1 <= j - i <= WINDOW and j < n for i, j in pairs)


def test_symmetrized_pairs_append_both_orientations():
    fwd = sampling.window_pairs(21, WINDOW, symmetrize=False)
    both = sampling.window_pairs(21, WINDOW, symmetrize=True)
    assert both[: len(fwd)] == fwd and both[len(fwd):] == [(j, i) for i, j in fwd]


@pytest.mark.parametrize("n", [101, 150, 201, 301, 450, 999])
def test_josh_chunks_share_one_frame_and_cover_the_video(n):
    chunks = sampling.chunk_frames(n, STRIDE, K, M)
    assert chunks[0][0] == 0 and chunks[-1][-1] == n - 1
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a[-1] == b[0]  # the shared frame 100 k
        assert len(a) == 21 and a[-1] - a[0] == 100
    assert chunks[-1][-1] - chunks[-1][0] < 201  # the last chunk takes the remainder (<= 200)


@pytest.mark.parametrize("n,length,overlap", [(300, 120, 20), (901, 200, 40), (50, 120, 20)])
def test_overlapping_chunks_cover_with_the_overlap(n, length, overlap):
    ranges = sampling.overlapping_chunks(n, length, overlap)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (a0, b0), (a1, _b1) in zip(ranges, ranges[1:], strict=False):
        assert b0 - a1 >= overlap and a1 > a0
    assert all(b - a == min(length, n) for a, b in ranges)
