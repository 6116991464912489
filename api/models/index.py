"""GET /api/models, also served as GET /v1/models: every model of every modality.

OpenAI's list shape: `{"object": "list", "data": [...]}`, each item OpenAI's
`{"id", "object": "model", "created", "owned_by"}` with `owned_by` the provider,
and beside it CloudGPT's `modality`, `name`, `provider`, `description` and
`contextWindow` or `maxDuration`. No key is needed.
"""

from lib.models_listing import list_every_model
from lib.web import endpoint

app = endpoint(GET=list_every_model)
