"""TL-Training for any Hugging Face causal LM, as PyTorch Lightning modules."""

__version__ = "0.1.0"
