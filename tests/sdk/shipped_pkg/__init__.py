"""A package the decorator tests ship with modules=[shipped_pkg]."""
BASE = 100
