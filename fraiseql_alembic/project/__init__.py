"""The migrations folder: scan, name, scaffold and check files. Never the database."""
