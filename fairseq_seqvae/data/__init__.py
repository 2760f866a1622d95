"""Datasets for the sequence-VAE task."""
