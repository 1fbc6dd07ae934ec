"""``python -m label`` (``make label``)."""

from label.stage import main

raise SystemExit(main())
