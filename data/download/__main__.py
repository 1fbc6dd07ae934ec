"""``python -m data.download`` (``make download-images``, ``make validate-urls``)."""

from data.download.cli import main

raise SystemExit(main())
