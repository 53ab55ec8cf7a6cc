#!/usr/bin/env bash
# Real human speech for the speech tests and benches, from packages that ship recordings as test data.
#   scripts/real_speech.sh fetch   -> $VOICE_AGENT_CACHE/real-speech (idempotent; prints the directory)
#
# What comes from where (sizes are of the downloads; only the audio and its labels are kept):
#   pocketsphinx 5.1.1 sdist (PyPI, 33 MB, BSD-style CMU licence; the LibriVox clips are public domain):
#     test/data: cards/ (one speaker, card names), librivox/ (a reader, Sense and Sensibility), goforward,
#     numbers, something (.raw 16 kHz), tidigits/ (digits), forever/ (one sentence, two takes)
#   pyannote.audio 4.0.7 sdist (PyPI, MIT): src/pyannote/audio/sample/sample.{wav,rttm,stm} (a two-party
#     phone conversation with a word-level transcript), tests/data/*.wav + debug.*.rttm (AMI meeting
#     excerpts with speaker turns; the AMI corpus is CC BY 4.0)
#   alsa-utils 1.2.8 (Debian, GPL-2): /usr/share/sounds/alsa/*.wav, one speaker saying "Front left" etc.
source "$(dirname "$0")/common.sh"
DEST="$CACHE/real-speech"

fetch() {
  if [[ -f "$DEST/.complete" ]]; then
    echo "$DEST"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$DEST"
  local pip="$ROOT/.venv/bin/pip"
  [[ -x "$pip" ]] || pip="python3 -m pip"
  log "real speech: pocketsphinx sdist"
  $pip download -q --no-binary :all: --no-deps -d "$tmp" pocketsphinx==5.1.1
  tar xzf "$tmp"/pocketsphinx-5.1.1.tar.gz -C "$tmp" pocketsphinx-5.1.1/test/data pocketsphinx-5.1.1/LICENSE
  rm -rf "$DEST/pocketsphinx"
  mkdir -p "$DEST/pocketsphinx"
  (cd "$tmp/pocketsphinx-5.1.1/test/data" && cp -r cards librivox tidigits forever goforward.raw numbers.raw \
    something.raw "$DEST/pocketsphinx/")
  cp "$tmp/pocketsphinx-5.1.1/LICENSE" "$DEST/pocketsphinx/LICENSE"
  log "real speech: pyannote.audio sdist"
  $pip download -q --no-binary :all: --no-deps -d "$tmp" pyannote.audio==4.0.7
  tar xzf "$tmp"/pyannote_audio-4.0.7.tar.gz -C "$tmp" pyannote_audio-4.0.7/src/pyannote/audio/sample \
    pyannote_audio-4.0.7/tests/data pyannote_audio-4.0.7/LICENSE
  rm -rf "$DEST/pyannote"
  mkdir -p "$DEST/pyannote"
  cp "$tmp"/pyannote_audio-4.0.7/src/pyannote/audio/sample/sample.{wav,rttm,stm} "$DEST/pyannote/"
  cp "$tmp"/pyannote_audio-4.0.7/tests/data/{dev,tst,trn}0[0-9].wav "$tmp"/pyannote_audio-4.0.7/tests/data/debug.*.rttm \
    "$DEST/pyannote/"
  cp "$tmp/pyannote_audio-4.0.7/LICENSE" "$DEST/pyannote/LICENSE"
  log "real speech: alsa-utils .deb"
  if ! (cd "$tmp" && apt-get download alsa-utils >/dev/null 2>&1); then
    log "apt-get download alsa-utils failed; refreshing the package lists once"
    local sudo=""
    [[ $(id -u) != 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    (cd "$tmp" && apt-get download alsa-utils >/dev/null)
  fi
  dpkg-deb -x "$tmp"/alsa-utils_*.deb "$tmp/alsa"
  rm -rf "$DEST/alsa"
  mkdir -p "$DEST/alsa"
  cp "$tmp"/alsa/usr/share/sounds/alsa/*.wav "$DEST/alsa/"
  cp "$tmp"/alsa/usr/share/doc/alsa-utils/copyright "$DEST/alsa/copyright"
  touch "$DEST/.complete"
  echo "$DEST"
}

case "${1:-}" in
  fetch) fetch ;;
  *) echo "usage: $0 fetch" >&2; exit 2 ;;
esac
