"""GET /api/models/chat: the chat models of the catalog."""

from lib.models_listing import listing
from lib.web import endpoint

app = endpoint(GET=listing("chat"))
