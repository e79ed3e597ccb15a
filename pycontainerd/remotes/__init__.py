"""Registry client: the Docker registry HTTP API v2 (distribution spec), synchronous.

Callers in the asyncio daemon run these calls in threads. The pieces:
:mod:`reference` (image names), :mod:`resolver` (name -> descriptor, and the
factory for fetchers and pushers), :mod:`fetcher`, :mod:`pusher`, :mod:`auth`
(challenges, bearer tokens, Docker config credentials), :mod:`mediatypes`,
:mod:`manifest` (JSON models) and :mod:`platforms` (platform matching).
"""
