"""``python -m draht_router``: the same command line as ``draht-router``."""

from draht_router.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
