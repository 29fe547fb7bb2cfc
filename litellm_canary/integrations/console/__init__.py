"""The web console: one page per gateway for the on-call engineer, served by the admin app.

* ``GET /console`` — the page (``console.html``, ``console.js``, ``console.css``: static files shipped
  with the package, no build step, no CDN, no secrets). It is the only thing served without a token:
  the page asks for the bearer token once, keeps it in ``sessionStorage`` and sends it as an
  ``Authorization`` header on each of its own requests (never in a URL, no cookies, so no CSRF).
  Without a valid token it shows nothing but the login form.
* ``GET /canary/series`` — per-second requests, error rate and p99 TTFT of both sides (the charts).
* ``/canary/incidents...`` — the incidents list, one incident (JSON + Markdown), its timeline
  picture, and the annotation (the same store call as ``litellm-canary incidents annotate``).

Actions (roll back, re-arm, canary percentage) go through the admin API's existing endpoints and
their validation. :mod:`.routes` owns the page and the series, :mod:`.incidents_api` the incidents.
"""

from __future__ import annotations

from litellm_canary.integrations.console.routes import PUBLIC_PATHS, ConsoleSources, console_routes

__all__ = ["PUBLIC_PATHS", "ConsoleSources", "console_routes"]
