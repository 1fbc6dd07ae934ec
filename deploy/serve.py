"""``make serve``: serve an export over HTTP, TF Serving's REST API and more, on 127.0.0.1 by default.

    python -m deploy.serve [--config data/config.toml] [--model-dir DIR] [--host H] [--port P] [--wait]

Serves the highest version under ``{exports}/<serve.model_name>/`` (default: export.model_name) and
swaps in a newer one when ``make export`` writes it, without a restart. Routes: ``/v1/models/<model>...``
(status, metadata, :predict, :classify), ``POST /predict`` (raw image or multipart files -> top-k),
``/healthz``, ``/readyz``, ``/metrics`` and an upload page at ``/``. Stop with Ctrl-C.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from data.core.cli import run, stage_parser
from data.core.contracts import EXPORTS
from data.core.errors import ConfigError, InputError
from deploy import layout
from deploy.options import ServeOptions


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    why = exc.strerror or str(exc)
    return f"cannot listen on {host}:{port} ({why}): choose another --port / --host (SET=serve.port=...)"


def bind(host: str, port: int) -> list[socket.socket]:
    """Bind every address of ``host``:``port`` now; the server listens on these very sockets, so the port
    it announces is the one it has (``port = 0``: one the system chose, the same for every address).

    Raises:
        InputError: the port is taken, the address is not this machine's, or the host name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"host {host!r} (--host, serve.host) does not resolve ({exc}): try 127.0.0.1") from exc
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
            if family == socket.AF_INET6:  # as asyncio does: the IPv4 address gets its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(bound) > 1:
                address = (address[0], bound[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as exc:
        for sock in bound:
            sock.close()
        raise InputError(_cannot_listen(host, port, exc)) from exc
    return bound


def _titles(cfg: Any) -> Any:
    """The title model of ``fusion.text_run`` (with ``fusion.run``'s weight), or None when there is none."""
    from data.core.contracts import RUNS
    from deploy.title import TitleModel
    from train.predict import FusionOptions

    fusion = FusionOptions.from_config(cfg)
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
        options = ServeOptions.from_config(cfg, cli=args)
        model_dir = args.model_dir or cfg.path(EXPORTS) / options.model_name
        found = layout.versions(model_dir)
        if not found and not args.wait:
            raise InputError(
                f"no exported version in {model_dir}: run `make export` first (or pass --wait to start "
                "anyway and serve the first version that appears)"
            )
        sockets = bind(options.host, options.port)  # before TensorFlow loads: a busy port answers at once
        port = sockets[0].getsockname()[1]
        print(
            f"serve: {options.model_name} from {model_dir} (versions {found or 'none yet'}) on "
            f"http://{options.host}:{port}/  TF Serving REST: /v1/models/{options.model_name}:predict; "
            f"upload page: /; metrics: /metrics; Ctrl-C stops",
            flush=True,
        )
        titles = _titles(cfg)
        # keepalive_timeout also bounds a new connection's wait for its request headers (aiohttp >= 3.14 arms
        # it at connect): a client that sends a request line and stalls (slowloris) is closed after it
        web.run_app(
            build_app(model_dir, options, titles),
            sock=sockets,
            print=None,
            access_log=None,
            keepalive_timeout=options.header_timeout,
        )
        print("serve: stopped")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
