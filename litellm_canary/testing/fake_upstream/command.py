"""The command line of the fake upstream: ``python -m litellm_canary.fake_upstream``.

This module owns :func:`main` (parse ``--name/--port/--answer``, serve until SIGINT/SIGTERM).
"""

from __future__ import annotations

import threading

from litellm_canary.testing.fake_upstream.upstream import FakeUpstream

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m litellm_canary.fake_upstream --name stable --port 8101``: serve until interrupted."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m litellm_canary.fake_upstream", description=main.__doc__)
    parser.add_argument("--name", default="fake", help="upstream name (x-fake-upstream header, logs)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--answer", default="ok", help="the text of every answer")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be within 0..65535, got {args.port}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        upstream = FakeUpstream(args.name, answer=args.answer, port=args.port)
    except OSError as error:
        parser.error(f"--port {args.port}: {error.strerror}")
    with upstream:
        print(f"fake upstream {args.name!r} serving {upstream.base_url}", flush=True)
        stop.wait()
    return 0
