"""Facial expressions: 17 Action Units and 7 basic emotions per face, from named backends; AU maps."""
