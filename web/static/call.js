// Call page: WebRTC call to the voice agent, live transcript over a WebSocket, and a recording of the
// agent's audio (window.__recordedAudio, base64 WAV) so automated tests can check what was heard.
//
// Who calls comes from a call token (README.md, Security): typed in, or given in the URL's fragment
// (/#token=...: fragments never reach the server or its logs). Without one the server makes the call
// anonymous and answers with a token for this call only. Tokens go in the Authorization header; the events
// WebSocket, which cannot carry headers, opens with the single-use ticket the offer's answer holds.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const state = { pc: null, ws: null, callId: null, recorder: null, agentItem: null, token: null };
window.__callEvents = [];

if (fragment.get("token")) {
  $("call-token").value = fragment.get("token");
  history.replaceState(null, "", location.pathname + location.search);  // out of the address bar
}

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

function showError(message) {
  $("error").textContent = message;
}

function setCallState(text) {
  $("call-state").textContent = text;
  window.__callState = text;
}

function addLine(role, text, extraClass) {
  const li = document.createElement("li");
  li.className = role + (extraClass ? ` ${extraClass}` : "");
  li.textContent = text;
  $("transcript").appendChild(li);
  return li;
}

// ---- recording the agent's voice ------------------------------------------------------------------
class RemoteAudioRecorder {
  constructor(stream) {
    this.ctx = new AudioContext();
    this.chunks = [];
    const source = this.ctx.createMediaStreamSource(stream);
    // ScriptProcessor is deprecated but needs no extra module file and works in headless Chromium.
    this.node = this.ctx.createScriptProcessor(4096, 1, 1);
    this.node.onaudioprocess = (e) => this.chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    const mute = this.ctx.createGain();
    mute.gain.value = 0;
    source.connect(this.node);
    this.node.connect(mute);
    mute.connect(this.ctx.destination);
  }

