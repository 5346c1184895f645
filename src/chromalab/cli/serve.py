"""chromalab serve: the local web page (upload, compare, adjust, download)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="open a local web page to colorize photos (works offline)",
        description="Start a local web app: drop photos on the page, pick a model, adjust "
        "temperature, hue and saturation, compare before/after and download the results. "
        "Nothing is sent anywhere; uploads live in a temporary folder only while they are "
        "being colorized.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this computer only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME_OR_PATH",
                        help="a shipped model name, model file or run folder; repeat to offer "
                        "several (the first is preselected)")
    parser.add_argument("--models-dir", default="runs", type=Path,
                        help="also offer every finished training run in this folder (default: runs)")
    parser.add_argument("--max-upload-mb", type=int, default=25,
                        help="largest upload accepted, in MB (default: 25)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                        help="what the networks compute in (default: auto, the model's measured choice; "
                        "docs/speed.md)")
    parser.set_defaults(func=run)


def check_port_free(host: str, port: int) -> None:
    """Fail with one line now rather than a uvicorn log after the models were scanned."""
    import socket

    from chromalab.errors import ChromalabError

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise ChromalabError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port"
        ) from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from chromalab.web.app import create_app

    app = create_app(args.model, args.models_dir, args.max_upload_mb, host=args.host, precision=args.precision)
    check_port_free(args.host, args.port)
    print(f"chromalab: open http://{args.host}:{args.port} in a browser (Ctrl+C to stop)")
    # SIGTERM / Ctrl+C: requests get 2 s to finish; the running job is asked to stop at its next
    # photo or frame (worker.close), and its request's temporary folder is removed as it ends.
    class StoppingServer(uvicorn.Server):
        # uvicorn waits for open requests first and runs the app's shutdown only after, so a
        # long job would be cut off with a bare 500; telling the worker at the signal lets the
        # job stop at its next photo and its request be answered 503 within the grace period.
        def handle_exit(self, sig: int, frame: object) -> None:
            app.state.worker.close()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    StoppingServer(config).run()
    return 0
