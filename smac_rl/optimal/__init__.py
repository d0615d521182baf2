"""Perfect-foresight optimum in pyomo + HiGHS: the core physics and projection written for a solver."""
