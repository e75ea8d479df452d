"""Tests of tl_lightning.data."""
