"""Synthetic data under a teacher-query budget: teachers, cache, budget, strategies."""
