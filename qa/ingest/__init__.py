"""Documents in: loading files of every supported kind, and chunking them."""
