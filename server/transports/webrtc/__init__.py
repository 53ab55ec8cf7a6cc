"""WebRTC transport (aiortc): signaling, media tracks, and ``WebRTCCall`` around the call core."""
