"""``make serve``: serve an export over HTTP, TF Serving's REST API and more, on 127.0.0.1 by default.

    python -m deploy.serve [--config data/config.toml] [--model-dir DIR] [--host H] [--port P] [--wait]

Serves the highest version under ``{exports}/<serve.model_name>/`` (default: export.model_name) and
swaps in a newer one when ``make export`` writes it, without a restart. Routes: ``/v1/models/<model>...``
(status, metadata, :predict, :classify), ``POST /predict`` (raw image or multipart files -> top-k),
``/healthz``, ``/readyz``, ``/metrics`` and an upload page at ``/``. Stop with Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

from data.core.cli import run, stage_parser
from data.core.contracts import EXPORTS
from data.core.errors import ConfigError, InputError
from deploy import layout
from deploy.options import serve_options


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    why = exc.strerror or str(exc)
    return f"cannot listen on {host}:{port} ({why}): choose another --port / --host (SET=serve.port=...)"


def check_listen(host: str, port: int) -> None:
    """Bind every address of ``host``:``port`` once, as the server will, and let go.

    Raises:
        InputError: the port is taken, the address is not this machine's, or the host name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"host {host!r} (--host, serve.host) does not resolve ({exc}): try 127.0.0.1") from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
            try:
                sock.bind(address)
            except OSError as exc:
                raise InputError(_cannot_listen(host, port, exc)) from exc


def _titles(cfg: Any) -> Any:
    """The title model of ``fusion.text_run`` (with ``fusion.run``'s weight), or None when there is none."""
    from data.core.config import options_from_section
    from data.core.contracts import RUNS
    from deploy.title import TitleModel
    from train.fusion import FusionOptions

    fusion = options_from_section(FusionOptions, cfg.section("fusion"), "fusion")
    try:
        runs = cfg.path(RUNS)
    except ConfigError:  # a configuration without runs: photos only
        return None
    titles = TitleModel.load(runs, fusion.text_run, fusion.run)
    if titles is not None:
        print(f"serve: titles answered by {titles.text_run} (photo weight {titles.image_weight} beside a title)")
    return titles


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make serve``)."""
    parser = stage_parser("deploy.serve", __doc__)
    parser.add_argument("--model-dir", type=Path, help="a model folder of versions (default: {exports}/<model>)")
    parser.add_argument("--host", help="address to listen on (default: serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: serve.port, 8501 as TF Serving's REST)")
    parser.add_argument("--wait", action="store_true", help="start even with no version yet (readyz: 503)")
    args = parser.parse_args(argv)

    def body() -> int:
        from aiohttp import web

        from data.core.config import config_from_args
        from deploy.app import build_app

        cfg = config_from_args(args)
        options = serve_options(cfg)
        options = dataclasses.replace(
            options, host=args.host or options.host, port=options.port if args.port is None else args.port
        )
        if not 0 <= options.port <= 65535:
            raise ConfigError(f"--port {options.port}: expected 0-65535")
        model_dir = args.model_dir or cfg.path(EXPORTS) / options.model_name
        found = layout.versions(model_dir)
        if not found and not args.wait:
            raise InputError(
                f"no exported version in {model_dir}: run `make export` first (or pass --wait to start "
                "anyway and serve the first version that appears)"
            )
        check_listen(options.host, options.port)  # before TensorFlow loads: a busy port answers at once
        print(
            f"serve: {options.model_name} from {model_dir} (versions {found or 'none yet'}) on "
            f"http://{options.host}:{options.port}/  TF Serving REST: /v1/models/{options.model_name}:predict; "
            f"upload page: /; metrics: /metrics; Ctrl-C stops",
            flush=True,
        )
        titles = _titles(cfg)
        try:
            web.run_app(
                build_app(model_dir, options, titles), host=options.host, port=options.port, print=None, access_log=None
            )
        except OSError as exc:  # taken between the check and the bind
            raise InputError(_cannot_listen(options.host, options.port, exc)) from exc
        print("serve: stopped")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
