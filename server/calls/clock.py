"""``StreamClock``: a caller's audio stream time mapped back to the monotonic clock."""

from __future__ import annotations

from collections import deque


class StreamClock:
    """Maps a listener's stream time (samples counted since the first frame) to the monotonic clock.

    Under CPU load aiortc's jitter buffer drops or delays frames, so stream time drifts behind wall time
    and "end of speech" would be dated too early; this keeps (stream time, arrival time) pairs of recent
    frames to translate event times back to when the audio actually arrived.
    """

    def __init__(self, keep: int = 1500) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=keep)

    def note(self, stream_t: float, wall_t: float) -> None:
        self._points.append((stream_t, wall_t))

    def to_wall(self, stream_t: float) -> float:
        for point_stream, point_wall in self._points:
            if point_stream >= stream_t:
                return point_wall - (point_stream - stream_t)
        if self._points:
            last_stream, last_wall = self._points[-1]
            return last_wall + (stream_t - last_stream)
        return stream_t
