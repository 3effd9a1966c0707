"""specmx models package."""
