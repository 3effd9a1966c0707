"""specmx boards package."""
