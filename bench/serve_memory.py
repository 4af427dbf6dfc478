"""Peak and settled RSS of ``oct-srgan serve`` under two loads (loopback only, bounded loops):

1. the server full (8 unprocessed scans), then 12 concurrent uploads of the 14.6 MB DICOM volume,
   which must be refused before their bodies are read;
2. 8 full enhance jobs (upload, process, download) of the 16-bit PNG B-scan.

    python bench/serve_memory.py [--model default] [--jobs-scan bscan|volume]    # prints MB figures; the data under $OCT_SRGAN_DATA
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.serving import call, upload, wait_done  # noqa: E402
from tests.paths import BSCAN16_PNG, VOLUME_DCM  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--jobs-scan", choices=("bscan", "volume"), default="bscan",
                        help="what the 8 full jobs enhance: the 16-bit PNG B-scan or the 6-frame DICOM volume")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "oct_srgan.pipelines.cli", "serve", "--model", args.model,
                             "--port", str(port), "--device", "cpu"], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if call(base, "GET", "/api/model")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        print(f"idle: rss {rss_mb(proc.pid)[0]:.0f} MB")
        job_scan = (VOLUME_DCM if args.jobs_scan == "volume" else BSCAN16_PNG).read_bytes()
        small = [upload(base, job_scan)[1]["id"] for _ in range(8)]
        volume = VOLUME_DCM.read_bytes()
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: upload(base, volume)[0], range(12)))
        time.sleep(2)
        now, peak = rss_mb(proc.pid)
        print(f"12 uploads while full: answers {sorted(set(answers))} x{len(answers)}; peak {peak:.0f} MB, settled {now:.0f} MB")
        for scan_id in small:
            call(base, "POST", f"/api/scans/{scan_id}/process?mode=enhance")
        states = [wait_done(base, scan_id, timeout=1800)["state"] for scan_id in small]
        downloads = [call(base, "GET", f"/api/scans/{i}/download")[0] for i in small]
        time.sleep(2)
        now, peak = rss_mb(proc.pid)
        print(f"8 full jobs: states {sorted(set(states))}, downloads {sorted(set(downloads))}; "
              f"peak {peak:.0f} MB, settled {now:.0f} MB")
    finally:
        proc.send_signal(signal.SIGTERM)
        print(f"exit code on SIGTERM: {proc.wait(timeout=60)}")


if __name__ == "__main__":
    os.environ.setdefault("OCT_SRGAN_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    main()
