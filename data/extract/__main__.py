"""``python -m data.extract`` (``make extract``)."""

from data.extract.stage import main

raise SystemExit(main())
