"""Sliding time windows of request outcomes: counts, failures and a time-to-first-token histogram.

This module owns the *measurement* side of automatic rollback and nothing else: it turns a stream of
``record(ok, ttft_s)`` calls into :class:`WindowStats` over the last ``window_s`` seconds. The rules
that judge those stats live in :mod:`litellm_canary.detection.rules`. No I/O, no litellm, no Prometheus;
time comes from an injected monotonic clock, so tests drive it with a fake one.

Memory is fixed per window: a ring of ``buckets`` time buckets, each holding two counters and a sparse
TTFT histogram whose bins are log-spaced (at most :data:`TTFT_BINS` bins), so a window never grows
with traffic. The histograms merge by adding counts, and TTFT quantiles read from them are within 2 %
(relative) of the exact sample quantile between 1 ms and 10 min (DDSketch's scheme). Buckets that
slide out of the window are dropped lazily, on the next ``record`` or ``stats``. A small lock makes
``record`` safe from several threads.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Clock = Callable[[], float]

#: Relative accuracy of TTFT quantiles between :data:`TTFT_MIN_S` and :data:`TTFT_MAX_S`.
TTFT_RELATIVE_ACCURACY = 0.02
#: Samples at or below this are reported as this value (an absolute error of at most 1 ms).
TTFT_MIN_S = 0.001
#: Samples above this are counted as this value (within 2 %): a quantile there is a lower bound.
TTFT_MAX_S = 600.0

_GAMMA = (1 + TTFT_RELATIVE_ACCURACY) / (1 - TTFT_RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_MAX_BIN = math.ceil(math.log(TTFT_MAX_S / TTFT_MIN_S) / _LOG_GAMMA)
#: The number of histogram bins a window can hold at most (per bucket and in total).
TTFT_BINS = _MAX_BIN + 1


def _bin_of(ttft_s: float) -> int:
    # Bin 0 holds everything <= TTFT_MIN_S; bin i >= 1 holds (MIN * g^(i-1), MIN * g^i].
    if ttft_s > TTFT_MIN_S:
        if ttft_s >= TTFT_MAX_S:  # also +inf
            return _MAX_BIN
        return math.ceil(math.log(ttft_s / TTFT_MIN_S) / _LOG_GAMMA)
    if ttft_s >= 0:
        return 0
    raise ValueError(f"ttft_s must be a number >= 0, got {ttft_s!r}")  # also NaN


def _value_of(index: int) -> float:
    # The point of a bin whose relative distance to both of its edges is (g-1)/(g+1), the accuracy.
    if index == 0:
        return TTFT_MIN_S
    return TTFT_MIN_S * 2 * _GAMMA**index / (_GAMMA + 1)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What one window saw over its last ``window_s`` seconds.

    ``ttft_p99_s`` and :meth:`quantile` use the nearest-rank definition (the smallest sample that at
    least ``q`` of the samples are <= to) and are within :data:`TTFT_RELATIVE_ACCURACY` (2 %) of the
    exact sample quantile for samples between 1 ms and 10 min; below 1 ms they read 1 ms, above 10 min
    they read 10 min (within 2 %): a lower bound.
    """

    window_s: float
    requests: int
    failures: int
    ttft_samples: int
    ttft_p99_s: float | None
    # The TTFT histogram: bin indices in ascending order and their counts.
    _ttft_bins: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _ttft_counts: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def error_rate(self) -> float:
        """``failures / requests``; 0.0 when there were no requests."""
        return self.failures / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0 <= q <= 1) of the TTFT samples in seconds; ``None`` with no samples."""
        return _quantile(self._ttft_bins, self._ttft_counts, self.ttft_samples, q)


def _quantile(bins: tuple[int, ...], counts: tuple[int, ...], total: int, q: float) -> float | None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))  # nearest rank, counted from the smallest sample
    # Walk from the nearer end: a p99 then touches only the few highest bins.
    if rank > total // 2:
        needed, order = total - rank + 1, range(len(bins) - 1, -1, -1)
    else:
        needed, order = rank, range(len(bins))
    seen = 0
    for i in order:
        seen += counts[i]
        if seen >= needed:
            return _value_of(bins[i])
    raise AssertionError("histogram counts do not add up to the sample count")


class _Bucket:
    __slots__ = ("epoch", "failures", "requests", "ttft")

    def __init__(self) -> None:
        self.epoch: int | None = None  # None: empty
        self.requests = 0
        self.failures = 0
        self.ttft: Counter[int] = Counter()


class OutcomeWindow:
    """Request outcomes over a sliding window of ``window_s`` seconds, in ``buckets`` time buckets.

    A sample counts for between ``window_s - window_s / buckets`` and ``window_s`` seconds after it
    was recorded: a bucket leaves the window as a whole. Totals over the live buckets are kept up to
    date, so :meth:`stats` costs O(histogram bins), not O(buckets x bins).
    """

    def __init__(self, window_s: float, *, clock: Clock, buckets: int = 20) -> None:
        if not window_s > 0 or math.isinf(window_s):
            raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets!r}")
        self.window_s = float(window_s)
        self._width = self.window_s / buckets
        self._clock = clock
        self._lock = threading.Lock()
        self._ring = [_Bucket() for _ in range(buckets)]
        self._expired_upto: int | None = None  # the epoch of the last expiry pass
        self._requests = 0
        self._failures = 0
        self._ttft: Counter[int] = Counter()  # the sum of the live buckets' histograms
        self._ttft_bins: tuple[int, ...] | None = ()  # sorted keys of _ttft; None: to sort again
        self._ttft_samples = 0

    def record(self, ok: bool, ttft_s: float | None = None) -> None:
        """Count one request (a failure unless ``ok``) and, if given, its time to first token."""
        index = None if ttft_s is None else _bin_of(ttft_s)
        with self._lock:
            bucket = self._count(1, 0 if ok else 1)
            if index is not None:
                self._count_ttft(bucket, index)

    def record_batch(self, ok: int, failed: int, ttfts_s: Iterable[float] = ()) -> None:
        """Count ``ok + failed`` requests seen at the same instant, and the given TTFT samples."""
        if ok < 0 or failed < 0:
            raise ValueError(f"counts must be >= 0, got ok={ok!r} failed={failed!r}")
        indices = [_bin_of(ttft_s) for ttft_s in ttfts_s]  # all validated before anything is counted
        with self._lock:
            bucket = self._count(ok + failed, failed)
            for index in indices:
                self._count_ttft(bucket, index)

    def stats(self) -> WindowStats:
        """The outcomes of the last ``window_s`` seconds (as of the clock's now)."""
        with self._lock:
            self._expire(self._epoch())
            samples = self._ttft_samples
            if not samples:
                return WindowStats(self.window_s, self._requests, self._failures, 0, None)
            if self._ttft_bins is None:
                self._ttft_bins = tuple(sorted(self._ttft))
            bins = self._ttft_bins
            counts = tuple(map(self._ttft.__getitem__, bins))
            return WindowStats(
                window_s=self.window_s,
                requests=self._requests,
                failures=self._failures,
                ttft_samples=samples,
                ttft_p99_s=_quantile(bins, counts, samples, 0.99),
                _ttft_bins=bins,
                _ttft_counts=counts,
            )

    def _count(self, requests: int, failures: int) -> _Bucket:
        bucket = self._current()
        bucket.requests += requests
        bucket.failures += failures
        self._requests += requests
        self._failures += failures
        return bucket

    def _count_ttft(self, bucket: _Bucket, index: int) -> None:
        bucket.ttft[index] += 1
        if index not in self._ttft:
            self._ttft_bins = None
        self._ttft[index] += 1
        self._ttft_samples += 1

    def _epoch(self) -> int:
        return math.floor(self._clock() / self._width)

    def _current(self) -> _Bucket:
        # Called under the lock; reading the clock here keeps epochs in order across threads.
        epoch = self._epoch()
        bucket = self._ring[epoch % len(self._ring)]
        if bucket.epoch != epoch:
            self._expire(epoch)
            bucket.epoch = epoch
        return bucket

    def _expire(self, epoch: int) -> None:
        if epoch == self._expired_upto:
            return
        self._expired_upto = epoch
        oldest_live = epoch - len(self._ring) + 1
        for bucket in self._ring:
            if bucket.epoch is not None and bucket.epoch < oldest_live:
                self._requests -= bucket.requests
                self._failures -= bucket.failures
                if bucket.ttft:
                    self._ttft_samples -= bucket.ttft.total()
                    self._ttft.subtract(bucket.ttft)
                    for index in bucket.ttft:
                        if not self._ttft[index]:
                            del self._ttft[index]
                            self._ttft_bins = None
                bucket.epoch, bucket.requests, bucket.failures = None, 0, 0
                bucket.ttft.clear()
