"""LightGBM forecasters of day-ahead prices and EV arrivals, their backtests and ONNX export.

Modules (importing this package imports none of them, nor LightGBM):

- :mod:`~smac_rl_forecasting.series`: input checks (UTC, gaps, values) and the bundled targets.
- :mod:`~smac_rl_forecasting.features`: features known at the forecast origin.
- :mod:`~smac_rl_forecasting.model`: the direct multi-horizon LightGBM core (``SlotForecaster``).
- :mod:`~smac_rl_forecasting.prices`: ``PriceForecaster``, quantiles 10/50/90 % up to 48 h.
- :mod:`~smac_rl_forecasting.sessions`: ``SessionNeedsForecaster``, a session's energy and dwell
  time at its arrival, quantiles 10/50/90 %.
- :mod:`~smac_rl_forecasting.backtest`: rolling-origin backtests on the DESIGN.md splits, with
  seasonal-naive and 4-week-profile baselines (prices, Caltech arrivals and session needs).
- :mod:`~smac_rl_forecasting.provider`: ``LightGbmPriceForecast``, a ``ForecastProvider``.
- :mod:`~smac_rl_forecasting.onnx_export`: ONNX graphs with a parity check, metadata, model card.
- :mod:`~smac_rl_forecasting.cards`, :mod:`~smac_rl_forecasting.plots`: tables, cards and figures.

The command line is ``smac forecast fit|backtest`` (:mod:`smac_rl.cli.forecast`).
"""
