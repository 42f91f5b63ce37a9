"""The streaming frame reader: order, bounded memory, clear errors."""

import gc
import os
import weakref

import imageio.v3 as iio
import numpy as np
import pytest

from josh_jax.errors import InputError
from josh_jax.io import frames


def _frame(i, h=32, w=48):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = i * 10
    img[:, i % w, 1] = 255
    return img


@pytest.fixture()
def folder(tmp_path):
    for i in range(12):
        iio.imwrite(tmp_path / f"f{i:03d}.png", _frame(i))
    return str(tmp_path)


@pytest.fixture()
def video(tmp_path):
    path = str(tmp_path / "clip.mp4")
    iio.imwrite(path, np.stack([_frame(i) for i in range(15)]), fps=10, plugin="FFMPEG")
    return path


def _max_alive(iterator):
    """Largest number of yielded frames still alive at any step while the consumer keeps none.

    The objects that exist before the loop are frozen out of the collector (gc.freeze): each
    full collection then walks only what the iteration created, so it costs microseconds instead
    of a walk over every object of the test session, and still frees any cycle holding a frame."""
    refs, worst = [], 0
    gc.freeze()
    try:
        for frame in iterator:
            refs.append(weakref.ref(frame))
            del frame
            gc.collect()
            worst = max(worst, sum(r() is not None for r in refs))
    finally:
        gc.unfreeze()
    return len(refs), worst


def test_folder_frames_in_order(folder):
    got = list(frames.iter_frames(folder))
    assert len(got) == 12
    for i, f in enumerate(got):
        np.testing.assert_array_equal(f, _frame(i))


def test_folder_reader_holds_a_bounded_number_of_frames(folder):
    count, alive = _max_alive(frames.iter_frames(folder))
    assert count == 12 and alive <= 1


def test_video_reader_streams_and_is_bounded(video):
    count, alive = _max_alive(frames.iter_frames(video))
    assert count == 15 and alive <= 1
    first = next(frames.iter_frames(video))
    assert first.shape == (32, 48, 3) and first.dtype == np.uint8
    assert frames.frame_rate(video) == pytest.approx(10.0)


def test_stride_and_max_frames(folder):
    got = list(frames.iter_frames(folder, stride=3, max_frames=3))
    assert len(got) == 3
    np.testing.assert_array_equal(got[1], _frame(3))


def test_missing_empty_and_corrupt_sources_raise_one_line(tmp_path):
    with pytest.raises(InputError, match="expected an existing video"):
        list(frames.iter_frames(str(tmp_path / "nope.mp4")))
    empty = tmp_path / "empty"
    os.mkdir(empty)
    with pytest.raises(InputError, match="folder with images"):
        list(frames.iter_frames(str(empty)))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError) as info:
        list(frames.iter_frames(str(bad)))
    assert "\n" not in str(info.value)
