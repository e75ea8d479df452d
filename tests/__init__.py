"""tl_lightning tests; they mirror the package layout."""
