"""LightGBM forecasters of arrivals, session needs and prices; filled by the forecasting issue."""
