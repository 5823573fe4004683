"""Background jobs: each is a QObject moved to a QThread that re-emits core results as signals."""
