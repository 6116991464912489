"""GET /api/models/video: the video models of the catalog."""

from lib.models_listing import listing
from lib.web import endpoint

app = endpoint(GET=listing("video"))
