"""Optimizers and learning-rate schedules (filled in by the optimizer work)."""
