"""The model catalog: which models exist, for which modality, behind which provider.

The catalog is data (`catalog.json` beside this file); adding a model is adding an
entry there. `upstream` is the name the provider knows the model by; `created`
is when the catalog took the model in (Unix seconds); `fallback` names another
model of the same modality to try when this one's provider fails before answering.
Ids are unique across modalities, so `/v1/models/{id}` names one model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lib.errors import BadRequest

PROVIDERS = ("pollinations", "mapleai")


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    modality: str
    provider: str
    upstream: str
    created: int
    description: str
    context_window: int | None = None
    max_duration: int | None = None
    fallback: str | None = None

    def public(self) -> dict[str, object]:
        """The model as `GET /api/models/<modality>` lists it."""
        item: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "description": self.description,
        }
        if self.context_window is not None:
            item["contextWindow"] = self.context_window
        if self.max_duration is not None:
            item["maxDuration"] = self.max_duration
        if self.fallback is not None:
            item["fallback"] = self.fallback
        return item

    def openai(self) -> dict[str, object]:
        """The model in OpenAI's `model` shape, with CloudGPT's fields beside OpenAI's."""
        openai = {"id": self.id, "object": "model", "created": self.created, "owned_by": self.provider}
        return {**openai, "modality": self.modality, **self.public()}


def _load(path: Path) -> dict[str, dict[str, Model]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    catalog: dict[str, dict[str, Model]] = {}
    for modality, entries in raw.items():
        models: dict[str, Model] = {}
        for entry in entries:
            try:
                model = Model(
                    id=entry["id"],
                    name=entry["name"],
                    modality=modality,
                    provider=entry["provider"],
                    upstream=entry["upstream"],
                    created=entry["created"],
                    description=entry["description"],
                    context_window=entry.get("contextWindow"),
                    max_duration=entry.get("maxDuration"),
                    fallback=entry.get("fallback"),
                )
            except KeyError as missing:
                raise ValueError(f"catalog entry {modality}/{entry.get('id')} lacks {missing}") from None
            # An id is unique across modalities, and no modality's name: /api/models/chat is a listing.
            taken = (
                model.id in raw or model.id in models or any(model.id in other for other in catalog.values())
            )
            if model.provider not in PROVIDERS or taken:
                raise ValueError(f"catalog entry {modality}/{model.id} is invalid or repeated")
            models[model.id] = model
        for model in models.values():
            if model.fallback is not None and model.fallback not in models:
                raise ValueError(f"catalog entry {modality}/{model.id} falls back to an unknown model")
        catalog[modality] = models
    return catalog


_CATALOG = _load(Path(__file__).with_name("catalog.json"))


def models(modality: str) -> list[Model]:
    """Every model of a modality, in catalog order."""
    return list(_CATALOG[modality].values())


def every_model() -> list[Model]:
    """Every model of every modality: chat, then image, then video."""
    return [model for models in _CATALOG.values() for model in models.values()]


def find(model_id: str) -> Model | None:
    """The model with this id, whatever its modality."""
    return next((model for model in every_model() if model.id == model_id), None)


def resolve(modality: str, model_id: str) -> Model:
    """The catalog entry for `model_id`, or a 400 that says which ids exist."""
    model = _CATALOG[modality].get(model_id)
    if model is None:
        other = find(model_id)
        hint = f" (it is a {other.modality} model)" if other else ""
        raise BadRequest(
            f"Unknown {modality} model {model_id!r}{hint}; GET /api/models/{modality} lists them.",
            code="model_not_found",
            param="model",
        )
    return model


def with_fallbacks(model: Model) -> list[Model]:
    """`model`, then the models its fallbacks name in turn, each once."""
    chain = [model]
    while chain[-1].fallback is not None:
        fallback = _CATALOG[model.modality][chain[-1].fallback]
        if fallback in chain:
            break
        chain.append(fallback)
    return chain
