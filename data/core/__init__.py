"""The shared core every stage imports: configuration, errors and the CLI runner, atomic file writes,
the inter-stage file contracts, and a background aiohttp server.

A stage never imports another stage's internals; it reads and writes the files named in
:mod:`data.core.contracts`, takes its options from its config section and command line through
:meth:`data.core.config.StageOptions.from_config`, and names a run through :mod:`data.core.runs`.
"""
