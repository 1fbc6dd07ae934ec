"""``python -m data.download`` (``make download-images``)."""

from data.download.stage import main

raise SystemExit(main())
