"""credhelper: print a fresh LLM-gateway credential from a secret store or identity provider."""

__version__ = "0.1.0"
