"""Container health check: exit 0 iff every URL given answers 2xx within the timeout.

Used by the image's HEALTHCHECK (the Ray raylet, via the dashboard agent on :52365) and by
compose.yaml (the Ray GCS on the head's dashboard, MLflow's /health). Plain urllib because
the base image has neither curl nor wget.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5.0


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return False


def main(urls: list[str]) -> int:
    if not urls:
        print("usage: healthcheck.py URL [URL ...]", file=sys.stderr)
        return 2
    return 0 if all(healthy(url) for url in urls) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
