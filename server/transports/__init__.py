"""Transports: thin adapters that carry a ``server.calls.CallSession`` over a medium.

- ``webrtc/``: browser calls over aiortc (signaling, tracks, ``WebRTCCall``);
- ``ws_media``: telephony gateways streaming audio over a WebSocket;
- ``sip/``: the phone bridge (SIP + RTP).
Each converts its own media and signalling into the session's frames and control events and back.
"""
