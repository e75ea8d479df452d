"""Tests of tl_lightning/data/world/ (the procedural tool world)."""
