"""The lean int8 forward pass (the transformers-int8 backend): its decoder and int8 layers."""
