"""The data path: source files -> Trajectory -> MAE -> rendered text + spans -> tokens + PKT weights."""
