"""Work off the GUI thread: one Job primitive, and the jobs built on it (training, scanning)."""
