"""specmx sim package."""
