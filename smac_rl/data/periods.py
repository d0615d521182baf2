"""Names of the bundled Caltech periods (kept free of heavy imports, for the CLI's help)."""

CALTECH_PERIODS: tuple[str, ...] = (
    "2019-05-01 2019-08-31",
    "2019-09-01 2019-12-31",
    "2020-02-01 2020-05-31",
    "2021-05-01 2021-08-31",
)
"""Caltech ACN periods in the bundle: fit, select, regime-shift stress (COVID), report."""
