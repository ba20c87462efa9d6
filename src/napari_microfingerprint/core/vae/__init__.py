"""Variational autoencoders that turn micrographs into fingerprints (papers 000, 001, 002)."""
