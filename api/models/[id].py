"""GET /api/models/:id, also served as GET /v1/models/:id: one model, whatever its modality.

Answers the model as GET /api/models lists it; an id not in the catalog is a 404
`model_not_found`. No key is needed.
"""

from lib.models_listing import retrieve_model
from lib.web import endpoint

app = endpoint(GET=retrieve_model)
