"""The generators of the README's results blocks, by pipeline (``tools/readme_tables.py`` runs them)."""
