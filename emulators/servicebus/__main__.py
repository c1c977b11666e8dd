"""``python -m emulators.servicebus --port 5672 --config Config.json``: run the stand-in until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal

from ..stop_signals import block_stop_signals, wait_for_stop_signal
from . import DEFAULT_CONFIG, ServiceBusStandIn

log = logging.getLogger("emulators.servicebus")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="AMQP 1.0 stand-in for Azure Service Bus (for the azure-servicebus SDK)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672, help="0 picks a free port")
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="entities, in the official emulator's Config.json shape"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    if not args.verbose:
        logging.getLogger("proton").setLevel(logging.WARNING)
    # Before any thread starts: SIGINT and SIGTERM then wait, pending, for this thread alone (see stop_signals).
    block_stop_signals()
    standin = ServiceBusStandIn(config=args.config).start(host=args.host, port=args.port)
    try:
        print(standin.connection_string, flush=True)
        signum = wait_for_stop_signal()
        log.info("%s received; stopping", signal.Signals(signum).name)
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
