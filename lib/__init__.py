"""CloudGPT's shared code: everything the functions in api/ have in common."""
