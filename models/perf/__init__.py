"""specmx models/perf package."""
