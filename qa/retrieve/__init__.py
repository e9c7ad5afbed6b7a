"""Finding passages: hybrid (dense + BM25) search and sentence windows."""
