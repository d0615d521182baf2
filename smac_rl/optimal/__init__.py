"""Perfect-foresight optimum and MPC in pyomo + HiGHS (thin-path and optimal-baselines issues)."""
