"""The one audio data unit that flows between transports, the speech pipeline and playback.

Every transport (WebRTC, SIP/RTP, WebSocket media) converts to and from this type, so the speech
pipeline never knows where audio came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Mono PCM int16 audio.

    ``timestamp`` is seconds on the producer's clock (monotonic for live audio) of the first sample;
    it lets latency be measured end to end across stages.
    """

    pcm: np.ndarray  # shape (n,), dtype int16
    sample_rate: int
    timestamp: float = 0.0
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pcm.dtype != np.int16 or self.pcm.ndim != 1:
            raise ValueError(
                f"AudioFrame needs 1-D int16 PCM, got {self.pcm.dtype} with shape {self.pcm.shape}"
            )
        if self.sample_rate <= 0:
            raise ValueError(f"AudioFrame sample_rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    @property
    def samples(self) -> int:
        return len(self.pcm)

    def to_float32(self) -> np.ndarray:
        return self.pcm.astype(np.float32) / 32768.0

    @classmethod
    def from_float32(cls, samples: np.ndarray, sample_rate: int, timestamp: float = 0.0) -> AudioFrame:
        clipped = np.clip(samples, -1.0, 1.0)
        return cls((clipped * 32767.0).astype(np.int16), sample_rate, timestamp)
