"""LSI Studio: rank dataset samples by Laplace Sample Information."""

__version__ = "0.1.0"
