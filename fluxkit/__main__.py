"""`python -m fluxkit`: the same as the `fluxkit` console script."""

from __future__ import annotations

from fluxkit.cli import main

raise SystemExit(main())
