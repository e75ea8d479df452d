"""Tests of tl_lightning/data/formats/ (one file per format module)."""
