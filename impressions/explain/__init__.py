"""Explaining trained models: class activation maps, unit detectors, AU maps, emergence, manifolds."""
