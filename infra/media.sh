#!/usr/bin/env bash
# What the AI service's narration and video jobs need from Debian, installed only when missing:
# ffmpeg (encoding, muxing, ffprobe), espeak-ng (the local text-to-speech engine, no key, no
# model download), and the headers that `pip install manim` builds against (pycairo needs
# cairo, manimpango needs pango; both through pkg-config). No LaTeX: scenes set equations
# with Pango text, so MathTex/Tex are never used. Fonts: DejaVu for Latin, Greek and Cyrillic,
# fontconfig falling back to Noto (Devanagari, Arabic and most other scripts), WenQuanYi Micro
# Hei (CJK) and Symbola (emoji in outline: colour emoji fonts draw nothing in Manim, and
# bloop/ai/video/fonts.conf hides them); fc-list tells a video job which characters they cover. `make serve` does not need any of this: a
# process without these tools refuses narration and video jobs (501 not_available).
NAME=media
source "$(dirname "$0")/lib.sh"

PACKAGES=(ffmpeg espeak-ng libcairo2-dev libpango1.0-dev pkg-config python3-dev gcc fontconfig
          fonts-dejavu-core fonts-noto-core fonts-wqy-microhei fonts-symbola)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

do_install() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  log "installing ${missing[*]}"
  apt_install --no-install-recommends "${missing[@]}"
}

case "${1:-install}" in
  install) do_install ;;
  status) for pkg in "${PACKAGES[@]}"; do installed "$pkg" || { echo "missing $pkg"; exit 3; }; done
          echo "installed" ;;
  *) echo "usage: $0 [install|status]" >&2; exit 2 ;;
esac
