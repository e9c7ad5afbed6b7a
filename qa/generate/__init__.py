"""Local text generators: the contract (base), the registry that picks a backend, model files,
one module per backend; int8/ holds the lean int8 decoder and its layers."""
