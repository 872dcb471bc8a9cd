"""The synthetic-data-under-a-budget study, its crossover analysis and `ptlab advise`."""
