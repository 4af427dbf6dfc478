#!/usr/bin/env bash
# The whole test suite (creates or reuses .venv first). Extra arguments go to pytest:
# `bash scripts/test.sh -m "not integration"` runs only tests/unit (fast, no ../shared/data).
# Installs the system tools the tests drive (Debian chromium + chromium-driver for the browser test,
# dicom3tools' dciodvfy for the DICOM check) when they are missing and we may: as root with apt-get.
# OCT_SRGAN_NO_APT=1 skips that; the tests needing a missing tool then skip with the reason.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v dciodvfy >/dev/null || missing+=(dicom3tools)
if [ "${#missing[@]}" -gt 0 ] && [ -z "${OCT_SRGAN_NO_APT:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get (set OCT_SRGAN_NO_APT=1 to skip)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} missing and not root with apt-get; tests that need them are skipped" >&2
  fi
fi
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
exec python -m pytest -q "$@"
