"""python tests/emulator [--port N] [--env-file F] [--dir D]: the loopback Azure emulator.

Prints `export NAME=value` lines (and writes them to --env-file) once it is ready, then serves
until SIGTERM/SIGINT, when it stops Azurite, the MLflow servers and running jobs.
"""

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import Emulator


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python tests/emulator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (default: a free one)")
    parser.add_argument(
        "--azurite-port", type=int, default=0, help="Azurite blob port (default: a free one)"
    )
    parser.add_argument("--dir", type=Path, help="working folder (default: a new temp folder)")
    parser.add_argument("--env-file", type=Path, help="also write the environment to this file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="azure-emulator-"))
    tmp.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(tmp, args.port, args.azurite_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        emulator.start()
        lines = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in emulator.env.items())
        if args.env_file:
            partial = args.env_file.with_suffix(".partial")
            partial.write_text(lines)
            os.replace(partial, args.env_file)
        print(lines, end="", flush=True)
        print(
            f"# ready in {time.monotonic() - started:.1f}s; folder {tmp}",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    finally:
        emulator.shutdown()


if __name__ == "__main__":
    main()