  wav() {
    const length = this.chunks.reduce((n, c) => n + c.length, 0);
    const rate = this.ctx.sampleRate;
    const buffer = new ArrayBuffer(44 + length * 2);
    const view = new DataView(buffer);
    const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
    text(0, "RIFF"); view.setUint32(4, 36 + length * 2, true); text(8, "WAVE"); text(12, "fmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, length * 2, true);
    let offset = 44;
    for (const chunk of this.chunks) {
      for (const x of chunk) {
        view.setInt16(offset, Math.max(-1, Math.min(1, x)) * 0x7fff, true);
        offset += 2;
      }
    }
    return buffer;
  }

  base64Wav() {
    const bytes = new Uint8Array(this.wav());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  close() {
    this.node.disconnect();
    this.ctx.close();
  }
}

window.__getRecordedAudio = () => {
  if (state.recorder) window.__recordedAudio = state.recorder.base64Wav();
  return window.__recordedAudio || null;
};

// ---- events from the server ----------------------------------------------------------------------
function onEvent(event) {
  window.__callEvents.push(event);
  switch (event.type) {
    case "partial_transcript":
      $("partial").textContent = event.text;
      break;
    case "final_transcript":
      $("partial").textContent = "";
      addLine("user", event.text);
      state.agentItem = null;
      break;
    case "agent_text":
      if (!state.agentItem) state.agentItem = addLine("agent", "");
      state.agentItem.textContent += (state.agentItem.textContent && event.source ? " " : "") + event.delta;
      if (event.source) state.agentItem = null;
      break;
    case "state":
      $("agent-state").textContent = event.state;
      if (event.state === "listening") state.agentItem = null;
      break;
    case "interrupted": {
      const items = $("transcript").querySelectorAll("li.agent");
      if (items.length) items[items.length - 1].classList.add("interrupted");
      break;
    }
    case "turn": {
      const l = event.latency || {};
      if (l.first_audio_out !== undefined) {
        $("latency").textContent = `${l.first_audio_out.toFixed(2)} s (stt ${fmt(l.stt_final)}, llm ${fmt(
          l.llm_first_token)}, tts ${fmt(l.tts_first_audio)})`;
      }
      break;
    }
    case "ended":
      hangUpLocally(`ended (${event.reason})`);
      break;
  }
}

function fmt(x) {
  return x === undefined ? "-" : `${x.toFixed(2)} s`;
}

function openEvents(callId, ticket) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/api/calls/${callId}/events?ticket=${encodeURIComponent(ticket)}`;
  const ws = new WebSocket(url);
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onerror = () => showError("live events connection failed");
  return ws;
}

// ---- call ----------------------------------------------------------------------------------------
function iceGatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);  // send what we have: host candidates are enough on a LAN
  });
}

async function reportCandidateType(pc) {
  const stats = await pc.getStats();
  stats.forEach((report) => {
    if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
      const local = stats.get(report.localCandidateId);
      if (local) window.__localCandidateType = local.candidateType;  // "host", "srflx" or "relay"
    }
  });
}

async function startCall() {
  showError("");
  $("call").disabled = true;
  setCallState("starting");
  state.token = $("call-token").value.trim() || null;
  try {
    const configResponse = await fetch("/api/calls/config", { headers: authHeaders() });
    const config = await configResponse.json();
    if (!configResponse.ok) throw new Error(config.error || `call configuration refused (${configResponse.status})`);
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    // ?relay=1 forces the call through the configured TURN server (how remote callers behind NAT connect).
    const pc = new RTCPeerConnection({
      iceServers: config.iceServers,
      iceTransportPolicy: params.get("relay") ? "relay" : "all",
    });
    state.pc = pc;
    mic.getTracks().forEach((t) => pc.addTrack(t, mic));
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      $("remote-audio").srcObject = stream;  // Chromium only feeds WebAudio from remote tracks that play
      state.recorder = new RemoteAudioRecorder(stream);
    };
    pc.onconnectionstatechange = () => {
      setCallState(pc.connectionState);
      if (pc.connectionState === "connected") reportCandidateType(pc);
      if (pc.connectionState === "failed") hangUpLocally("connection failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc, 3000);
    const response = await fetch("/api/calls/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
    });
    const answer = await response.json();
    if (response.status === 503 && answer.busy) {
      const wait = answer.retry_after_s || response.headers.get("Retry-After") || "a few";
      showError(`All lines are busy. Please try again in ${wait} seconds.`);
      hangUpLocally("busy");
      return;
    }
    if (!response.ok) throw new Error(answer.error || `offer rejected (${response.status})`);
    if (answer.call_token) state.token = answer.call_token;  // anonymous: this call's own token
    window.__callToken = state.token;
    state.callId = answer.call_id;
    window.__callId = answer.call_id;
    state.ws = openEvents(answer.call_id, answer.events_ticket);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    $("hangup").disabled = false;
  } catch (err) {
    showError(`call failed: ${err.message}`);
    hangUpLocally("failed");
  }
}

async function hangUp() {
  if (state.callId) {
    await fetch(`/api/calls/${state.callId}/hangup`, { method: "POST", headers: authHeaders() }).catch(() => {});
  }
  hangUpLocally("ended");
}

function hangUpLocally(label) {
  if (state.recorder) {
    window.__recordedAudio = state.recorder.base64Wav();
    state.recorder.close();
    state.recorder = null;
  }
  if (state.pc) {
    state.pc.getSenders().forEach((s) => s.track && s.track.stop());
    state.pc.close();
    state.pc = null;
  }
  if (state.ws) {
    state.ws.close();
    state.ws = null;
  }
  setCallState(label);
  $("call").disabled = false;
  $("hangup").disabled = true;
}

$("call").addEventListener("click", startCall);
$("hangup").addEventListener("click", hangUp);
window.addEventListener("pagehide", () => {
  // keepalive: the request outlives the page, and unlike sendBeacon it can carry the Authorization header
  if (state.callId && state.pc) {
    fetch(`/api/calls/${state.callId}/hangup`, { method: "POST", headers: authHeaders(), keepalive: true });
  }
});
