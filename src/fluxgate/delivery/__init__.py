"""Getting a stored image to a client: signed URLs, the signed-file route's rules, variants,
the AI disclosure written into every file, and how long images are kept."""
