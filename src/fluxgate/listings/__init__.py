"""What a key can look back on: the catalog of its generations and jobs, usage events and
spend over days."""
