"""Stores (atomic, checksummed Zarr), checkpoints and atomic files.

A store keeps its config as provenance and never interprets it.
"""
