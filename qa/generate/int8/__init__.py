"""The lean int8 forward pass: its decoder, int8 layers and the one-token C kernels."""
