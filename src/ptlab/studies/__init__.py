"""Study definitions: the spurious grid, the budget grid, the SoftQE comparison."""
