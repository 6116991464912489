"""GET /api/models/image: the image models of the catalog."""

from lib.models_listing import listing
from lib.web import endpoint

app = endpoint(GET=listing("image"))
