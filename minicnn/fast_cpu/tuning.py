"""Every tuning constant of the fast CPU path, in one object that tests and benchmarks override for a block.

    from minicnn.fast_cpu.tuning import TUNING, tuned
    with tuned(min_elements_per_thread=1, chunk_bytes=1):    # split even the smallest work over every thread
        ...

The values are sizes that fit the caches of any recent x86 or ARM core (32 KB L1 data, >= 512 KB L2), not the
timings of one machine; benchmarks/RESULTS.md records what they were chosen from.
"""
from __future__ import annotations

import contextlib
import dataclasses

__all__ = ["Tuning", "TUNING", "tuned"]


@dataclasses.dataclass
class Tuning:
    # A parallel region hands each extra thread at least this many array elements of work: below that, waking a
    # thread costs more than the thread saves.
    min_elements_per_thread: int = 1 << 16
    # A convolution runs in batch chunks whose column matrix is about this many bytes, so that im2col writes it
    # and the GEMM reads it while it is still in the core's L2 cache. Each thread takes whole chunks.
    chunk_bytes: int = 1 << 20
    # The forward keeps its column matrices for the backward when all of them together are at most this many
    # bytes; above, the backward rebuilds them from the cached input (memory over a second im2col).
    keep_cols_bytes: int = 8 << 20
    # A convolution whose forward GEMM is below this many FLOPs runs in one thread: a hand-off costs more.
    parallel_conv_flops: float = 15e6
    # Stride-1 convolutions whose padded input image is at most this many bytes run as the direct C convolution
    # (kernels/cpu_conv_direct.c): one image, its dy and the weights stay in a core's L1 cache. 0 turns it off.
    direct_image_bytes: int = 32 << 10
    # ... and their backward only when dW's running sums (one 32-byte vector per filter, channel and tap) fit L2.
    direct_sums_bytes: int = 768 << 10
    # Convolutions the direct loop does not take run as im2col + GEMM by batch chunk in C; False leaves them to
    # the readable op (an A/B switch).
    im2col_chunks: bool = True


TUNING = Tuning()


@contextlib.contextmanager
def tuned(**changes):
    """Within this block the named fields of ``TUNING`` have the given values (restored on exit)."""
    unknown = set(changes) - {f.name for f in dataclasses.fields(Tuning)}
    if unknown:
        raise TypeError(f"tuned: unknown tuning constants {sorted(unknown)}")
    old = {name: getattr(TUNING, name) for name in changes}
    for name, value in changes.items():
        setattr(TUNING, name, value)
    try:
        yield TUNING
    finally:
        for name, value in old.items():
            setattr(TUNING, name, value)
