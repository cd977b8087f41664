"""Moved to :mod:`llm_locust.protocols.cloudflare`; kept only for ``cli.py``'s ``gateway.parts`` until it imports
``gateway_api`` from there (then delete this file)."""

from .protocols.cloudflare.gateway import gateway_parts as parts

__all__ = ["parts"]
