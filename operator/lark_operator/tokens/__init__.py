"""The token Secret: what goes in it (secret.py) and reading it back on restart."""
