"""specmx hdl package."""
