"""Command line: ``python -m llm_locust.mockserver [--ttft-ms 50] [--itl-ms 10] ...`` (see ``--help``).

Prints exactly one line to stdout, ``llm-locust mock server listening on http://HOST:PORT``, then
serves until SIGTERM or SIGINT and exits with status 0.
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from llm_locust.mockserver.config import config_from_args  # noqa: E402
from llm_locust.mockserver.launch import BANNER  # noqa: E402
from llm_locust.mockserver.server import MockServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv)
    server = MockServer(cfg).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.request_stop)
    sys.stdout.write(BANNER + server.url + "\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
