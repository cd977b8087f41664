"""Everything Cloudflare, in one place: Workers AI's API, the AI Gateway's routes and its universal endpoint.

* :mod:`.workers_ai` -- :class:`WorkersAI`, ``--llm-api workers-ai`` (``/ai/run/@cf/...``);
* :mod:`.gateway` -- which hosts are AI Gateway URLs (``LLM_GATEWAY_URL``, or any
  ``https://gateway.ai.cloudflare.com/v1/{account}/{gateway}``) and :class:`GatewayRoute`, the route a request of
  any protocol takes through one: paths, ``cf-aig-*`` headers, the ``gateway_*`` record fields, pricing by the
  upstream provider, and the check that a slug is spoken with its own API. :func:`find_gateway` is registered
  with the protocols (:data:`llm_locust.protocols.base.ROUTE_FINDERS`), so any protocol built on a gateway URL
  goes through it; :func:`gateway_base` is the base URL of catalog targets with ``via: gateway``;
  :func:`gateway_api` the API a gateway URL implies (``llm-benchmark --endpoint``);
* :mod:`.universal` -- :class:`GatewayUniversal`, ``--llm-api cf-universal`` (a fallback chain in one request).

The mock server's side is :mod:`llm_locust.mockserver.gateway` and :mod:`llm_locust.mockserver.workers_ai`.
"""

from __future__ import annotations

from .gateway import GatewayRoute, find_gateway, gateway_api, gateway_base, gateway_parts
from .universal import GatewayUniversal
from .workers_ai import WorkersAI

__all__ = ["GatewayRoute", "GatewayUniversal", "WorkersAI", "find_gateway", "gateway_api", "gateway_base",
           "gateway_parts"]
