"""The queue dashboard at `/api/bull-board/`: server-rendered HTML over the services' gRPC APIs.

`settings` (its port and limits), `access` (who may look and act: Basic credentials, the same-origin and
CSRF checks of a write), `backend` (the gRPC calls it makes as the operator), `charts` (inline SVG),
`views` (the pages and actions), `server` (the aiohttp server inside the admin process).
"""
