"""The on-disk index: the store (FAISS, BM25, chunk tables, manifest), the embedder and BM25."""
