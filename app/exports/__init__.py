"""Exports of a study's data: blinded and unblinded datasets, codebook, data package."""
