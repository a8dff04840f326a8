"""An agent container that speaks the OpenAI Responses v1 protocol."""

__version__ = "0.1.0"
