"""Dock widgets: thin Qt front ends that collect parameters, run a core call in a worker and write layers."""
