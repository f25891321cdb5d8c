"""Request bodies (they make the OpenAPI schema at /docs, which clients and the fuzz tests read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


class ImageInput(BaseModel):
    modality: Literal["image"]
    image: str = Field(description="the image as a data URI (data:image/png;base64,...) or plain base64")


class TextInput(BaseModel):
    modality: Literal["text"]
    text: str


InputItem = Annotated[ImageInput | TextInput, Field(discriminator="modality")]


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request; images as items ``{"modality": "image", "image": DATA_URI}``, or
    every string an image with ``"modality": "image"`` at the top (the convention infinity uses)."""

    input: str | list[str | InputItem]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    modality: Literal["text", "image"] = "text"
    space: Literal["latent", "concepts"] = Field(
        "latent", description="latent: the CEIR latent (what the index searches); concepts: z-scored concepts")


class ExplainRequest(BaseModel):
    input: str | list[str] = Field(description="one image or a list of images (data URIs or base64)")
    top_k: int = Field(5, ge=1, le=100, description="how many strongest and weakest concepts to list")


class SearchRequest(BaseModel):
    """Exactly one query: ``text``, ``image``, ``concepts`` (an expression such as
    ``+striped +water -grass``) or ``item_id`` (with optional concept edits ``add``, ``remove``, ``set``)."""

    text: str | None = None
    image: str | None = None
    concepts: str | None = None
    item_id: int | None = Field(None, ge=0)
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    set: dict[str, float] = Field(default_factory=dict)
    where: dict[str, Any] | None = Field(None, description="metadata filter, e.g. {\"split\": \"test\"}")
    k: int = Field(10, ge=1, le=1000)
    explain_top: int = Field(5, ge=0, le=50)
    ranking: Literal["calibrated", "margin"] | None = None
    presence: Literal["calibrated", "threshold"] | None = None
    strict: bool = True


class NewItem(BaseModel):
    image: str = Field(description="data URI or base64")
    key: str | None = Field(None, description="a unique name for the item (e.g. a file's path or a database key)")
    path: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="metadata for filters (where=...)")


class ItemsRequest(BaseModel):
    items: list[NewItem]
