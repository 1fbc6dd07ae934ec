"""The shared core every stage imports: configuration, errors and the CLI runner, atomic file writes,
the inter-stage file contracts, and a background aiohttp server.

A stage never imports another stage's internals; it reads and writes the files named in
:mod:`data.core.contracts` and takes its options from one config section through
:func:`data.core.config.options_from_section`.
"""
